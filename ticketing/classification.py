"""Choosing a new ticket's priority and category from the rules in the config.

Keyword rules live in the ``classification`` section of ``ticketing.yml``, not
here. A keyword matches at the start of a word, case-insensitively ("urgent"
matches "URGENT:" and "urgently", not "insurgent").

    decision = Classifier(settings.classification).classify(
        "URGENT: invoices missing", "Our invoice for May is missing", requested_priority=None)
    decision.priority, decision.priority_reason   # "high", "rule urgent-title: 'urgent' in title"
    decision.category, decision.category_reason   # "billing", "keywords: invoice"
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .choices import max_priority, priority_rank
from .settings import ClassificationSettings


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """What a keyword matches, on its own: the keyword at the start of a word, any case.

    :class:`KeywordIndex` finds the matches of many such patterns at once.
    """
    return re.compile(r"(?<!\w)" + re.escape(keyword), re.IGNORECASE)


class KeywordIndex:
    """Where each of a set of keywords occurs in a text, found in one pass.

    It finds what :func:`keyword_pattern` would for each keyword, without
    scanning the text once per keyword (the category rules have dozens): one
    scan finds the positions where some keyword starts a word, and at each of
    those one match tells which keywords start there.

        index = KeywordIndex(["bill", "billing"])
        found = index.positions("Billing and bills")   # {"bill": [0, 12], "billing": [0]}
        index.count(found, "bill")                      # 2: non-overlapping, as re.findall
    """

    def __init__(self, keywords: tuple[str, ...] | list[str]):
        self.keywords = tuple(dict.fromkeys(keywords))
        if not self.keywords:
            self._starts = self._which = None
            return
        # Longest first, although any order finds the same positions.
        ordered = sorted(self.keywords, key=len, reverse=True)
        self._starts = re.compile(
            r"(?<!\w)(?=" + "|".join(re.escape(k) for k in ordered) + ")", re.IGNORECASE)
        # One optional look-ahead group per keyword: a group matched iff its keyword does.
        self._which = re.compile(
            "".join(f"(?:(?=({re.escape(k)}))|)" for k in self.keywords), re.IGNORECASE)

    def positions(self, text: str) -> dict[str, list[int]]:
        """Keyword -> the positions where it starts a word in ``text`` (ascending)."""
        found: dict[str, list[int]] = {}
        if self._starts is None:
            return found
        keywords = self.keywords
        which = self._which.match
        for start in self._starts.finditer(text):
            position = start.start()
            for keyword, group in zip(keywords, which(text, position).groups()):
                if group is not None:
                    found.setdefault(keyword, []).append(position)
        return found

    @staticmethod
    def count(found: dict[str, list[int]], keyword: str) -> int:
        """Non-overlapping occurrences of ``keyword`` (what ``re.findall`` counts)."""
        count, free_from, length = 0, 0, len(keyword)
        for position in found.get(keyword, ()):
            if position >= free_from:
                count += 1
                free_from = position + length
        return count


@dataclass(frozen=True)
class Decision:
    priority: str
    #: Why the priority is above what was asked for; None when unchanged.
    priority_reason: str | None
    category: str
    category_reason: str


class Classifier:
    def __init__(self, settings: ClassificationSettings):
        self.settings = settings
        self._priority_rules = settings.priority_rules
        self._priority_index = KeywordIndex(
            [kw for rule in settings.priority_rules for kw in rule.keywords])
        self._category_rules = settings.category_rules
        self._category_index = KeywordIndex(
            [kw for _, keywords in settings.category_rules for kw in keywords])

    def priority(self, title: str, description: str, requested: str | None
                 ) -> tuple[str, str | None]:
        """The priority: the one requested (or the default), raised by any matching rule."""
        start = requested or self.settings.default_priority
        priority, reasons = start, []
        found = {"title": self._priority_index.positions(title),
                 "description": self._priority_index.positions(description)}
        for rule in self._priority_rules:
            for field in rule.fields:
                hit = next((kw for kw in rule.keywords if kw in found[field]), None)
                if hit is not None:
                    if priority_rank(rule.priority) > priority_rank(start):
                        reasons.append(f"rule {rule.name}: {hit!r} in {field}")
                        priority = max_priority(priority, rule.priority)
                    break
        return priority, ("; ".join(reasons) if priority != start else None)

    def category(self, title: str, description: str) -> tuple[str, str]:
        """The category whose keywords occur most often; ties go to the one configured first."""
        found = self._category_index.positions(f"{title}\n{description}")
        best, best_hits, best_words = None, 0, []
        for category, keywords in self._category_rules:
            words = [kw for kw in keywords if kw in found]
            hits = sum(KeywordIndex.count(found, kw) for kw in keywords)
            if hits > best_hits:
                best, best_hits, best_words = category, hits, words
        if best is None:
            return self.settings.default_category, "no keyword matched"
        return best, "keywords: " + ", ".join(best_words)

    def classify(self, title: str, description: str, requested_priority: str | None = None
                 ) -> Decision:
        priority, priority_reason = self.priority(title, description, requested_priority)
        category, category_reason = self.category(title, description)
        return Decision(priority, priority_reason, category, category_reason)

"""Choosing a new ticket's priority and category from the rules in the config and the model.

Keyword rules live in the ``classification`` section of ``ticketing.yml``, not
here. A keyword matches at the start of a word, case-insensitively ("urgent"
matches "URGENT:" and "urgently", not "insurgent"). The priority comes from
the rules alone.

The category comes from the keyword rules first, then the trained text model
(:mod:`ticketing.desk.classifier`, the ``classifier`` section) decides what they
cannot (:func:`combine`):

- no keyword matched: the model's most probable category;
- the keywords and the model agree: that category;
- they disagree: the model's category when it gives it at least
  ``classifier.override_rules_at``, else the keywords' category.

The decision's *confidence* is the probability the model gives the chosen
category (None without a model); below ``classifier.triage_below`` the ticket
is marked for triage.

    decision = Classifier(settings.classification, model, model_settings).classify(
        "URGENT: invoices missing", "Our invoice for May is missing", requested_priority=None)
    decision.priority, decision.priority_reason   # "high", "rule urgent-title: 'urgent' in title"
    decision.category, decision.category_reason   # "billing", "keywords: invoice; model agrees"
    decision.category_confidence, decision.needs_triage   # 0.93, False
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ticketing.desk.choices import max_priority, priority_rank
from ticketing.desk.settings import ClassificationSettings

if TYPE_CHECKING:
    from ticketing.desk.classifier.settings import ClassifierSettings
    from ticketing.desk.classifier.text_model import TextModel


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
            r"(?<!\w)(?=" + "|".join(re.escape(k) for k in ordered) + ")", re.IGNORECASE
        )
        # One optional look-ahead group per keyword: a group matched iff its keyword does.
        self._which = re.compile(
            "".join(f"(?:(?=({re.escape(k)}))|)" for k in self.keywords), re.IGNORECASE
        )

    def positions(self, text: str) -> dict[str, list[int]]:
        """Keyword -> the positions where it starts a word in ``text`` (ascending)."""
        found: dict[str, list[int]] = {}
        if self._starts is None or self._which is None:
            return found
        keywords = self.keywords
        which = self._which.match
        for start in self._starts.finditer(text):
            position = start.start()
            groups = which(text, position)
            assert groups is not None  # every part of the pattern is optional: it always matches
            for keyword, group in zip(keywords, groups.groups(), strict=True):
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
    #: The model's probability for ``category``; None without a model.
    category_confidence: float | None = None
    #: Whether the category should be checked by staff (confidence below the threshold).
    needs_triage: bool = False


def combine(
    rule: str | None,
    rule_words: list[str],
    probabilities: Mapping[str, float] | None,
    default: str,
    override_at: float,
) -> tuple[str, str, float | None]:
    """The category, the reason and the confidence, from the keyword rules' and the
    model's answers (``rule`` None: no keyword matched; ``probabilities`` None: no model)."""
    keywords = "keywords: " + ", ".join(rule_words)
    if probabilities is None:
        return (rule, keywords, None) if rule else (default, "no keyword matched", None)
    top = max(probabilities, key=probabilities.__getitem__)
    p_top = probabilities[top]
    if rule is None:
        return top, f"model: {top} p={p_top:.2f} (no keyword matched)", p_top
    if rule == top:
        return rule, f"{keywords}; model agrees p={p_top:.2f}", p_top
    if p_top >= override_at:
        return top, f"model: {top} p={p_top:.2f} over {keywords} ({rule})", p_top
    p_rule = probabilities.get(rule, 0.0)
    return rule, f"{keywords}; model: p={p_rule:.2f} (prefers {top} p={p_top:.2f})", p_rule


class Classifier:
    def __init__(
        self,
        settings: ClassificationSettings,
        model: TextModel | None = None,
        model_settings: ClassifierSettings | None = None,
    ):
        self.settings = settings
        self.model = model
        self.model_settings = model_settings
        self._priority_rules = settings.priority_rules
        self._priority_index = KeywordIndex(
            [kw for rule in settings.priority_rules for kw in rule.keywords]
        )
        self._category_rules = settings.category_rules
        self._category_index = KeywordIndex(
            [kw for _, keywords in settings.category_rules for kw in keywords]
        )

    def priority(
        self, title: str, description: str, requested: str | None
    ) -> tuple[str, str | None]:
        """The priority: the one requested (or the default), raised by any matching rule."""
        start = requested or self.settings.default_priority
        priority, reasons = start, []
        found = {
            "title": self._priority_index.positions(title),
            "description": self._priority_index.positions(description),
        }
        for rule in self._priority_rules:
            for field in rule.fields:
                hit = next((kw for kw in rule.keywords if kw in found[field]), None)
                if hit is not None:
                    if priority_rank(rule.priority) > priority_rank(start):
                        reasons.append(f"rule {rule.name}: {hit!r} in {field}")
                        priority = max_priority(priority, rule.priority)
                    break
        return priority, ("; ".join(reasons) if priority != start else None)

    def rule_category(self, title: str, description: str) -> tuple[str | None, list[str]]:
        """The category whose keywords occur most often (ties go to the one configured
        first) and its keywords found; None when no keyword matched."""
        found = self._category_index.positions(f"{title}\n{description}")
        best, best_hits, best_words = None, 0, []
        for category, keywords in self._category_rules:
            words = [kw for kw in keywords if kw in found]
            hits = sum(KeywordIndex.count(found, kw) for kw in keywords)
            if hits > best_hits:
                best, best_hits, best_words = category, hits, words
        return best, best_words

    def category(self, title: str, description: str) -> tuple[str, str]:
        """The category from the keyword rules alone, and why."""
        category, reason, _ = combine(
            *self.rule_category(title, description), None, self.settings.default_category, 1.0
        )
        return category, reason

    def classify(
        self, title: str, description: str, requested_priority: str | None = None
    ) -> Decision:
        priority, priority_reason = self.priority(title, description, requested_priority)
        rule, words = self.rule_category(title, description)
        model, model_settings = self.model, self.model_settings
        if model is None or model_settings is None:
            category, reason, _ = combine(rule, words, None, self.settings.default_category, 1.0)
            return Decision(priority, priority_reason, category, reason)
        category, reason, confidence = combine(
            rule,
            words,
            model.probabilities(title, description),
            self.settings.default_category,
            model_settings.override_rules_at,
        )
        return Decision(
            priority,
            priority_reason,
            category,
            reason,
            confidence,
            confidence is not None and confidence < model_settings.triage_below,
        )

"""Choosing a new ticket's priority and category from the rules in the config and the model.

Keyword rules live in the ``classification`` section of ``ticketing.yml``, not
here. A keyword matches at the start of a word, case-insensitively ("urgent"
matches "URGENT:" and "urgently", not "insurgent").

The priority starts at the one the partner asked for (or the default); the
keyword rules raise it, then the priority model (:func:`raise_priority`, when
the model file has one and ``classifier.raise_priority`` is on) may raise it
further, never lower: to ``critical`` when it gives critical at least
``raise_at["critical"]``, else to ``high`` when it gives high or critical
together at least ``raise_at["high"]`` (thresholds calibrated at training on
held-out folds and stored in the model file). It reads the whole text, so an
active compromise or a production stop told without "urgent" or "outage" is
raised too.

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
    decision.priority_model_reason, decision.priority_confidence
    # "model: stays high (critical p=0.04)", 0.96
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ticketing.desk.choices import PRIORITIES, max_priority, priority_rank
from ticketing.desk.settings import ClassificationSettings

if TYPE_CHECKING:
    from ticketing.desk.classifier.settings import ClassifierSettings
    from ticketing.desk.classifier.text_model import TextModel


#: The first letter of a keyword in a script written without spaces between words
#: (Chinese characters, hiragana, katakana, half-width katakana).
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_WORD_CHARACTER = re.compile(r"\w")


def matches_anywhere(keyword: str) -> bool:
    """Whether a keyword matches anywhere in a word: one in Japanese (or Chinese), which
    is written without spaces, so that a keyword rarely starts a "word" there."""
    return bool(_UNSPACED.match(keyword))


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """What a keyword matches, on its own: the keyword at the start of a word, any case
    (a Japanese or Chinese one anywhere: :func:`matches_anywhere`).

    :class:`KeywordIndex` finds the matches of many such patterns at once.
    """
    start = "" if matches_anywhere(keyword) else r"(?<!\w)"
    return re.compile(start + re.escape(keyword), re.IGNORECASE)


_Trie = dict[str, "_Trie"]


def _prefix_trie(keywords: list[str]) -> str:
    """A pattern that matches where any of ``keywords`` starts, written as a trie: each
    shared prefix once, and a keyword's longer ones left out (``bill`` covers
    ``billing``). ``re`` tries the alternatives of a group one by one, so at each word
    this costs a try per distinct first letter instead of one per keyword."""
    trie: _Trie = {}
    for keyword in keywords:
        node = trie
        for character in keyword:
            node = node.setdefault(character, {})
        node[""] = {}

    def pattern(node: _Trie) -> str:
        if "" in node:  # a keyword ends here: what follows does not matter
            return ""
        branches = [re.escape(c) + pattern(child) for c, child in node.items()]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return pattern(trie)


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
        self._anywhere = frozenset(k for k in self.keywords if matches_anywhere(k))
        if not self.keywords:
            self._starts = self._which = None
            return
        at_start = [k for k in self.keywords if k not in self._anywhere]
        anywhere = [k for k in self.keywords if k in self._anywhere]
        alternatives = []
        if at_start:
            alternatives.append(r"(?<!\w)(?=" + _prefix_trie(at_start) + ")")
        if anywhere:
            alternatives.append("(?=" + _prefix_trie(anywhere) + ")")
        self._starts = re.compile("|".join(alternatives), re.IGNORECASE)
        # One optional look-ahead group per keyword: a group matched iff its keyword does.
        self._which = re.compile(
            "".join(f"(?:(?=({re.escape(k)}))|)" for k in self.keywords), re.IGNORECASE
        )

    def positions(self, text: str) -> dict[str, list[int]]:
        """Keyword -> the positions where it starts a word in ``text`` (ascending)."""
        found: dict[str, list[int]] = {}
        if self._starts is None or self._which is None:
            return found
        keywords, anywhere = self.keywords, self._anywhere
        which = self._which.match
        for start in self._starts.finditer(text):
            position = start.start()
            groups = which(text, position)
            assert groups is not None  # every part of the pattern is optional: it always matches
            inside_word = position > 0 and _WORD_CHARACTER.match(text, position - 1) is not None
            for keyword, group in zip(keywords, groups.groups(), strict=True):
                if group is not None and (not inside_word or keyword in anywhere):
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
    #: The priority after the keyword rules, before the model (None: ``priority``).
    rule_priority: str | None = None
    #: Why the rules raised the priority; None when they did not.
    rule_reason: str | None = None
    #: The priority model's decision (raise or stay, and why); None without it.
    priority_model_reason: str | None = None
    #: The model's probability for its priority decision; None without it.
    priority_confidence: float | None = None


def at_or_above(probabilities: Mapping[str, float], priority: str) -> float:
    """The probability the model gives ``priority`` or any higher one."""
    rank = priority_rank(priority)
    return math.fsum(p for c, p in probabilities.items() if priority_rank(c) >= rank)


def raise_priority(
    current: str,
    probabilities: Mapping[str, float],
    raise_at: Mapping[str, float],
    routine_weight: float = 0.0,
) -> tuple[str, str, float]:
    """The priority model's decision: the priority (``current`` or higher, never lower),
    the reason and the confidence (the probability behind the decision).

    The evidence for a priority is the probability of it or anything above it,
    less ``routine_weight`` times the probability that the ticket is a routine
    question (``low``): the model must find a ticket more urgent than routine,
    not only less ordinary. The highest priority above ``current`` whose
    evidence reaches its ``raise_at`` threshold wins, and its confidence is the
    probability of it or above; with none, ``current`` stays and the confidence
    is the probability that the ticket is not above it.
    """
    routine = routine_weight * probabilities.get(PRIORITIES[0], 0.0)
    above = [p for p in PRIORITIES if priority_rank(p) > priority_rank(current)]
    for level in reversed(above):
        threshold = raise_at.get(level)
        if threshold is None:
            continue
        p = at_or_above(probabilities, level)
        if p - routine >= threshold:
            return level, f"model: {level} p={p:.2f}", p
    if not above:
        p = at_or_above(probabilities, current)
        return current, f"model: stays {current} ({current} p={p:.2f})", p
    p_next = at_or_above(probabilities, above[0])
    label = above[0] if len(above) == 1 else f"{above[0]} or above"
    return current, f"model: stays {current} ({label} p={p_next:.2f})", 1.0 - p_next


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
            hits = sum(KeywordIndex.count(found, kw) for kw in words)
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
        rule_priority, rule_reason = self.priority(title, description, requested_priority)
        rule, words = self.rule_category(title, description)
        model, model_settings = self.model, self.model_settings
        if model is None or model_settings is None:
            category, reason, _ = combine(rule, words, None, self.settings.default_category, 1.0)
            return Decision(
                rule_priority,
                rule_reason,
                category,
                reason,
                rule_priority=rule_priority,
                rule_reason=rule_reason,
            )
        categories, priorities = model.both(title, description)
        category, reason, confidence = combine(
            rule,
            words,
            categories,
            self.settings.default_category,
            model_settings.override_rules_at,
        )
        priority, priority_reason = rule_priority, rule_reason
        model_reason = priority_confidence = None
        if priorities is not None and model_settings.raise_priority:
            priority, model_reason, priority_confidence = raise_priority(
                rule_priority, priorities, model.raise_at, model.routine_weight
            )
            if priority != rule_priority:
                priority_reason = "; ".join(r for r in (rule_reason, model_reason) if r)
        return Decision(
            priority,
            priority_reason,
            category,
            reason,
            confidence,
            confidence is not None and confidence < model_settings.triage_below,
            rule_priority,
            rule_reason,
            model_reason,
            priority_confidence,
        )

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
from .config import ClassificationSettings


def _pattern(keyword: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(keyword), re.IGNORECASE)


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
        self._priority_rules = [
            (rule, [(kw, _pattern(kw)) for kw in rule.keywords]) for rule in settings.priority_rules
        ]
        self._category_rules = [
            (category, [(kw, _pattern(kw)) for kw in keywords])
            for category, keywords in settings.category_rules
        ]

    def priority(self, title: str, description: str, requested: str | None
                 ) -> tuple[str, str | None]:
        """The priority: the one requested (or the default), raised by any matching rule."""
        start = requested or self.settings.default_priority
        priority, reasons = start, []
        texts = {"title": title, "description": description}
        for rule, patterns in self._priority_rules:
            for field in rule.fields:
                hit = next((kw for kw, p in patterns if p.search(texts[field])), None)
                if hit is not None:
                    if priority_rank(rule.priority) > priority_rank(start):
                        reasons.append(f"rule {rule.name}: {hit!r} in {field}")
                        priority = max_priority(priority, rule.priority)
                    break
        return priority, ("; ".join(reasons) if priority != start else None)

    def category(self, title: str, description: str) -> tuple[str, str]:
        """The category whose keywords occur most often; ties go to the one configured first."""
        text = f"{title}\n{description}"
        best, best_hits, best_words = None, 0, []
        for category, patterns in self._category_rules:
            words = [kw for kw, p in patterns if p.search(text)]
            hits = sum(len(p.findall(text)) for _, p in patterns)
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

"""Is a new ticket about an open incident? The signals, the score and the decision.

A ticket filed while published incidents are open is scored against each of
them (:func:`best_match`); the best one decides (:func:`decide`): a score of
at least ``status.linking.link_at`` links the ticket to it, at least
``suggest_at`` suggests the link to staff, less does nothing.

The signals (:data:`SIGNALS`, each 0..1, each the best over the incident's
components): the component's ``keywords`` in the ticket (``words``), words of
the incident's title (``title``), the ticket's category among the component's
``categories``, the filing partner's firing ``partner_alerts`` (``alert``), a
failure reported now (``symptom``: :data:`SYMPTOM_WORDS`, in the languages
partners write in), that failure being of this part (``symptom_here``), a
question or a request (``question``: :data:`QUESTION_WORDS`) and a problem
older than the incident (``old``: :data:`OLD_WORDS`). A logistic model
combines them (:data:`WEIGHTS`, :data:`BIAS`): the score is a probability.

The weights were fitted on the labelled set ``linking_set.yml`` (266 tickets
filed during 25 incidents); ``partnerwatch-ticketing incidents
evaluate-linking`` prints the precision and recall they give, on the whole set
and held out, and docs/status.md records them with what the set taught.

Pure functions, no database: the caller (``incident_tickets.py``) gathers the
partner's firing alerts and the open incidents.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ticketing.status.settings import Component, LinkingSettings

#: The signals of a ticket against one component of an incident, in this order.
SIGNALS = ("alert", "words", "title", "category", "symptom", "symptom_here", "question", "old")
#: The logistic model's weights per signal and its bias, fitted on ``linking_set.yml``
#: (``partnerwatch-ticketing incidents evaluate-linking --fit`` prints them anew).
WEIGHTS = {
    "alert": 0.0,
    "words": 0.89,
    "title": 0.23,
    "category": -0.06,
    "symptom": 1.16,
    "symptom_here": 1.0,
    "question": -2.07,
    "old": -1.11,
}
BIAS = -0.23
MAX_WORDS = 2
MAX_TITLE_WORDS = 2

_TOKEN = re.compile(r"\w+", re.UNICODE)
#: Scripts written without spaces between words: a keyword is looked for inside the text.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
#: Title words that say nothing about which part failed.
_STOP = frozenset(
    """
    about after again all also and are been being but can cannot could degraded delayed down
    elevated error errors failing failure failures for from have high increased into issue
    issues more not now outage partial partners platform problem problems rates some still
    than that the their them then there these this those under very was were what when
    where which while with would
    """.split()
)


def normalize(text: str) -> str:
    """Lower-case NFKC text (full-width forms and ligatures folded)."""
    return unicodedata.normalize("NFKC", text).casefold()


def _tokens(text: str) -> list[str]:
    """Words; a run of CJK characters stands apart from the Latin words written into it
    ("すべてpendingのまま" -> "すべて", "pending", "のまま")."""
    return _TOKEN.findall(_CJK_RUN.sub(r" \g<0> ", text))


def _stem(word: str) -> str:
    """A crude stem: the first six letters (settlement/settling/settle, timeout/timeouts)."""
    return word[:6]


@dataclass(frozen=True)
class Text:
    """A ticket's text, prepared once for every incident it is scored against."""

    text: str
    tokens: frozenset[str]
    stems: frozenset[str]

    @classmethod
    def of(cls, title: str, description: str) -> Text:
        text = normalize(f"{title}\n{description}")
        tokens = _tokens(text)
        return cls(text, frozenset(tokens), frozenset(_stem(t) for t in tokens if len(t) >= 4))

    def has(self, keyword: str) -> bool:
        """Whether ``keyword`` (normalized) is in the text: inside it for CJK or a
        phrase, else as a whole word or a word it begins (``timeout`` in ``timeouts``)."""
        if _CJK.search(keyword) or " " in keyword:
            return keyword in self.text
        if keyword in self.tokens:
            return True
        return len(keyword) >= 4 and any(t.startswith(keyword) for t in self.tokens)


@lru_cache(maxsize=512)
def _keywords(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalize(w).strip() for w in words if w.strip()))


@lru_cache(maxsize=512)
def title_words(title: str) -> frozenset[str]:
    """The stems of an incident title's telling words (4+ letters, not stop words)."""
    return frozenset(_stem(t) for t in _tokens(normalize(title)) if len(t) >= 4 and t not in _STOP)


#: Words of something failing now, in the languages partners write in: a report of
#: an outage, rather than a question about the part that failed.
SYMPTOM_WORDS = (
    "fail", "error", "broken", "down", "outage", "refus", "reject", "declin", "impossible",
    "cannot", "can't", "unable", "not working", "doesn't work", "does not work", "stuck",
    "still pending", "stay pending", "stays pending", "remain pending", "pending since",
    "pending for", "hanging", "freez", "frozen", "timeout", "timed out", "time out", "late",
    "delay", "lagg", "lags", "slow", "missing", "no longer", "stopped", "nothing", "none of",
    "since this morning", "since today", "since", "500", "502", "503", "504", "5xx",
    "fehl", "funktioniert nicht", "geht nicht", "abgelehnt", "verzöger", "seit", "hängt",
    "échou", "erreur", "ne fonctionne", "ne marche", "bloqu", "retard", "depuis",
    "no funciona", "rechaz", "retras", "desde", "fallan", "fallo", "falla",
    "falh", "erro", "não funciona", "recusad", "travad", "atras",
    "できない", "エラー", "失敗", "遅延", "止ま", "届かない", "反映されない", "拒否", "障害",
    "繋がらない", "つながらない", "遅れ", "できません", "されません", "完了しません",
    "完了しない", "されない",
    "안 됨", "안됩니다", "안 돼", "안돼", "실패", "오류", "에러", "지연", "멈", "거부", "장애",
    "되지 않", "오지 않", "안 와", "안 됩니다", "안 되",
)  # fmt: skip
#: Words of a question or a request: how to, may we, could you, a feature, an invoice.
QUESTION_WORDS = (
    "how do", "how can", "how to", "how should", "is it possible", "would it be possible",
    "could you", "can you add", "can we", "feature request", "documentation", "docs",
    "example", "invoice", "pricing", "contract", "quote", "why did", "why does", "why is",
    "question", "wondering", "is there a way", "please add", "roadmap", "please ignore",
    "please cancel", "is that", "is there a reason", "can you tell us why",
    "what are we doing wrong", "intended",
    "wie kann", "möglich", "frage", "rechnung", "comment faire", "est-il possible",
    "facture", "cómo", "es posible", "factura", "pregunta", "como faço", "é possível",
    "dúvida", "fatura", "方法", "教えて", "可能", "質問", "請求書", "어떻게", "가능", "문의",
    "청구서",
)  # fmt: skip
#: Words of a problem older than any open incident, or long over.
OLD_WORDS = (
    "last month", "for weeks", "since last", "for months", "last week", "for a while",
    "yesterday", "last night", "every night", "every day", "the last three", "for the last",
    "gestern", "letzte woche", "hier soir", "la semaine dernière", "ayer", "anoche",
    "la semana pasada", "ontem", "semana passada", "昨日", "昨夜", "어제", "지난밤",
    "seit letzt", "seit wochen", "seit monaten", "depuis le mois", "depuis des semaines",
    "desde el mes", "hace semanas", "há semanas", "desde o mês", "先月", "先週", "지난달",
    "지난주", "몇 주",
)  # fmt: skip


@dataclass(frozen=True)
class Match:
    """How well a ticket matches an incident: the score (a probability) and why."""

    incident_id: int
    score: float
    component: str | None
    reasons: tuple[str, ...] = field(default=())

    @property
    def reason(self) -> str:
        """One line for the audit trail: the score and its signals."""
        signals = "; ".join(self.reasons) or "no signal"
        return f"score {self.score:.2f} on {self.component}: {signals}"[:400]


def _found(text: Text, words: tuple[str, ...]) -> list[str]:
    return [w for w in _keywords(words) if text.has(w)]


def signals(
    text: Text,
    title: str,
    category: str | None,
    component: Component,
    firing_alerts: Iterable[str],
    incident_title: str,
) -> tuple[dict[str, float], tuple[str, ...]]:
    """The signals (:data:`SIGNALS`, each 0..1) of a ticket against one component of an
    incident, and the reasons that say which fired."""
    reasons: list[str] = []
    values = dict.fromkeys(SIGNALS, 0.0)
    alerts = sorted(set(firing_alerts) & set(component.partner_alerts))
    if alerts:
        values["alert"] = 1.0
        reasons.append(f"partner alert {', '.join(alerts)} firing")
    found = _found(text, component.keywords)[:MAX_WORDS]
    if found:
        values["words"] = len(found) / MAX_WORDS
        reasons.append(f"words {', '.join(found)}")
    shared = sorted(title_words(incident_title) & text.stems)[:MAX_TITLE_WORDS]
    if shared:
        values["title"] = len(shared) / MAX_TITLE_WORDS
        reasons.append(f"incident title words {', '.join(shared)}")
    if category is not None and category in component.categories:
        values["category"] = 1.0
        reasons.append(f"category {category}")
    symptoms = _found(text, SYMPTOM_WORDS)
    if symptoms:
        values["symptom"] = 1.0
        reasons.append(f"reports a failure ({', '.join(symptoms[:3])})")
    questions = _found(text, QUESTION_WORDS)
    if questions or title.rstrip().endswith(("?", "？")):
        values["question"] = 1.0
        reasons.append(f"asks ({', '.join(questions[:2]) or 'a question'})")
    if values["symptom"] and (
        values["alert"] or values["words"] or values["title"] or values["category"]
    ):
        values["symptom_here"] = 1.0  # a failure of this part, not of something else
    old = _found(text, OLD_WORDS)
    if old:
        values["old"] = 1.0
        reasons.append(f"older problem ({old[0]})")
    return values, tuple(reasons)


def probability(values: dict[str, float]) -> float:
    """The logistic model's probability that the ticket is about the incident."""
    z = BIAS + sum(WEIGHTS[name] * values[name] for name in SIGNALS)
    return 1.0 / (1.0 + math.exp(-z))


def incident_signals(
    text: Text,
    title: str,
    category: str | None,
    incident: OpenIncident,
    firing_alerts: Iterable[str],
) -> tuple[dict[str, float], str | None, tuple[str, ...]]:
    """The signals of a ticket against an incident: each signal's best over the
    incident's components; the component that gave the most, and the reasons."""
    best = dict.fromkeys(SIGNALS, 0.0)
    reasons: dict[str, None] = {}
    named, named_weight = None, -1.0
    for component in incident.components:
        values, why = signals(text, title, category, component, firing_alerts, incident.title)
        for name in SIGNALS:
            best[name] = max(best[name], values[name])
        reasons.update(dict.fromkeys(why))
        weight = values["alert"] + values["words"] + values["category"]
        if weight > named_weight:
            named, named_weight = component.id, weight
    return best, named, tuple(reasons)


@dataclass(frozen=True)
class OpenIncident:
    """What scoring needs of an open published incident."""

    id: int
    title: str
    components: Sequence[Component]


def best_match(
    text: Text,
    title: str,
    category: str | None,
    incidents: Iterable[OpenIncident],
    firing_alerts: Iterable[str],
) -> Match | None:
    """The best-scoring incident (ties: the newest), or None when there is none."""
    alerts = frozenset(firing_alerts)
    best: Match | None = None
    for incident in incidents:
        values, component, reasons = incident_signals(text, title, category, incident, alerts)
        value = round(probability(values), 4)
        better = best is None or value > best.score
        tie = best is not None and value == best.score and incident.id > best.incident_id
        if better or tie:
            best = Match(incident.id, value, component, reasons)
    return best


def decide(match: Match | None, settings: LinkingSettings) -> str:
    """``link``, ``suggest`` or ``none``."""
    if match is None:
        return "none"
    if match.score >= settings.link_at:
        return "link"
    if match.score >= settings.suggest_at:
        return "suggest"
    return "none"

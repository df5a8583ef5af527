"""Training and evaluating the category and priority models with scikit-learn (command line only).

The ticket service never imports this module (it scores with
:class:`~ticketing.desk.classifier.text_model.TextModel`); the
``partnerwatch-ticketing classifier`` commands do.

The model: two TF-IDF vectorizers side by side, character n-grams of 2 to 4
inside whitespace-separated chunks (robust to typos, inflections and compound
words of German and Dutch, and the only view of Japanese, written without
spaces) and words and word pairs, both sublinear, on the text as
:func:`~ticketing.desk.classifier.text_model.prepare` leaves it (the words with
the glossary's English pivot words appended). They feed two
multinomial logistic regressions: one for the category, one for the priority
floor (the lowest priority a support lead would accept for the ticket), whose
probabilities are the confidence of a decision. The priority model only ever
raises a priority (:func:`ticketing.desk.triage.raise_priority`), at thresholds
(:data:`RAISE_AT`) chosen on held-out folds so that routine questions are
seldom raised and a ticket that reads as an active compromise or a production
stop reaches at least high.

Training examples are the shipped corpus (``corpus/tickets.txt``) plus every
ticket whose category a staff member overrode (the audit trail's last staff
``category`` change of each ticket, which replaces a corpus entry with the same
text and keeps that entry's priority label); the priority model learns from the
examples with a priority label.

    examples = load_corpus() + staff_overrides()     # overrides need an app context
    report = evaluate(examples, rules)               # held-out and k-fold figures
    data = fit(examples)                             # what a model file holds
    write_model(data | {"evaluation": report.as_dict()}, path)
"""

from __future__ import annotations

import gzip
import json
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ticketing.desk.choices import CATEGORIES, PRIORITIES, max_priority, priority_rank
from ticketing.desk.classifier.glossary import Glossary
from ticketing.desk.classifier.text_model import FORMAT, pack, prepare, ticket_text
from ticketing.desk.triage import Classifier, combine, raise_priority

SHIPPED_CORPUS = Path(__file__).with_name("corpus") / "tickets.txt"

#: Hyperparameters (chosen by k-fold accuracy on the corpus; see corpus/README.md).
CHAR_NGRAMS = (2, 4)
CHAR_MIN_DF = 3
WORD_NGRAMS = (1, 2)
WORD_MIN_DF = 2
#: The terms kept after a first fit: those with the largest coefficient in any class.
KEEP_TERMS = 12000
C = 30.0
MAX_ITER = 5000
#: The priority model's regularisation; the evidence (the probability of a priority
#: or any higher one, less ROUTINE_WEIGHT times that of a routine question) at
#: which it raises a ticket to that priority. Chosen on the corpus's 5 held-out
#: folds: the most tickets at or above their floor and the fewest critical ones
#: below high, with at most 5 % of routine questions raised (corpus/README.md);
#: written into the model file.
PRIORITY_C = 10.0
#: Each priority weighs as much as the others in the fit, however few tickets it has
#: (high and critical floors are a quarter of the corpus between them).
PRIORITY_CLASS_WEIGHT = "balanced"
RAISE_AT = {"high": 0.12, "critical": 0.04}
ROUTINE_WEIGHT = 0.75
#: The analyzers that read a text with the glossary's pivot words appended: the
#: pivots are whole English words, and the character n-grams of the text alone
#: score as well on the held-out folds while the automaton scans a quarter less.
GLOSSED = ("word",)
FOLDS = 5
TEST_SIZE = 0.2
SEED = 0


@dataclass(frozen=True)
class Example:
    title: str
    description: str
    category: str
    #: "corpus:<line>" or "override:ticket <id>"
    source: str
    #: The priority floor: the lowest priority a support lead would accept (None: unlabelled).
    priority: str | None = None

    @property
    def text(self) -> str:
        return ticket_text(self.title, self.description)


class CorpusError(ValueError):
    pass


def load_corpus(path: str | Path = SHIPPED_CORPUS) -> list[Example]:
    """The labelled tickets of a corpus file: ``category | priority | title | description``
    per line, or ``category | title | description`` for a ticket without a priority
    label (``#`` starts a comment line)."""
    examples, problems = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" | ", 3)]
        priority = None
        if len(parts) == 4 and parts[1] in PRIORITIES:
            priority = parts.pop(1)
        else:
            parts = [p.strip() for p in line.split(" | ", 2)]
        if len(parts) != 3 or not all(parts):
            problems.append(
                f"{path}:{number}: not 'category | priority | title | description' "
                "(or 'category | title | description')"
            )
        elif parts[0] not in CATEGORIES:
            problems.append(f"{path}:{number}: unknown category {parts[0]!r}")
        else:
            examples.append(Example(parts[1], parts[2], parts[0], f"corpus:{number}", priority))
    if problems:
        raise CorpusError("\n".join(problems))
    return examples


def staff_overrides() -> list[Example]:
    """Each ticket whose category staff changed, labelled with the last such change
    (needs an app context)."""
    from sqlalchemy import func

    from ticketing.db import db
    from ticketing.models import Ticket, TicketAudit

    last = (
        db.select(TicketAudit.ticket_id, func.max(TicketAudit.id).label("id"))
        .where(TicketAudit.field == "category", TicketAudit.actor_kind == "staff")
        .group_by(TicketAudit.ticket_id)
        .subquery()
    )
    rows = db.session.execute(
        db.select(Ticket.id, Ticket.title, Ticket.description, TicketAudit.after)
        .join(last, last.c.ticket_id == Ticket.id)
        .join(TicketAudit, TicketAudit.id == last.c.id)
        .order_by(Ticket.id)
    ).all()
    return [
        Example(title, description, after, f"override:ticket {ticket_id}")
        for ticket_id, title, description, after in rows
        if after in CATEGORIES
    ]


def merge(corpus: Sequence[Example], overrides: Sequence[Example]) -> list[Example]:
    """The corpus plus the overrides; an override replaces a corpus entry with its text."""
    replaced = {o.text for o in overrides}
    labels = {e.text: e.priority for e in corpus}
    return [e for e in corpus if e.text not in replaced] + [
        o if o.priority else replace(o, priority=labels.get(o.text)) for o in overrides
    ]


# ------------------------------------------------------------------ scikit-learn


def reader(glossary: Glossary | None) -> Any:
    """How the word n-grams read a text (:data:`GLOSSED`): :func:`prepare`, then the
    glossary's pivot words appended."""
    if glossary is None or not glossary.terms:
        return prepare
    gloss = glossary.gloss
    return lambda text: gloss(prepare(text))


def vectorizers(
    glossary: Glossary | None = None, vocabularies: tuple[list[str], list[str]] | None = None
) -> Any:
    """A fresh, unfitted union of the model's two TF-IDF vectorizers (with ``vocabularies``:
    limited to those terms, character n-grams then words); the word n-grams read the text
    with the glossary's pivot words (:data:`GLOSSED`), the character n-grams without."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    read = reader(glossary)
    chars_only, words_only = vocabularies or (None, None)

    def tfidf(analyzer: str, ngrams: tuple[int, int], min_df: int, only: Any) -> Any:
        return TfidfVectorizer(
            analyzer=analyzer,
            ngram_range=ngrams,
            min_df=min_df if only is None else 1,
            sublinear_tf=True,
            preprocessor=read if analyzer in GLOSSED else prepare,
            vocabulary=only,
        )

    chars = tfidf("char_wb", CHAR_NGRAMS, CHAR_MIN_DF, chars_only)
    words = tfidf("word", WORD_NGRAMS, WORD_MIN_DF, words_only)
    return make_union(chars, words)


def _strongest_terms(union: Any, coefficients: Any, keep: int) -> tuple[list[str], list[str]]:
    """The ``keep`` terms with the largest coefficient in any class, per vectorizer."""
    import numpy as np

    strength = np.abs(coefficients).max(axis=0)
    chosen = set(np.argsort(-strength, kind="stable")[:keep].tolist())
    out, offset = [], 0
    for _, vectorizer in union.transformer_list:
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
        out.append([t for i, t in enumerate(terms) if offset + i in chosen])
        offset += len(terms)
    return out[0], out[1]


@dataclass
class Fitted:
    """The fitted vectorizers and the two regressions on their output."""

    union: Any
    category: Any
    #: None when no example has a priority label
    priority: Any
    #: the glossary the word n-grams read texts with (:data:`GLOSSED`; None: none)
    glossary: Glossary | None = None

    def predict_proba(self, texts: Sequence[str]) -> Any:
        """Category probabilities, one row per text (columns: ``category.classes_``)."""
        return self.category.predict_proba(self.union.transform(texts))

    def both(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Category and priority probabilities (priority: None without a priority model)."""
        x = self.union.transform(texts)
        return (
            self.category.predict_proba(x),
            self.priority.predict_proba(x) if self.priority is not None else None,
        )


def fit_models(
    examples: Sequence[Example], glossary: Glossary | None = None, keep: int | None = KEEP_TERMS
) -> Fitted:
    """The two regressions fitted on ``examples``; with ``keep``, fitted twice: the second
    time on the ``keep`` terms the first fit weighs most (fewer terms found per ticket:
    a quicker, smaller model that scores as well on held-out folds)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    texts = [e.text for e in examples]
    labelled = [i for i, e in enumerate(examples) if e.priority]
    vocabularies = None
    for _ in range(2):
        union = vectorizers(glossary, vocabularies)
        x = union.fit_transform(texts)
        category = LogisticRegression(C=C, max_iter=MAX_ITER)
        category.fit(x, [e.category for e in examples])
        priority = None
        if len({examples[i].priority for i in labelled}) >= 2:
            priority = LogisticRegression(
                C=PRIORITY_C, max_iter=MAX_ITER, class_weight=PRIORITY_CLASS_WEIGHT
            )
            priority.fit(x[labelled], [examples[i].priority for i in labelled])
        if keep is None or vocabularies is not None or x.shape[1] <= keep:
            break
        heads = [category.coef_] + ([priority.coef_] if priority is not None else [])
        vocabularies = _strongest_terms(union, np.vstack(heads), keep)
        if not all(vocabularies):  # a vectorizer with no term left cannot be fitted
            break
    return Fitted(union, category, priority, glossary)


def _head(regression: Any) -> tuple[list[str], Any, list[float]]:
    """Classes, coefficients (one row per class) and intercepts of a fitted regression;
    a two-class one (one row in scikit-learn) as the equivalent softmax of two rows."""
    import numpy as np

    classes = [str(c) for c in regression.classes_]
    coef, intercept = regression.coef_, regression.intercept_
    if len(classes) == 2 and coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    return classes, coef, [float(v) for v in intercept]


def export(fitted: Fitted) -> dict[str, Any]:
    """The parameters :class:`TextModel` needs, from :func:`fit_models`."""
    import numpy as np

    classes, coef, intercept = _head(fitted.category)
    data: dict[str, Any] = {"format": FORMAT, "classes": classes, "intercept": intercept}
    if fitted.glossary is not None and fitted.glossary.terms:
        data["glossary"] = fitted.glossary.entries
    if fitted.priority is not None:
        priority_classes, priority_coef, priority_intercept = _head(fitted.priority)
        coef = np.vstack([coef, priority_coef])
        data["priority"] = {
            "classes": priority_classes,
            "intercept": priority_intercept,
            "raise_at": {p: t for p, t in RAISE_AT.items() if p in priority_classes},
            "routine_weight": ROUTINE_WEIGHT,
        }
    vectorizers, offset = [], 0
    for _, vectorizer in fitted.union.transformer_list:
        terms = sorted(vectorizer.vocabulary_.items(), key=lambda item: item[1])
        idf = vectorizer.idf_
        weights = []
        for _term, index in terms:
            weights.append(float(idf[index]))
            weights.extend(float(v) for v in coef[:, offset + index])
        vectorizers.append(
            {
                "analyzer": vectorizer.analyzer,
                "ngram_range": list(vectorizer.ngram_range),
                "glossed": vectorizer.analyzer in GLOSSED and "glossary" in data,
                "terms": [term for term, _ in terms],
                "weights": pack(weights),
            }
        )
        offset += len(terms)
    data["vectorizers"] = vectorizers
    return data


def fit(examples: Sequence[Example], glossary: Glossary | None = None) -> dict[str, Any]:
    """A model file's content (without its evaluation) fitted on ``examples``."""
    import sklearn

    data = export(fit_models(examples, glossary))
    counts: dict[str, int] = {}
    for e in examples:
        source = e.source.split(":", 1)[0]
        counts[source] = counts.get(source, 0) + 1
    data["trained"] = {
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "examples": len(examples),
        "corpus": counts.get("corpus", 0),
        "overrides": counts.get("override", 0),
        "priority_labels": sum(1 for e in examples if e.priority),
        "scikit_learn": sklearn.__version__,
        "python": platform.python_version(),
    }
    return data


def write_model(data: dict[str, Any], path: str | Path) -> Path:
    """Write a model file (gzip-compressed JSON when the name ends in ``.gz``) atomically."""
    path = Path(path)
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    if path.suffix == ".gz":
        raw = gzip.compress(raw, compresslevel=9, mtime=0)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------ evaluation

# Words that mark a ticket's language (frequent, short, rarely shared); CJK by script.
_MARKERS = {
    "en": "the and are our we you not was for with this from have has what can please",
    "de": "der die das und ist nicht wir unser unsere ein eine bitte sie wurde seit mit von auf",
    "nl": "het een niet wij ons onze graag jullie van op sinds zijn kunnen bij naar wordt",
    "fr": "le les et est pas nous notre nos une des merci vous depuis pour sur du au ne",
    "es": "el los las y nuestro nuestra nuestros una por favor desde para con del al que",
}
_MARKER_SETS = {lang: frozenset(words.split()) for lang, words in _MARKERS.items()}


def language_of(text: str) -> str:
    """The language a ticket is written in, for the per-language figures: ``ko``,
    ``ja`` or ``zh`` by script, else the language of most marker words (en, de,
    nl, fr, es); ``en`` when none is found."""
    if any("\uac00" <= c <= "\ud7a3" for c in text):
        return "ko"
    if any("\u3040" <= c <= "\u30ff" for c in text):
        return "ja"
    if any("\u4e00" <= c <= "\u9fff" for c in text):
        return "zh"
    import re

    words = re.findall(r"[^\W\d_]+", text.lower())
    counts = {lang: sum(w in markers for w in words) for lang, markers in _MARKER_SETS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] else "en"


@dataclass
class Scores:
    """Accuracy of the model alone, the keyword rules alone and both combined (the
    product's decision) on some held-out tickets, and the priority decisions on
    those with a priority label."""

    n: int = 0
    model: int = 0
    rules: int = 0
    combined: int = 0
    #: combined decisions below the triage threshold
    triaged: int = 0
    #: combined decisions at or above it that were right
    confident_right: int = 0
    per_category: dict[str, list[int]] = field(default_factory=dict)  # category -> [right, n]
    #: language -> [category right, n, priority labelled, priority at or above its floor]
    per_language: dict[str, list[int]] = field(default_factory=dict)
    #: (floor, decided priority, decided by the rules alone) per labelled ticket
    priorities: list[tuple[str, str, str]] = field(default_factory=list)

    def add(
        self,
        truth: str,
        model: str,
        rules: str,
        combined: str,
        triaged: bool,
        language: str = "en",
        priority: tuple[str, str, str] | None = None,
    ) -> None:
        self.n += 1
        self.model += model == truth
        self.rules += rules == truth
        self.combined += combined == truth
        self.triaged += triaged
        self.confident_right += not triaged and combined == truth
        right_n = self.per_category.setdefault(truth, [0, 0])
        right_n[0] += combined == truth
        right_n[1] += 1
        per_language = self.per_language.setdefault(language, [0, 0, 0, 0])
        per_language[0] += combined == truth
        per_language[1] += 1
        if priority is not None:
            floor, decided, _ = priority
            self.priorities.append(priority)
            per_language[2] += 1
            per_language[3] += priority_rank(decided) >= priority_rank(floor)

    def merge(self, other: Scores) -> None:
        self.n += other.n
        self.model += other.model
        self.rules += other.rules
        self.combined += other.combined
        self.triaged += other.triaged
        self.confident_right += other.confident_right
        for category, (right, n) in other.per_category.items():
            mine = self.per_category.setdefault(category, [0, 0])
            mine[0] += right
            mine[1] += n
        for language, counts in other.per_language.items():
            mine = self.per_language.setdefault(language, [0, 0, 0, 0])
            for j, value in enumerate(counts):
                mine[j] += value
        self.priorities.extend(other.priorities)

    def accuracy(self, which: str = "combined") -> float:
        return getattr(self, which) / self.n if self.n else 0.0

    def priority_figures(self, start: str) -> dict[str, Any]:
        """What the priority decisions came to against the floors (``start``: the
        priority a ticket starts at, the default, as no corpus ticket asks for one)."""
        rows = self.priorities
        if not rows:
            return {"n": 0}

        def share(part: int, whole: int) -> float:
            return round(part / whole, 4) if whole else 0.0

        def low(floor: str, decided: str) -> bool:
            return priority_rank(decided) < priority_rank(floor)

        def raised(floor: str, decided: str) -> bool:
            return priority_rank(decided) > priority_rank(max_priority(floor, start))

        per_floor = {p: [r for r in rows if r[0] == p] for p in PRIORITIES}
        return {
            "n": len(rows),
            "at_or_above_floor": share(sum(not low(f, d) for f, d, _ in rows), len(rows)),
            "rules_alone_at_or_above_floor": share(
                sum(not low(f, r) for f, _, r in rows), len(rows)
            ),
            "per_floor": {
                p: {
                    "n": len(per_floor[p]),
                    "too_low": share(sum(low(f, d) for f, d, _ in per_floor[p]), len(per_floor[p])),
                    "raised_above": share(
                        sum(raised(f, d) for f, d, _ in per_floor[p]), len(per_floor[p])
                    ),
                }
                for p in PRIORITIES
                if per_floor[p]
            },
            "critical_below_high": sum(
                f == "critical" and priority_rank(d) < priority_rank("high") for f, d, _ in rows
            ),
            "confusion": {
                f: {d: sum(1 for r in per_floor[f] if r[1] == d) for d in PRIORITIES}
                for f in PRIORITIES
                if per_floor[f]
            },
        }


@dataclass
class Evaluation:
    """Held-out figures of a training set: a train/test split of the corpus, and
    k-fold cross-validation in which each corpus ticket and each staff override is
    held out once (the overrides of the other folds train with the corpus)."""

    examples: int
    overrides: int
    corpus_sha256: str
    holdout: Scores
    folds: list[Scores]
    #: the staff overrides, each scored by the fold that held it out
    on_overrides: Scores
    #: the priority a ticket starts at without a partner's choice
    default_priority: str = "medium"

    @property
    def kfold(self) -> Scores:
        total = Scores()
        for fold in self.folds:
            total.merge(fold)
        return total

    @property
    def score(self) -> float:
        """What decides whether a new model replaces the current one: the k-fold
        accuracy of the combined decision on the corpus. The corpus folds do not
        depend on the overrides, so two models trained on the same corpus are
        compared on the same held-out tickets."""
        return round(self.kfold.accuracy(), 4)

    def as_dict(self) -> dict[str, Any]:
        kfold = self.kfold

        def accuracies(s: Scores) -> dict[str, float]:
            return {
                f"{w}_accuracy": round(s.accuracy(w), 4) for w in ("model", "rules", "combined")
            }

        return {
            "examples": self.examples,
            "overrides": self.overrides,
            "corpus_sha256": self.corpus_sha256,
            "holdout": {"test_size": TEST_SIZE, "n": self.holdout.n, **accuracies(self.holdout)},
            "kfold": {
                "folds": len(self.folds),
                "n": kfold.n,
                **accuracies(kfold),
                "fold_accuracy": [round(f.accuracy(), 4) for f in self.folds],
                "triaged_share": round(kfold.triaged / kfold.n, 4) if kfold.n else 0.0,
                "confident_accuracy": (
                    round(kfold.confident_right / (kfold.n - kfold.triaged), 4)
                    if kfold.n > kfold.triaged
                    else 0.0
                ),
                "per_category": {
                    c: round(r / n, 4) for c, (r, n) in sorted(kfold.per_category.items())
                },
                "per_language": {
                    lang: {
                        "n": n,
                        "category_accuracy": round(right / n, 4),
                        "priority_n": labelled,
                        "priority_at_or_above_floor": (
                            round(enough / labelled, 4) if labelled else None
                        ),
                    }
                    for lang, (right, n, labelled, enough) in sorted(
                        kfold.per_language.items(), key=lambda item: -item[1][1]
                    )
                },
                "priority": kfold.priority_figures(self.default_priority),
            },
            "overrides_kfold": {"n": self.on_overrides.n, **accuracies(self.on_overrides)},
            "score": self.score,
        }

    def lines(self) -> list[str]:
        d = self.as_dict()
        h, k, o = d["holdout"], d["kfold"], d["overrides_kfold"]

        def pct(v: float) -> str:
            return f"{100 * v:.1f} %"

        out = [
            f"examples: {self.examples} ({self.examples - self.overrides} from the corpus, "
            f"{self.overrides} staff overrides)",
            f"train/test split of the corpus ({round(100 - 100 * TEST_SIZE)}/"
            f"{round(100 * TEST_SIZE)}, {h['n']} held out):",
            f"  category accuracy {pct(h['combined_accuracy'])} (model alone "
            f"{pct(h['model_accuracy'])}, keyword rules alone {pct(h['rules_accuracy'])})",
            f"{k['folds']}-fold cross-validation ({k['n']} corpus tickets held out):",
            f"  category accuracy {pct(k['combined_accuracy'])} (model alone "
            f"{pct(k['model_accuracy'])}, keyword rules alone {pct(k['rules_accuracy'])})",
            "  per fold: " + ", ".join(pct(a) for a in k["fold_accuracy"]),
            "  per category: " + ", ".join(f"{c} {pct(a)}" for c, a in k["per_category"].items()),
            f"  marked for triage: {pct(k['triaged_share'])}; the others are right "
            f"{pct(k['confident_accuracy'])} of the time",
        ]
        p = k["priority"]
        if p["n"]:
            out += [
                f"  priority at or above its floor: {pct(p['at_or_above_floor'])} of "
                f"{p['n']} labelled (keyword rules alone "
                f"{pct(p['rules_alone_at_or_above_floor'])}); critical floor below high: "
                f"{p['critical_below_high']}",
                "  priority too low, per floor: "
                + ", ".join(
                    f"{f} {pct(v['too_low'])} of {v['n']}" for f, v in p["per_floor"].items()
                ),
                f"  raised above their floor and the default ({self.default_priority}): "
                + ", ".join(
                    f"{f} {pct(v['raised_above'])}"
                    for f, v in p["per_floor"].items()
                    if f != "critical"
                )
                + (
                    f" (routine questions: the {p['per_floor']['low']['n']} with floor low)"
                    if "low" in p["per_floor"]
                    else ""
                ),
                "  priority confusion (rows: floor, columns: decided):",
                "    " + " " * 9 + "".join(f"{c:>9}" for c in PRIORITIES),
            ]
            out += [
                f"    {f:<9}" + "".join(f"{row[c]:>9}" for c in PRIORITIES)
                for f, row in p["confusion"].items()
            ]
        out.append(
            "  per language (category accuracy; priority at or above floor): "
            + ", ".join(
                f"{lang} {pct(v['category_accuracy'])}"
                + (
                    f"; {pct(v['priority_at_or_above_floor'])}"
                    if v["priority_at_or_above_floor"] is not None
                    else ""
                )
                + f" (n={v['n']})"
                for lang, v in k["per_language"].items()
            )
        )
        if o["n"]:
            out.append(
                f"staff overrides held out ({o['n']}): category accuracy "
                f"{pct(o['combined_accuracy'])} (keyword rules alone "
                f"{pct(o['rules_accuracy'])})"
            )
        out.append(f"score (k-fold category accuracy on the corpus): {pct(self.score)}")
        return out


def _score(
    fitted: Fitted,
    held_out: Iterable[Example],
    rules: Classifier,
    override_at: float,
    triage_below: float,
) -> Scores:
    held_out = list(held_out)
    scores = Scores()
    if not held_out:
        return scores
    classes = [str(c) for c in fitted.category.classes_]
    categories, priorities = fitted.both([e.text for e in held_out])
    priority_classes = (
        [str(c) for c in fitted.priority.classes_] if fitted.priority is not None else []
    )
    raise_at = {p: t for p, t in RAISE_AT.items() if p in priority_classes}
    for j, (example, row) in enumerate(zip(held_out, categories, strict=True)):
        p = dict(zip(classes, (float(v) for v in row), strict=True))
        model = max(p, key=p.__getitem__)
        rule, words = rules.rule_category(example.title, example.description)
        rule_only, _, _ = combine(rule, words, None, rules.settings.default_category, 1.0)
        combined, _, confidence = combine(
            rule, words, p, rules.settings.default_category, override_at
        )
        priority = None
        if example.priority:
            by_rules, _ = rules.priority(example.title, example.description, None)
            decided = by_rules
            if priorities is not None:
                pp = dict(zip(priority_classes, (float(v) for v in priorities[j]), strict=True))
                decided, _, _ = raise_priority(by_rules, pp, raise_at, ROUTINE_WEIGHT)
            priority = (example.priority, decided, by_rules)
        scores.add(
            example.category,
            model,
            rule_only,
            combined,
            confidence is not None and confidence < triage_below,
            language_of(example.text),
            priority,
        )
    return scores


def corpus_digest(examples: Sequence[Example]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for e in examples:
        label = f"{e.category}/{e.priority}" if e.priority else e.category
        digest.update(f"{label}\x1f{e.title}\x1f{e.description}\x1e".encode())
    return digest.hexdigest()


def evaluate(
    corpus: Sequence[Example],
    overrides: Sequence[Example],
    rules: Classifier,
    override_at: float,
    triage_below: float,
    folds: int = FOLDS,
    glossary: Glossary | None = None,
) -> Evaluation:
    """Held-out figures of the models trained on ``corpus`` plus ``overrides``."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    overrides = [o for o in merge(corpus, overrides) if o.source.startswith("override:")]
    corpus = [e for e in corpus if e.text not in {o.text for o in overrides}]
    labels = [e.category for e in corpus]
    train, test = train_test_split(corpus, test_size=TEST_SIZE, stratify=labels, random_state=SEED)
    holdout = _score(
        fit_models(train + list(overrides), glossary), test, rules, override_at, triage_below
    )
    fold_scores, on_overrides = [], Scores()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for fold, (train_index, test_index) in enumerate(splitter.split(labels, labels)):
        held_overrides = [o for j, o in enumerate(overrides) if j % folds == fold]
        kept_overrides = [o for j, o in enumerate(overrides) if j % folds != fold]
        fitted = fit_models([corpus[i] for i in train_index] + kept_overrides, glossary)
        fold_scores.append(
            _score(fitted, (corpus[i] for i in test_index), rules, override_at, triage_below)
        )
        on_overrides.merge(_score(fitted, held_overrides, rules, override_at, triage_below))
    return Evaluation(
        len(corpus) + len(overrides),
        len(overrides),
        corpus_digest(corpus),
        holdout,
        fold_scores,
        on_overrides,
        rules.settings.default_priority,
    )

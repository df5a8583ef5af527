"""Training and evaluating the category model with scikit-learn (command line only).

The ticket service never imports this module (it scores with
:class:`~ticketing.desk.classifier.text_model.TextModel`); the
``partnerwatch-ticketing classifier`` commands do.

The model: two TF-IDF vectorizers side by side, character n-grams of 2 to 5
inside words (robust to typos, inflections and compound words of German and
Dutch) and words and word pairs, both sublinear and accent-stripped, feeding a
multinomial logistic regression, whose probabilities are the confidence of a
decision. Training examples are the shipped corpus (``corpus/tickets.txt``)
plus every ticket whose category a staff member overrode (the audit trail's
last staff ``category`` change of each ticket, which replaces a corpus entry
with the same text).

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ticketing.desk.choices import CATEGORIES
from ticketing.desk.classifier.text_model import FORMAT, pack, ticket_text
from ticketing.desk.triage import Classifier, combine

SHIPPED_CORPUS = Path(__file__).with_name("corpus") / "tickets.txt"

#: Hyperparameters (chosen by k-fold accuracy on the corpus; see corpus/README.md).
CHAR_NGRAMS = (2, 5)
CHAR_MIN_DF = 2
WORD_NGRAMS = (1, 2)
C = 30.0
MAX_ITER = 5000
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

    @property
    def text(self) -> str:
        return ticket_text(self.title, self.description)


class CorpusError(ValueError):
    pass


def load_corpus(path: str | Path = SHIPPED_CORPUS) -> list[Example]:
    """The labelled tickets of a corpus file: ``category | title | description`` per line
    (``#`` starts a comment line)."""
    examples, problems = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" | ", 2)]
        if len(parts) != 3 or not all(parts):
            problems.append(f"{path}:{number}: not 'category | title | description'")
        elif parts[0] not in CATEGORIES:
            problems.append(f"{path}:{number}: unknown category {parts[0]!r}")
        else:
            examples.append(Example(parts[1], parts[2], parts[0], f"corpus:{number}"))
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
    return [e for e in corpus if e.text not in replaced] + list(overrides)


# ------------------------------------------------------------------ scikit-learn


def pipeline() -> Any:
    """A fresh, unfitted scikit-learn pipeline of the model."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    chars = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=CHAR_NGRAMS,
        min_df=CHAR_MIN_DF,
        sublinear_tf=True,
        strip_accents="unicode",
        lowercase=True,
    )
    words = TfidfVectorizer(
        analyzer="word",
        ngram_range=WORD_NGRAMS,
        sublinear_tf=True,
        strip_accents="unicode",
        lowercase=True,
    )
    return make_pipeline(make_union(chars, words), LogisticRegression(C=C, max_iter=MAX_ITER))


def fit_pipeline(examples: Sequence[Example]) -> Any:
    model = pipeline()
    model.fit([e.text for e in examples], [e.category for e in examples])
    return model


def export(fitted: Any) -> dict[str, Any]:
    """The parameters :class:`TextModel` needs, from a fitted :func:`pipeline`."""
    union, regression = fitted.steps[0][1], fitted.steps[-1][1]
    classes = [str(c) for c in regression.classes_]
    coef = regression.coef_
    vectorizers, offset = [], 0
    for _, vectorizer in union.transformer_list:
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
                "terms": [term for term, _ in terms],
                "weights": pack(weights),
            }
        )
        offset += len(terms)
    return {
        "format": FORMAT,
        "classes": classes,
        "intercept": [float(v) for v in regression.intercept_],
        "vectorizers": vectorizers,
    }


def fit(examples: Sequence[Example]) -> dict[str, Any]:
    """A model file's content (without its evaluation) fitted on ``examples``."""
    import sklearn

    data = export(fit_pipeline(examples))
    counts: dict[str, int] = {}
    for e in examples:
        source = e.source.split(":", 1)[0]
        counts[source] = counts.get(source, 0) + 1
    data["trained"] = {
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "examples": len(examples),
        "corpus": counts.get("corpus", 0),
        "overrides": counts.get("override", 0),
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


@dataclass
class Scores:
    """Accuracy of the model alone, the keyword rules alone and both combined (the
    product's decision) on some held-out tickets."""

    n: int = 0
    model: int = 0
    rules: int = 0
    combined: int = 0
    #: combined decisions below the triage threshold
    triaged: int = 0
    #: combined decisions at or above it that were right
    confident_right: int = 0
    per_category: dict[str, list[int]] = field(default_factory=dict)  # category -> [right, n]

    def add(self, truth: str, model: str, rules: str, combined: str, triaged: bool) -> None:
        self.n += 1
        self.model += model == truth
        self.rules += rules == truth
        self.combined += combined == truth
        self.triaged += triaged
        self.confident_right += not triaged and combined == truth
        right_n = self.per_category.setdefault(truth, [0, 0])
        right_n[0] += combined == truth
        right_n[1] += 1

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

    def accuracy(self, which: str = "combined") -> float:
        return getattr(self, which) / self.n if self.n else 0.0


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
        if o["n"]:
            out.append(
                f"staff overrides held out ({o['n']}): category accuracy "
                f"{pct(o['combined_accuracy'])} (keyword rules alone "
                f"{pct(o['rules_accuracy'])})"
            )
        out.append(f"score (k-fold category accuracy on the corpus): {pct(self.score)}")
        return out


def _score(
    fitted: Any,
    held_out: Iterable[Example],
    rules: Classifier,
    override_at: float,
    triage_below: float,
) -> Scores:
    held_out = list(held_out)
    scores = Scores()
    if not held_out:
        return scores
    regression = fitted.steps[-1][1]
    classes = [str(c) for c in regression.classes_]
    probabilities = fitted.predict_proba([e.text for e in held_out])
    for example, row in zip(held_out, probabilities, strict=True):
        p = dict(zip(classes, (float(v) for v in row), strict=True))
        model = max(p, key=p.__getitem__)
        rule, words = rules.rule_category(example.title, example.description)
        rule_only, _, _ = combine(rule, words, None, rules.settings.default_category, 1.0)
        combined, _, confidence = combine(
            rule, words, p, rules.settings.default_category, override_at
        )
        scores.add(
            example.category,
            model,
            rule_only,
            combined,
            confidence is not None and confidence < triage_below,
        )
    return scores


def corpus_digest(examples: Sequence[Example]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for e in examples:
        digest.update(f"{e.category}\x1f{e.title}\x1f{e.description}\x1e".encode())
    return digest.hexdigest()


def evaluate(
    corpus: Sequence[Example],
    overrides: Sequence[Example],
    rules: Classifier,
    override_at: float,
    triage_below: float,
    folds: int = FOLDS,
) -> Evaluation:
    """Held-out figures of the model trained on ``corpus`` plus ``overrides``."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    corpus = [e for e in corpus if e.text not in {o.text for o in overrides}]
    labels = [e.category for e in corpus]
    train, test = train_test_split(corpus, test_size=TEST_SIZE, stratify=labels, random_state=SEED)
    holdout = _score(fit_pipeline(train + list(overrides)), test, rules, override_at, triage_below)
    fold_scores, on_overrides = [], Scores()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for fold, (train_index, test_index) in enumerate(splitter.split(labels, labels)):
        held_overrides = [o for j, o in enumerate(overrides) if j % folds == fold]
        kept_overrides = [o for j, o in enumerate(overrides) if j % folds != fold]
        fitted = fit_pipeline([corpus[i] for i in train_index] + kept_overrides)
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
    )

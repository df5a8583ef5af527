"""The category model at inference: a fitted TF-IDF + logistic regression, scored in Python.

The model is trained with scikit-learn (:mod:`ticketing.classifier.training`)
but the ticket service does not import it: scikit-learn with NumPy and SciPy
adds about 95 MB to each gunicorn worker (benchmarks/RESULTS.md), nearly the
whole 120 MB budget. What a fitted pipeline computes for one text is small:

1. per vectorizer, the n-grams of the lower-cased, accent-stripped text
   (``char_wb`` n-grams inside words, or word n-grams of ``\\b\\w\\w+\\b``
   tokens), counted; ``1 + log(count)`` times the term's IDF; the vector
   scaled to unit length;
2. the vectors side by side, times each class's coefficients, plus its
   intercept; the softmax of those scores.

So the model file holds only those parameters (the vocabulary, each term's IDF
and coefficients, the intercepts) and :class:`TextModel` computes the same
probabilities as scikit-learn's ``predict_proba`` (tests/ticketing/
test_classifier.py checks it on the whole corpus, to 1e-9). The numbers are
stored as packed float64 arrays (base64 in the JSON), read straight into
``array("d")``: no Python float object per number, so the model costs a worker
a few MiB rather than the tens a parsed JSON list of lists would.

File format (JSON, gzip-compressed when the name ends in ``.gz``)::

    {"format": 1, "classes": [...], "intercept": [...],
     "vectorizers": [{"analyzer": "char_wb", "ngram_range": [2, 5],
                      "terms": [...],                    # in column order
                      "weights": "<base64 float64 LE>"}, # per term: idf, then one
                     ...],                               # coefficient per class
     "evaluation": {...}, "trained": {...}}

    model = TextModel.load(SHIPPED_MODEL)
    model.probabilities("Our API key leaked", "It was pushed to GitHub")
    # {"security": 0.91, "api": 0.03, ...}
"""
from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import re
import sys
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from operator import mul
from pathlib import Path
from typing import Any, Callable, Mapping

SHIPPED_MODEL = Path(__file__).with_name("model.json.gz")
FORMAT = 1


class ModelError(ValueError):
    """A model file that cannot be read or is not a model of this format."""


def ticket_text(title: str, description: str) -> str:
    """The text a ticket is classified by: the title counts twice, then the description."""
    return f"{title}\n{title}\n{description}"


def strip_accents(text: str) -> str:
    """What scikit-learn's ``strip_accents="unicode"`` does."""
    if text.isascii():
        return text
    normalized = unicodedata.normalize("NFKD", text)
    return "".join([c for c in normalized if not unicodedata.combining(c)])


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's ``analyzer="char_wb"``: n-grams inside words, padded with a space."""
    grams: list[str] = []
    append = grams.append
    for word in text.split():
        word = f" {word} "
        length = len(word)
        for n in range(low, high + 1):
            offset = 0
            append(word[:n])
            while offset + n < length:
                offset += 1
                append(word[offset:offset + n])
            if offset == 0:  # a word shorter than n counts once
                break
    return grams


_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's ``analyzer="word"`` with its default token pattern and no stop words."""
    tokens = _TOKEN.findall(text)
    grams = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        grams.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return grams


_ANALYZERS: dict[str, Callable[[str, int, int], list[str]]] = {
    "char_wb": char_wb_ngrams, "word": word_ngrams}


def pack(values) -> str:
    """float64 little-endian values as base64 (the model file's ``weights``)."""
    packed = array("d", values)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def unpack(text: str) -> array:
    packed = array("d")
    packed.frombytes(base64.b64decode(text, validate=True))
    if sys.byteorder != "little":
        packed.byteswap()
    return packed


@dataclass(frozen=True)
class _Vectorizer:
    """One TF-IDF vectorizer's part of the scores."""

    analyzer: Callable[[str, int, int], list[str]]
    low: int
    high: int
    #: term -> its row
    index: Mapping[str, int]
    #: per term: idf squared (the TF-IDF vector's norm)
    idf_squared: array
    #: per class: per term, idf * the class's coefficient
    columns: tuple[array, ...]

    def scores(self, text: str) -> list[float] | None:
        """This vectorizer's contribution to each class's score; None without a known term.

        The sums run in C (``sum(map(...))``) over the text's known terms, one
        pass per class, rather than a Python loop over terms and classes.
        """
        index = self.index
        counts = Counter([g for g in self.analyzer(text, self.low, self.high) if g in index])
        if not counts:
            return None
        rows = [index[term] for term in counts]
        # sublinear tf, as the model was fitted: 1 + log(count)
        tfs = [1.0 if n == 1 else 1.0 + math.log(n) for n in counts.values()]
        norm = math.sqrt(sum(map(mul, map(mul, tfs, tfs),
                                 map(self.idf_squared.__getitem__, rows))))
        return [sum(map(mul, tfs, map(column.__getitem__, rows))) / norm
                for column in self.columns]


class TextModel:
    """A fitted category model: :meth:`probabilities` of each category for a ticket."""

    def __init__(self, data: Mapping[str, Any]):
        try:
            if data.get("format") != FORMAT:
                raise ModelError(f"unknown model format {data.get('format')!r} "
                                 f"(this version reads {FORMAT})")
            self.classes: tuple[str, ...] = tuple(data["classes"])
            self.intercept: tuple[float, ...] = tuple(float(v) for v in data["intercept"])
            self.evaluation: dict[str, Any] = dict(data.get("evaluation") or {})
            self.trained: dict[str, Any] = dict(data.get("trained") or {})
            self._vectorizers = tuple(self._vectorizer(spec) for spec in data["vectorizers"])
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ModelError(f"not a category model ({exc.__class__.__name__}: {exc})") from None
        if len(self.intercept) != len(self.classes) or not self.classes:
            raise ModelError("not a category model (classes and intercepts differ)")

    def _vectorizer(self, spec: Mapping[str, Any]) -> _Vectorizer:
        analyzer = _ANALYZERS.get(spec["analyzer"])
        if analyzer is None:
            raise ModelError(f"unknown analyzer {spec['analyzer']!r}")
        low, high = (int(n) for n in spec["ngram_range"])
        k = len(self.classes)
        terms = spec["terms"]
        packed = unpack(spec["weights"])  # per term: idf, then k coefficients
        if len(packed) != len(terms) * (k + 1):
            raise ModelError(f"{len(packed)} weights for {len(terms)} terms and {k} classes")
        stride = k + 1
        idf = packed[::stride]
        columns = tuple(array("d", map(mul, idf, packed[c + 1::stride])) for c in range(k))
        index = {term: i for i, term in enumerate(terms)}
        if len(index) != len(terms):
            raise ModelError("a term is listed twice")
        return _Vectorizer(analyzer, low, high, index, array("d", map(mul, idf, idf)), columns)

    @classmethod
    def load(cls, path: str | Path) -> "TextModel":
        """Read a model file (JSON, gzip-compressed when its name ends in ``.gz``)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
            if path.suffix == ".gz":
                raw = gzip.decompress(raw)
            data = json.loads(raw)
        except OSError as exc:
            raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        except (ValueError, EOFError) as exc:
            raise ModelError(f"{path}: not a model file ({exc})") from None
        if not isinstance(data, dict):
            raise ModelError(f"{path}: not a model file")
        return cls(data)

    @property
    def terms(self) -> int:
        return sum(len(v.index) for v in self._vectorizers)

    def scores(self, text: str) -> list[float]:
        """Each class's score (scikit-learn's ``decision_function``) for a prepared text."""
        text = strip_accents(text.lower())
        totals = list(self.intercept)
        for vectorizer in self._vectorizers:
            part = vectorizer.scores(text)
            if part is not None:
                totals = [t + p for t, p in zip(totals, part)]
        return totals

    def probabilities_of_text(self, text: str) -> dict[str, float]:
        """Category -> probability (they sum to 1), for a prepared text."""
        scores = self.scores(text)
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = math.fsum(exps)
        return {c: e / total for c, e in zip(self.classes, exps)}

    def probabilities(self, title: str, description: str) -> dict[str, float]:
        """Category -> probability for a ticket (see :func:`ticket_text`)."""
        return self.probabilities_of_text(ticket_text(title, description))


@lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int, size: int) -> TextModel:
    return TextModel.load(path)


def load_model(path: str | Path) -> TextModel:
    """The model in ``path``, read once per process (again when the file changes)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return _cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)

"""The category and priority models at inference: TF-IDF + logistic regression, scored in Python.

The models are trained with scikit-learn (:mod:`ticketing.desk.classifier.training`)
but the ticket service does not import it: scikit-learn with NumPy and SciPy
adds about 95 MB to each gunicorn worker (benchmarks/RESULTS.md), nearly the
whole 120 MB budget. What a fitted model computes for one text is small:

1. the text prepared (:func:`prepare`): lower-cased, accents stripped from
   Latin letters, Hangul syllables and Japanese voiced kana kept whole;
2. for the word n-grams, the English pivot words of the glossary's terms
   found in it appended (:mod:`.glossary`; format 4: the vectorizers marked
   ``glossed``; format 3: both);
3. per vectorizer, the n-grams of that text (``char_wb`` n-grams inside
   whitespace-separated chunks, or word n-grams of ``\\b\\w\\w+\\b`` tokens),
   counted; ``1 + log(count)`` times the term's IDF; the vector scaled to unit
   length;
4. the vectors side by side, times each class's coefficients, plus its
   intercept; the softmax of those scores, once over the categories and once
   over the priorities (two logistic regressions on the same vectors).

So the model file holds only those parameters (the vocabulary, each term's IDF
and coefficients, the intercepts) and :class:`TextModel` computes the same
probabilities as scikit-learn's ``predict_proba`` (tests/ticketing/
test_classifier.py checks it on the whole corpus, to 1e-9). The numbers are
stored as packed float64 arrays (base64 in the JSON). At load each term's
numbers become one tuple (its IDF squared, then IDF times each coefficient),
so scoring a text sums the tuples of its terms column by column in C. The
shipped model keeps the 12,000 terms its first fit weighed most
(:data:`~.training.KEEP_TERMS`), which keeps those tuples to a few MiB per
worker.

How the model sees CJK text: Japanese (and Chinese) is written without spaces,
so a whole clause is one chunk and its character 2- to 4-grams run across word
boundaries, which is how CJK text is usually indexed without a dictionary (the
character bigrams carry most of the meaning). Korean separates words with
spaces; its syllables stay whole (Unicode NFKD would split each into jamo),
so an n-gram covers two to four syllables. The word vectorizer sees a
Japanese clause as one rare token and adds little there.

File format (JSON, gzip-compressed when the name ends in ``.gz``)::

    {"format": 4, "classes": [...], "intercept": [...],
     "priority": {"classes": [...], "intercept": [...],   # absent: no priority model
                  "raise_at": {"high": 0.12, "critical": 0.04},
                  "routine_weight": 0.75},
     "glossary": {"invoice": {"de": ["rechnung"], "ja": ["請求書"], ...}, ...},
     "vectorizers": [{"analyzer": "char_wb", "ngram_range": [2, 4],
                      "glossed": false,                  # reads the pivot words?
                      "terms": [...],                    # in column order
                      "weights": "<base64 float64 LE>"}, # per term: idf, then one
                     ...],                               # coefficient per category,
                                                         # then one per priority
     "evaluation": {...}, "trained": {...}}

Format 4 says per vectorizer whether it reads the glossed text (``glossed``):
the word n-grams do, the character n-grams read the text alone. Format 3 adds
the glossary the model was trained with (:mod:`.glossary`), and both its
vectorizers read the text with the English pivot words of its terms appended.
Format 3, format 2 files (no glossary) and format 1 files (the category model
alone, texts prepared with NFKD accent stripping throughout) are still read.

    model = TextModel.load(SHIPPED_MODEL)
    model.probabilities("Our API key leaked", "It was pushed to GitHub")
    # {"security": 0.91, "api": 0.03, ...}
    model.priority_probabilities("Payouts stopped", "Nothing went out since 07:30")
    # {"critical": 0.81, "high": 0.12, ...}
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import add
from pathlib import Path
from typing import Any

import ahocorasick

from ticketing.desk.classifier.glossary import Glossary, GlossaryError

SHIPPED_MODEL = Path(__file__).with_name("model.json.gz")
FORMAT = 4
#: Model file formats this version reads.
FORMATS = (1, 2, 3, 4)


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


#: Combining marks kept by :func:`prepare`: the Japanese voicing marks (as in が, ぱ).
_KEEP_MARKS = frozenset("\u3099\u309a")


def prepare(text: str) -> str:
    """The text as the model reads it (format 2): lower-cased, Latin accents stripped,
    Hangul syllables and voiced kana whole, compatibility forms folded (full-width
    ``ＡＰＩ`` -> ``api``).

    NFKD and dropping the combining marks is what scikit-learn's
    ``strip_accents="unicode"`` does; NFC afterwards puts the Hangul jamo back
    into syllables and the kept voicing marks back on their kana. Latin text
    comes out as with ``strip_accents`` alone.
    """
    text = text.lower()
    if text.isascii():
        return text
    normalized = unicodedata.normalize("NFKD", text)
    kept = "".join([c for c in normalized if not unicodedata.combining(c) or c in _KEEP_MARKS])
    return unicodedata.normalize("NFC", kept)


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
                append(word[offset : offset + n])
            if offset == 0:  # a word shorter than n counts once
                break
    return grams


_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's ``analyzer="word"`` with its default token pattern and no stop words."""
    tokens = _TOKEN.findall(text)
    grams = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


def pack(values: Iterable[float]) -> str:
    """float64 little-endian values as base64 (the model file's ``weights``)."""
    packed = array("d", values)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def unpack(text: str) -> array[float]:
    packed = array("d")
    packed.frombytes(base64.b64decode(text, validate=True))
    if sys.byteorder != "little":
        packed.byteswap()
    return packed


def _char_wb_matcher(terms: list[str]) -> Callable[[str], list[int]]:
    """The rows of a ``char_wb`` vocabulary's terms in a text, found in one pass.

    A ``char_wb`` n-gram lies inside one word padded with a space on each side
    (:func:`char_wb_ngrams`). So the words are joined with two spaces, padded,
    and an Aho-Corasick automaton of the terms finds, in C, every place one of
    them occurs: the same terms, as often, as the n-grams of each word would
    give. A term with whitespace other than its padding cannot be such an
    n-gram and is left out of the automaton (it never matches anyway).
    """
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for row, term in enumerate(terms):
        core = term[1:] if term.startswith(" ") else term
        core = core[:-1] if core.endswith(" ") else core
        if core and not any(c.isspace() for c in core):
            automaton.add_word(term, row)
    if len(automaton) == 0:
        return lambda text: []
    automaton.make_automaton()
    iterate = automaton.iter

    def rows(text: str) -> list[int]:
        return [row for _, row in iterate(" " + "  ".join(text.split()) + " ")]

    return rows


def _word_matcher(terms: list[str], low: int, high: int) -> Callable[[str], list[int]]:
    """The rows of a word vocabulary's terms in a text (its :func:`word_ngrams`)."""
    lookup = {term: row for row, term in enumerate(terms)}.get

    def rows(text: str) -> list[int]:
        return [row for row in map(lookup, word_ngrams(text, low, high)) if row is not None]

    return rows


@dataclass(frozen=True)
class _Vectorizer:
    """One TF-IDF vectorizer's part of the scores."""

    #: text -> the row of each known term occurrence in it
    rows: Callable[[str], list[int]]
    #: per term (row), a tuple: idf squared (for the vector's norm), then idf times
    #: each class's coefficient
    table: list[tuple[float, ...]]
    #: whether it reads the text with the glossary's pivot words appended
    glossed: bool = False

    @property
    def terms(self) -> int:
        return len(self.table)

    def scores(self, text: str) -> list[float] | None:
        """This vectorizer's contribution to each class's score; None without a known term.

        The terms are grouped by how often they occur (1 for most, 2 for those
        of the title, which a ticket's text holds twice): the rows of a group
        are summed column by column in C (``zip`` and ``sum`` over the stored
        tuples), then scaled once by the group's ``1 + log(count)`` (sublinear
        tf, as the model was fitted; its square for the first column, the
        squared norm).
        """
        counts = Counter(self.rows(text))
        if not counts:
            return None
        table = self.table
        items = counts.items()
        groups: dict[int, list[tuple[float, ...]]] = {
            1: [table[row] for row, n in items if n == 1],
            2: [table[row] for row, n in items if n == 2],
        }
        for row, n in [(row, n) for row, n in items if n > 2]:
            groups.setdefault(n, []).append(table[row])
        totals: list[float] | None = None
        for n, rows in groups.items():
            if not rows:
                continue
            sums = [sum(column) for column in zip(*rows)]  # noqa: B905 (rows of one length)
            if n > 1:
                tf = 1.0 + math.log(n)
                sums = [sums[0] * tf * tf, *(value * tf for value in sums[1:])]
            totals = sums if totals is None else list(map(add, totals, sums))
        assert totals is not None  # counts is not empty
        norm = math.sqrt(totals[0])
        return [value / norm for value in totals[1:]]


class TextModel:
    """A fitted category model: :meth:`probabilities` of each category for a ticket."""

    def __init__(self, data: Mapping[str, Any]):
        try:
            if data.get("format") not in FORMATS:
                raise ModelError(
                    f"unknown model format {data.get('format')!r} (this version reads "
                    + " and ".join(str(f) for f in FORMATS)
                    + ")"
                )
            self.format = int(data["format"])
            self.classes: tuple[str, ...] = tuple(data["classes"])
            self.intercept: tuple[float, ...] = tuple(float(v) for v in data["intercept"])
            priority = data.get("priority") if self.format >= 2 else None
            #: The priority model's classes (empty: the file has no priority model).
            self.priority_classes: tuple[str, ...] = tuple(priority["classes"]) if priority else ()
            self.priority_intercept: tuple[float, ...] = (
                tuple(float(v) for v in priority["intercept"]) if priority else ()
            )
            #: priority -> the probability of it or above at which the model raises to it
            self.raise_at: dict[str, float] = (
                {str(k): float(v) for k, v in priority["raise_at"].items()} if priority else {}
            )
            #: how much of the probability of a routine question counts against raising
            self.routine_weight = float(priority.get("routine_weight", 0.0)) if priority else 0.0
            self._prepare = prepare if self.format >= 2 else _prepare_v1
            glossary = data.get("glossary") if self.format >= 3 else None
            #: the glossary the model was trained with (None: it reads texts without one)
            self.glossary = Glossary.from_mapping(glossary, "glossary") if glossary else None
            self.evaluation: dict[str, Any] = dict(data.get("evaluation") or {})
            self.trained: dict[str, Any] = dict(data.get("trained") or {})
            self._vectorizers = tuple(self._vectorizer(spec) for spec in data["vectorizers"])
            self._reads_glossed = any(v.glossed for v in self._vectorizers)
        except ModelError:
            raise
        except GlossaryError as exc:
            raise ModelError(f"not a usable glossary ({exc})") from None
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ModelError(f"not a category model ({exc.__class__.__name__}: {exc})") from None
        if len(self.intercept) != len(self.classes) or not self.classes:
            raise ModelError("not a category model (classes and intercepts differ)")
        if len(self.priority_intercept) != len(self.priority_classes):
            raise ModelError("not a priority model (classes and intercepts differ)")
        if set(self.raise_at) - set(self.priority_classes):
            raise ModelError("raise_at names a priority the model does not know")

    def _vectorizer(self, spec: Mapping[str, Any]) -> _Vectorizer:
        analyzer = spec["analyzer"]
        if analyzer not in ("char_wb", "word"):
            raise ModelError(f"unknown analyzer {analyzer!r}")
        low, high = (int(n) for n in spec["ngram_range"])
        k = len(self.classes) + len(self.priority_classes)
        terms = list(spec["terms"])
        packed = unpack(spec["weights"])  # per term: idf, then k coefficients
        if len(packed) != len(terms) * (k + 1):
            raise ModelError(f"{len(packed)} weights for {len(terms)} terms and {k} classes")
        if len(set(terms)) != len(terms):
            raise ModelError("a term is listed twice")
        stride = k + 1
        table = []
        for offset in range(0, len(packed), stride):
            idf = packed[offset]
            table.append((idf * idf, *(idf * c for c in packed[offset + 1 : offset + stride])))
        if analyzer == "char_wb":
            rows = _char_wb_matcher(terms)
        else:
            rows = _word_matcher(terms, low, high)
        # format 3: every vectorizer reads the glossed text; format 4 says which do
        glossed = spec.get("glossed", self.format == 3)
        if not isinstance(glossed, bool):
            raise ModelError(f"glossed is {glossed!r}, not true or false")
        return _Vectorizer(rows, table, glossed and self.glossary is not None)

    @classmethod
    def load(cls, path: str | Path) -> TextModel:
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
        return sum(v.terms for v in self._vectorizers)

    def scores(self, text: str) -> list[float]:
        """Each class's score (scikit-learn's ``decision_function``) for a ticket's text
        (:func:`ticket_text`): the categories', then the priorities'."""
        text = self._prepare(text)
        glossed = text
        if self.glossary is not None and self._reads_glossed:
            glossed = self.glossary.gloss(text)
        totals = [*self.intercept, *self.priority_intercept]
        for vectorizer in self._vectorizers:
            part = vectorizer.scores(glossed if vectorizer.glossed else text)
            if part is not None:
                totals = [t + p for t, p in zip(totals, part, strict=True)]
        return totals

    def both_of_text(self, text: str) -> tuple[dict[str, float], dict[str, float] | None]:
        """Category -> probability and priority -> probability (None without a priority
        model), from one pass over the text."""
        scores = self.scores(text)
        k = len(self.classes)
        categories = _softmax(self.classes, scores[:k])
        if not self.priority_classes:
            return categories, None
        return categories, _softmax(self.priority_classes, scores[k:])

    def probabilities_of_text(self, text: str) -> dict[str, float]:
        """Category -> probability (they sum to 1), for a ticket's text."""
        return self.both_of_text(text)[0]

    def probabilities(self, title: str, description: str) -> dict[str, float]:
        """Category -> probability for a ticket (see :func:`ticket_text`)."""
        return self.probabilities_of_text(ticket_text(title, description))

    def priority_probabilities(self, title: str, description: str) -> dict[str, float] | None:
        """Priority -> probability for a ticket; None when the file has no priority model."""
        return self.both_of_text(ticket_text(title, description))[1]

    def both(
        self, title: str, description: str
    ) -> tuple[dict[str, float], dict[str, float] | None]:
        """:meth:`probabilities` and :meth:`priority_probabilities` at the cost of one."""
        return self.both_of_text(ticket_text(title, description))


def _softmax(classes: tuple[str, ...], scores: list[float]) -> dict[str, float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = math.fsum(exps)
    return {c: e / total for c, e in zip(classes, exps, strict=True)}


def _prepare_v1(text: str) -> str:
    """How format 1 models read a text: lower-cased, NFKD accent stripping throughout."""
    return strip_accents(text.lower())


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

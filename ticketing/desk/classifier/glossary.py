"""The domain glossary: words of the partners' other languages glossed with an English pivot.

Most of the corpus is English, so the models learn most of what a word means
from English tickets. A Korean ticket about a 청구서, a Japanese one about a
請求書 or a German one about a Rechnung shares no n-gram with an English one
about an invoice, and with a hundred tickets per language the model cannot
learn every such word from those alone. The glossary (``glossary.yml``, next to
this module) maps each language's words for the platform's concepts to the
English word the English tickets use; the models read a ticket's words with the
pivot words of the terms found in it appended (:meth:`Glossary.gloss`), so
what they learned from the English tickets applies to the others too. The
original text stays: a word the glossary lacks still counts as itself.

How a term matches, on the text as :func:`~.text_model.prepare` leaves it
(lower-cased, Latin accents stripped):

- German, French, Spanish, Dutch and Korean: at the start of a word, so a stem
  covers its inflections and the compounds that begin with it (``rechnung``:
  "Rechnungen", "Rechnungsnummer"; ``청구서``: "청구서가", "청구서를");
- Japanese (and any term without a space-separated script): anywhere, as
  Japanese is written without spaces.

The glossary a model was trained with is stored in its model file (format 3 on),
so a changed glossary takes effect when the model is retrained, never under a
model fitted without it.

    glossary = Glossary.from_mapping({"invoice": {"de": ["rechnung"], "ja": ["請求書"]}})
    glossary.gloss("die rechnungen für mai")   # "die rechnungen für mai\\n invoice"
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ahocorasick
import yaml

SHIPPED_GLOSSARY = Path(__file__).with_name("glossary.yml")
#: The languages whose terms match anywhere in a word (written without spaces).
ANYWHERE = frozenset({"ja", "zh"})
LANGUAGES = frozenset({"de", "fr", "es", "nl", "ko", "ja", "zh"})


class GlossaryError(ValueError):
    """A glossary that cannot be used, with one ``location: problem`` line per problem."""


class Glossary:
    """The terms of a glossary, found in a prepared text in one pass (Aho-Corasick)."""

    def __init__(self, entries: Mapping[str, Mapping[str, list[str]]]):
        from ticketing.desk.classifier.text_model import prepare  # it imports this module

        #: pivot -> language -> terms, as given (what a model file stores)
        self.entries = {p: {lang: list(t) for lang, t in by.items()} for p, by in entries.items()}
        automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY)
        found: dict[str, list[tuple[str, bool]]] = {}
        for pivot, by_language in self.entries.items():
            for language, terms in by_language.items():
                for term in terms:
                    key = prepare(term).strip()
                    if key:
                        found.setdefault(key, []).append((pivot, language in ANYWHERE))
        for key, pivots in found.items():
            automaton.add_word(key, (len(key), tuple(dict.fromkeys(pivots))))
        self.terms = len(found)
        self._automaton = automaton
        if self.terms:
            automaton.make_automaton()

    @classmethod
    def from_mapping(cls, data: Any, source: str = "glossary") -> Glossary:
        """A glossary from parsed YAML or a model file's ``glossary``; problems located."""
        problems = []
        if not isinstance(data, Mapping):
            raise GlossaryError(f"{source}: not a mapping of pivot words")
        for pivot, by_language in data.items():
            where = f"{source}.{pivot}"
            if not isinstance(pivot, str) or not pivot.strip() or pivot != pivot.lower():
                problems.append(f"{where}: a pivot is a lower-case English word")
            if not isinstance(by_language, Mapping):
                problems.append(f"{where}: not a mapping of languages to terms")
                continue
            for language, terms in by_language.items():
                if language not in LANGUAGES:
                    problems.append(
                        f"{where}.{language}: unknown language (one of "
                        + ", ".join(sorted(LANGUAGES))
                        + ")"
                    )
                elif not isinstance(terms, list) or not all(
                    isinstance(t, str) and t.strip() for t in terms
                ):
                    problems.append(f"{where}.{language}: not a list of terms")
                elif language in ANYWHERE and any(len(t.strip()) < 2 for t in terms):
                    problems.append(
                        f"{where}.{language}: a term matched anywhere needs 2 characters"
                    )
        if problems:
            raise GlossaryError("\n".join(problems))
        return cls(data)

    @classmethod
    def load(cls, path: str | Path = SHIPPED_GLOSSARY) -> Glossary:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise GlossaryError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise GlossaryError(f"{path}: not YAML ({exc})") from None
        return cls.from_mapping(data, path.name)

    def pivots(self, text: str) -> list[str]:
        """The pivot words of the terms in a prepared text, once per occurrence."""
        if not self.terms:
            return []
        out: list[str] = []
        for end, (length, pivots) in self._automaton.iter(text):
            start = end - length + 1
            at_word_start = start == 0 or not text[start - 1].isalnum()
            out.extend(pivot for pivot, anywhere in pivots if anywhere or at_word_start)
        return out

    def gloss(self, text: str) -> str:
        """A prepared text with the pivot words of its terms appended (unchanged without)."""
        pivots = self.pivots(text)
        return text + "\n " + " ".join(pivots) if pivots else text

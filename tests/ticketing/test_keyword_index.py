"""The classifier finds keywords in one pass, with the same result as one pattern per keyword.

The reference is the plain definition: ``keyword_pattern(kw)`` searched (does
it occur?) and ``findall``-ed (how often?) for every keyword of every rule.
Compared on the ordinary support texts of the security corpus and on random
texts built to trip it up (overlaps, shared prefixes, case oddities).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ticketing.config import load_sections
from ticketing.desk.choices import max_priority, priority_rank
from ticketing.desk.settings import check_core
from ticketing.desk.triage import Classifier, KeywordIndex, keyword_pattern

CORPUS = Path(__file__).parents[1] / "security" / "corpus" / "tickets.txt"


@pytest.fixture(scope="module")
def settings():
    return check_core(load_sections()).classification


def reference_priority(settings, title, description, requested):
    start = requested or settings.default_priority
    priority, reasons = start, []
    texts = {"title": title, "description": description}
    for rule in settings.priority_rules:
        for field in rule.fields:
            hit = next(
                (kw for kw in rule.keywords if keyword_pattern(kw).search(texts[field])), None
            )
            if hit is not None:
                if priority_rank(rule.priority) > priority_rank(start):
                    reasons.append(f"rule {rule.name}: {hit!r} in {field}")
                    priority = max_priority(priority, rule.priority)
                break
    return priority, ("; ".join(reasons) if priority != start else None)


def reference_category(settings, title, description):
    text = f"{title}\n{description}"
    best, best_hits, best_words = None, 0, []
    for category, keywords in settings.category_rules:
        words = [kw for kw in keywords if keyword_pattern(kw).search(text)]
        hits = sum(len(keyword_pattern(kw).findall(text)) for kw in keywords)
        if hits > best_hits:
            best, best_hits, best_words = category, hits, words
    if best is None:
        return settings.default_category, "no keyword matched"
    return best, "keywords: " + ", ".join(best_words)


def test_the_corpus_is_classified_as_by_the_reference(settings):
    classifier = Classifier(settings)
    lines = [line for line in CORPUS.read_text().splitlines() if line.strip()]
    assert len(lines) > 500
    matched = 0
    for line in lines:
        title, description = line[:80], line
        assert classifier.category(title, description) == reference_category(
            settings, title, description
        ), line
        for requested in (None, "low", "high"):
            assert classifier.priority(title, description, requested) == reference_priority(
                settings, title, description, requested
            ), line
        matched += classifier.category(title, description)[1] != "no keyword matched"
    assert matched > 100  # the corpus does exercise the rules


def test_random_texts_match_as_one_pattern_per_keyword_would():
    keywords = ["x-x", "aa", "a", "bill", "billing", "log in", "s", "k", "ſ", "i", "5"]
    keywords += ["障害", "全", "ム障", "ア"]  # Japanese: anywhere, not only at a word's start
    index = KeywordIndex(keywords)
    rng = random.Random(20250131)
    alphabet = "xa-_ bilngsSkKſK\nogLOGİı5é障害全ムのアｱ"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        found = index.positions(text)
        for keyword in keywords:
            pattern = keyword_pattern(keyword)
            assert (keyword in found) == (pattern.search(text) is not None), (text, keyword)
            assert index.count(found, keyword) == len(pattern.findall(text)), (text, keyword)


def test_an_index_without_keywords_finds_nothing():
    assert KeywordIndex([]).positions("anything at all") == {}


def test_japanese_keywords_match_inside_a_run_of_text_latin_ones_at_a_word_start():
    """Japanese has no spaces: "システム障害が発生" is one run of word characters, so a
    keyword there must match anywhere; a Latin or Korean one still starts a word."""
    index = KeywordIndex(["障害", "bill", "장애"])
    assert index.positions("システム障害が発生") == {"障害": [4]}
    assert index.positions("rebill, 서비스장애 bill 장애") == {"bill": [14], "장애": [19]}
    assert keyword_pattern("障害").findall("API障害とDB障害") == ["障害", "障害"]
    assert keyword_pattern("bill").findall("rebill bill") == ["bill"]


@pytest.mark.parametrize(
    ("title", "description", "priority", "rule"),
    [
        ("本番停止しています", "朝から送金ができません", "critical", "outage"),
        ("接続エラー", "残高照会も送金も全滅です", "critical", "outage"),
        ("Plus rien ne passe", "Depuis ce matin, plus rien ne fonctionne.", "critical", "outage"),
        ("서비스 중단", "오늘 아침부터 정산이 안 됩니다", "critical", "outage"),
        (
            "key leak??",
            "i think our key leaked, there are transfers we didnt make",
            "high",
            "compromise",
        ),
        ("APIキー", "APIキーが漏洩した可能性があります", "high", "compromise"),
        ("Konto gehackt", "Jemand hat sich angemeldet.", "high", "compromise"),
    ],
)
def test_the_shipped_rules_read_a_stop_or_a_compromise_in_each_language(
    settings, title, description, priority, rule
):
    decided, reason = Classifier(settings).priority(title, description, None)
    assert decided == priority and f"rule {rule}:" in reason, (decided, reason)

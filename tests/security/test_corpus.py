"""False positives: ordinary support texts raise nothing (see corpus/README.md)."""

from __future__ import annotations

from tests.harness.security import counter, events, key, load_corpus
from ticketing.security.patterns import detect

CORPUS = load_corpus("tickets.txt")
DELIBERATE = load_corpus("deliberate.txt")


def test_the_corpus_is_large_and_varied():
    assert len(CORPUS) >= 150
    text = "\n".join(t + "\n" + d for t, d in CORPUS).lower()
    for word in (
        "select",
        "drop",
        "delete",
        "union",
        "script",
        "../",
        "<",
        "'",
        '"',
        "%",
        "insert",
        "update",
        "curl",
        "#!/bin/bash",
        "c:\\",
        "<p>",
        "1=1",
        "--",
    ):
        assert word in text, word


def test_no_signature_matches_ordinary_text():
    matches = [
        (title, f.pattern_class.value, f.excerpt)
        for title, description in CORPUS
        for part in ("json", "form", "header")
        for value in (title, description)
        for f in detect(value, part)
    ]
    assert matches == [], f"{len(matches)} false positives: {matches[:5]}"


def test_ordinary_tickets_sent_to_the_app_record_no_event(make_app):
    app = make_app(ratelimits={"enabled": False})
    client = app.test_client()
    before = counter("security_events_total", type="SUSPICIOUS_PATTERN", severity="warning")
    for title, description in CORPUS:
        r = client.post(
            "/api/v1/echo",
            json={"title": title, "description": description},
            headers=key("partner1"),
        )
        assert r.status_code == 200 and r.json["body"]["description"] == description
        r = client.post(
            "/api/v1/echo",
            data={"title": title, "description": description},
            headers=key("partner1"),
        )
        assert r.status_code == 200
        r = client.get("/api/v1/echo", query_string={"q": title}, headers=key("partner1"))
        assert r.status_code == 200 and r.json["args"]["q"] == title
    assert events(app) == []
    assert counter("security_events_total", type="SUSPICIOUS_PATTERN", severity="warning") == before


def test_texts_that_quote_an_attack_are_reported_on_purpose():
    for title, description in DELIBERATE:
        assert detect(description, "json"), title

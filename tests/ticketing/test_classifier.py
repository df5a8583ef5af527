"""The category model: the shipped file, the scorer against scikit-learn,
how keyword rules and model combine, confidence in the audit trail, triage in the queue."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.harness.app import create_test_app, migrated_app, ticketing_config
from ticketing.config import ConfigError
from ticketing.desk.choices import CATEGORIES
from ticketing.desk.classifier import training
from ticketing.desk.classifier.settings import check_section
from ticketing.desk.classifier.text_model import (
    SHIPPED_MODEL,
    ModelError,
    TextModel,
    _char_wb_matcher,
    char_wb_ngrams,
    load_model,
    strip_accents,
    ticket_text,
    word_ngrams,
)
from ticketing.desk.triage import combine

CORPUS = training.load_corpus()


def test_the_corpus_is_large_varied_and_multilingual():
    assert len(CORPUS) >= 400
    per_category = {c: sum(e.category == c for e in CORPUS) for c in CATEGORIES}
    assert min(per_category.values()) >= 60, per_category
    text = "\n".join(f"{e.title} {e.description}" for e in CORPUS).lower()
    for word in (
        "rechnung",
        "factuur",
        "facture",
        "factura",  # German, Dutch, French, Spanish
        "leaked",
        "suspicious",
        "pending",
        "stuck",
        "migration",
        "sync",
    ):
        assert word in text, word
    # the miss classes are well represented
    security = [e for e in CORPUS if e.category == "security"]
    technical = [e for e in CORPUS if e.category == "technical"]
    assert sum("key" in (e.title + e.description).lower() for e in security) >= 20
    assert sum("login" in (e.title + e.description).lower() for e in security) >= 8
    for theme in ("deposit", "pending", "sync", "migration", "maintenance"):
        assert sum(theme in (e.title + e.description).lower() for e in technical) >= 4, theme


def test_the_shipped_model_is_evaluated_and_good_enough():
    model = load_model(SHIPPED_MODEL)
    assert set(model.classes) == set(CATEGORIES)
    evaluation = model.evaluation
    assert evaluation["examples"] == len(CORPUS)
    assert evaluation["corpus_sha256"] == training.corpus_digest(CORPUS)
    assert evaluation["kfold"]["combined_accuracy"] >= 0.95
    assert evaluation["holdout"]["combined_accuracy"] >= 0.95
    assert model.trained["scikit_learn"]


def test_the_scorer_gives_scikit_learns_probabilities_on_the_whole_corpus():
    fitted = training.fit_pipeline(CORPUS)
    model = TextModel(training.export(fitted))
    expected = fitted.predict_proba([e.text for e in CORPUS])
    classes = [str(c) for c in fitted.steps[-1][1].classes_]
    worst = 0.0
    for example, row in zip(CORPUS, expected, strict=True):
        mine = model.probabilities(example.title, example.description)
        worst = max(worst, max(abs(mine[c] - float(p)) for c, p in zip(classes, row, strict=True)))
    assert worst < 1e-9
    # and the analyzers are scikit-learn's own
    chars, words = (v for _, v in fitted.steps[0][1].transformer_list)
    text = "Zählerstand über   Nacht: don't-stop 2x API/v1 ok"
    prepared = chars.build_preprocessor()(text)
    assert char_wb_ngrams(prepared, 2, 5) == chars.build_analyzer()(text)
    assert word_ngrams(prepared, 1, 2) == words.build_analyzer()(text)


def test_the_automaton_finds_the_known_n_grams_each_word_gives():
    """The one-pass matcher counts exactly the vocabulary n-grams of char_wb_ngrams."""
    terms = sorted({"ap", "api", " api", "api ", " api ", "key", "ey ", "ü", " z", "a b"})
    rows = _char_wb_matcher(terms, 1)
    texts = [strip_accents(ticket_text(e.title, e.description).lower()) for e in CORPUS]
    texts += ["", "   ", "api", "  api  key\n\tapi ", "a b", "zählerstand über"]
    known = set(terms)
    for text in texts:
        expected = Counter(t for t in char_wb_ngrams(text, 1, 5) if t in known)
        assert Counter(terms[row] for row in rows(text)) == expected, text


def test_the_miss_classes_go_where_they_belong():
    model = load_model(SHIPPED_MODEL)
    cases = {
        "security": [
            (
                "Key found in a public repository",
                "Our production key was committed to GitHub yesterday, please revoke it.",
            ),
            (
                "Sign-ins we did not make",
                "The portal shows logins from an address in another country at 3am.",
            ),
        ],
        "technical": [
            ("Deposit still not credited", "Our deposit from Monday is stuck in pending."),
            ("Balance lags behind", "The wallet balance is an hour behind, sync lag?"),
            ("Migration window", "Will transfers be queued during Sunday's migration?"),
        ],
    }
    for category, tickets in cases.items():
        for title, description in tickets:
            p = model.probabilities(title, description)
            assert max(p, key=p.get) == category, (title, p)


def test_rules_and_model_combine_as_documented():
    p = {"security": 0.7, "account": 0.2, "api": 0.1}
    assert combine(None, [], None, "other", 0.4) == ("other", "no keyword matched", None)
    assert combine("api", ["api"], None, "other", 0.4) == ("api", "keywords: api", None)
    category, reason, confidence = combine(None, [], p, "other", 0.4)
    assert (category, confidence) == ("security", 0.7) and "no keyword matched" in reason
    category, reason, confidence = combine("security", ["leaked"], p, "other", 0.4)
    assert (category, confidence) == ("security", 0.7) and "model agrees" in reason
    category, reason, confidence = combine("account", ["login"], p, "other", 0.4)
    assert (category, confidence) == ("security", 0.7)
    assert reason == "model: security p=0.70 over keywords: login (account)"
    # not confident enough to override: the keywords stand, with the model's probability
    category, reason, confidence = combine("account", ["login"], p, "other", 0.8)
    assert (category, confidence) == ("account", 0.2) and "prefers security" in reason


def test_configuration_is_checked_with_locations(tmp_path):
    assert check_section({}).triage_below == 0.4
    with pytest.raises(ConfigError) as info:
        check_section(
            {
                "classifier": {
                    "triage_below": 2,
                    "override_rules_at": "high",
                    "enabled": "yes",
                    "model": "",
                    "extra": 1,
                }
            }
        )
    assert sorted(info.value.problems) == [
        "classifier.enabled: must be true or false (got 'yes')",
        "classifier.extra: unknown setting",
        "classifier.model: must be the path of a model file or null (got '')",
        "classifier.override_rules_at: must be a number between 0 and 1 (got 'high')",
        "classifier.triage_below: must be a number between 0 and 1 (got 2)",
    ]
    broken = tmp_path / "model.json"
    broken.write_text(json.dumps({"format": 99}))
    with pytest.raises(ModelError, match="unknown model format 99"):
        TextModel.load(broken)
    with pytest.raises(ConfigError, match="classifier.model: .*cannot be read"):
        create_test_app(
            ticketing_config(
                f"sqlite:///{tmp_path}/t.db",
                tmp_path,
                TICKETING={"classifier": {"model": str(tmp_path / "no")}},
            ),
            migrate=False,
        )


# ------------------------------------------------------------------ through the API


def _audit(client, staff, ticket_id):
    return client.get(f"/api/v1/staff/tickets/{ticket_id}/audit", headers=staff.headers).json


def test_decisions_carry_their_confidence_and_the_model_decides_the_misses(client, make):
    acme, agent = make.partner(), make.staff()
    leaked = make.ticket(
        acme,
        title="Our API key is on GitHub",
        description="A developer pushed the production API key to a public repo. Please revoke it.",
    )
    assert leaked["category"] == "security"
    stuck = make.ticket(
        acme,
        title="Deposit stuck",
        description="Our deposit is still pending since Monday morning.",
    )
    assert stuck["category"] == "technical"
    for ticket in (leaked, stuck):
        [decision] = [e for e in _audit(client, agent, ticket["id"]) if e["field"] == "category"]
        assert decision["actor_kind"] == "system" and 0.4 <= decision["confidence"] <= 1
        staff_view = client.get(f"/api/v1/staff/tickets/{ticket['id']}", headers=agent.headers).json
        assert staff_view["category_confidence"] == decision["confidence"]
        assert staff_view["needs_triage"] is False
    # a partner's own category has no confidence and needs no triage
    chosen = make.ticket(acme, title="x", description="y", category="billing")
    [decision] = [e for e in _audit(client, agent, chosen["id"]) if e["field"] == "category"]
    assert decision["actor_kind"] == "partner" and decision["confidence"] is None


@pytest.fixture
def triage_app(db_url, tmp_path):
    config = ticketing_config(db_url, tmp_path)
    config["TICKETING"]["classifier"] = {"triage_below": 0.999}
    yield from migrated_app(config)


def test_low_confidence_tickets_wait_for_triage_in_the_staff_queue(triage_app):
    from tests.harness.seed import Maker

    client = triage_app.test_client()
    make = Maker(triage_app, client)
    acme, agent = make.partner(), make.staff()
    vague = make.ticket(acme, title="Question", description="Can someone call me back?")
    sure = make.ticket(acme, title="Something", description="Anything", category="other")

    def queue(**q) -> list[int]:
        page = client.get("/api/v1/staff/tickets", query_string=q, headers=agent.headers)
        return [t["id"] for t in page.json["items"]]

    assert queue(needs_triage="true") == [vague["id"]]
    assert queue(needs_triage="false") == [sure["id"]]
    entries = {e["field"]: e for e in _audit(client, agent, vague["id"])}
    assert entries["needs_triage"]["after"] == "True"
    assert entries["needs_triage"]["confidence"] == entries["category"]["confidence"] < 0.999
    bad = client.get(
        "/api/v1/staff/tickets", query_string={"needs_triage": "maybe"}, headers=agent.headers
    )
    assert bad.status_code == 422

    # staff confirming the category (even unchanged) ends the triage, and it is audited
    r = client.patch(
        f"/api/v1/staff/tickets/{vague['id']}",
        headers=agent.headers,
        json={"category": vague["category"]},
    )
    assert r.status_code == 200 and r.json["needs_triage"] is False
    assert queue(needs_triage="true") == []
    last = _audit(client, agent, vague["id"])[-1]
    assert (last["actor_kind"], last["field"], last["after"], last["reason"]) == (
        "staff",
        "needs_triage",
        "False",
        "category confirmed by staff",
    )


def test_without_the_model_the_rules_decide_alone(db_url, tmp_path):
    config = ticketing_config(db_url, tmp_path)
    config["TICKETING"]["classifier"] = {"enabled": False}
    for app in migrated_app(config):
        from tests.harness.seed import Maker

        client = app.test_client()
        make = Maker(app, client)
        acme, agent = make.partner(), make.staff()
        ticket = make.ticket(acme, title="Deposit stuck", description="Still pending.")
        assert ticket["category"] == "other"  # no keyword matches
        [decision] = [e for e in _audit(client, agent, ticket["id"]) if e["field"] == "category"]
        assert decision["reason"] == "no keyword matched" and decision["confidence"] is None

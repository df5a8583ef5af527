"""The category and priority models: the shipped file, the scorer against scikit-learn,
how keyword rules and model combine, confidence in the audit trail, triage in the queue,
a priority the model raises (never lowers)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.harness.app import create_test_app, migrated_app, ticketing_config
from ticketing.config import ConfigError
from ticketing.desk.choices import CATEGORIES, PRIORITIES
from ticketing.desk.classifier import training
from ticketing.desk.classifier.glossary import Glossary, GlossaryError
from ticketing.desk.classifier.settings import check_section
from ticketing.desk.classifier.text_model import (
    SHIPPED_MODEL,
    ModelError,
    TextModel,
    _char_wb_matcher,
    char_wb_ngrams,
    load_model,
    pack,
    prepare,
    strip_accents,
    ticket_text,
    word_ngrams,
)
from ticketing.desk.triage import combine, raise_priority

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


def test_every_ticket_has_a_priority_and_the_thin_places_are_filled():
    assert all(e.priority in PRIORITIES for e in CORPUS)
    per_priority = {p: sum(e.priority == p for e in CORPUS) for p in PRIORITIES}
    assert min(per_priority.values()) >= 100, per_priority
    per_language = {}
    for e in CORPUS:
        per_language.setdefault(training.language_of(e.text), []).append(e)
    # Korean and Japanese, every category in each, with critical tickets among them
    for language in ("ko", "ja"):
        tickets = per_language[language]
        assert len(tickets) >= 90, language
        assert {e.category for e in tickets} == set(CATEGORIES), language
        assert sum(e.priority == "critical" for e in tickets) >= 8, language
    for language in ("en", "de", "nl", "fr", "es", "ko", "ja"):
        critical = [e for e in per_language[language] if e.priority == "critical"]
        assert len(critical) >= 5, language
    # account administration: roles, invitations, key rotation, company details
    account = " ".join(
        (e.title + " " + e.description).lower() for e in CORPUS if e.category == "account"
    )
    for theme in ("role", "invit", "rotat", "company", "admin"):
        assert account.count(theme) >= 6, theme
    # security told in everyday words, without the words the keyword rules know
    words = ("security", "phishing", "hacked", "breach", "suspicious", "unauthori", "leaked")
    everyday = [
        e
        for e in CORPUS
        if e.category == "security"
        and not any(w in (e.title + e.description).lower() for w in words)
    ]
    assert len(everyday) >= 80


def test_the_shipped_model_is_evaluated_and_good_enough():
    model = load_model(SHIPPED_MODEL)
    assert model.format == 4
    # trained with the shipped glossary, which it carries; the word n-grams read its pivots
    assert model.glossary is not None and model.glossary.entries == Glossary.load().entries
    assert [(v.glossed, v.terms > 0) for v in model._vectorizers] == [(False, True), (True, True)]
    assert set(model.classes) == set(CATEGORIES)
    assert set(model.priority_classes) == set(PRIORITIES)
    assert set(model.raise_at) == {"high", "critical"}
    evaluation = model.evaluation
    assert evaluation["examples"] == len(CORPUS)
    assert evaluation["corpus_sha256"] == training.corpus_digest(CORPUS)
    # Held-out folds. The targets are 95 % of categories overall and 90 % per language
    # with 30+ tickets, 97 % of priorities at or above their floor and no critical one
    # below high. The priority targets are met (with the shipped keyword rules); the
    # corpus's hard neighbours (security told in everyday words above all) keep the
    # categories below theirs, so those floors guard against a worse model rather than
    # state the targets.
    kfold = evaluation["kfold"]
    assert kfold["combined_accuracy"] >= 0.90
    for language, figures in kfold["per_language"].items():
        if figures["n"] >= 30:
            assert figures["category_accuracy"] >= 0.87, (language, figures)
    priority = kfold["priority"]
    assert priority["n"] == len(CORPUS)
    assert priority["at_or_above_floor"] >= 0.97
    assert priority["critical_below_high"] == 0
    # routine questions seldom raised (the rules' raises, "critical" in a description or
    # "leaked" in a question about leaks, count too)
    assert priority["per_floor"]["low"]["raised_above"] <= 0.05
    assert model.trained["scikit_learn"]


def test_the_scorer_gives_scikit_learns_probabilities_on_the_whole_corpus():
    """Fitted on half the corpus (twice as quick; the terms kept are as many), checked on
    all of it: the tickets it was not fitted on too."""
    glossary = Glossary.load()
    fitted = training.fit_models(CORPUS[::2], glossary)
    assert (
        len(fitted.union.transformer_list[0][1].vocabulary_)
        + len(fitted.union.transformer_list[1][1].vocabulary_)
        == training.KEEP_TERMS
    )
    model = TextModel(training.export(fitted))
    texts = [e.text for e in CORPUS]
    categories, priorities = fitted.both(texts)
    classes = [str(c) for c in fitted.category.classes_]
    priority_classes = [str(c) for c in fitted.priority.classes_]
    worst = 0.0
    for example, row, priority_row in zip(CORPUS, categories, priorities, strict=True):
        mine, mine_priority = model.both(example.title, example.description)
        worst = max(worst, max(abs(mine[c] - float(p)) for c, p in zip(classes, row, strict=True)))
        worst = max(
            worst,
            max(
                abs(mine_priority[c] - float(p))
                for c, p in zip(priority_classes, priority_row, strict=True)
            ),
        )
    assert worst < 1e-9
    # and the analyzers are scikit-learn's own, on Latin, Korean and Japanese text
    chars, words = (v for _, v in fitted.union.transformer_list)
    for text in (
        "Zählerstand über   Nacht: don't-stop 2x API/v1 ok",
        "오늘 아침부터 정산이 하나도 안 됩니다",
        "今朝から支払いが止まっています。ＡＰＩがすべて500エラー",
    ):
        prepared = prepare(text)  # the character n-grams read it without the glossary's pivots
        assert char_wb_ngrams(prepared, *training.CHAR_NGRAMS) == chars.build_analyzer()(text)
        glossed = glossary.gloss(prepared)
        assert glossed != prepared
        assert word_ngrams(glossed, *training.WORD_NGRAMS) == words.build_analyzer()(text)


def test_how_the_model_reads_latin_korean_and_japanese_text():
    # Latin: lower case, accents stripped, as scikit-learn's strip_accents does
    assert prepare("Zählerstand ÜBER Café") == strip_accents("zählerstand über café")
    # Hangul syllables stay whole (NFKD alone would split each into jamo)
    assert prepare("정산이 안 됩니다") == "정산이 안 됩니다"
    assert len(strip_accents("정산")) == 6  # what the accent stripping alone would leave
    # Japanese voiced kana keep their mark; full-width letters become ASCII
    assert prepare("ダウンロードがＡＰＩ") == "ダウンロードがapi"
    assert char_wb_ngrams(prepare("支払い"), 2, 2) == [" 支", "支払", "払い", "い "]


def test_the_glossary_glosses_other_languages_with_the_english_pivot():
    glossary = Glossary.from_mapping(
        {
            "invoice": {"de": ["rechnung"], "ko": ["청구서"], "ja": ["請求書"]},
            "role": {"ja": ["ロール"], "fr": ["rôle"]},
            "stopped": {"nl": ["stilgevallen"]},
        }
    )
    pivots = glossary.pivots
    # Latin and Korean terms at the start of a word: a stem covers inflections and compounds
    assert pivots(prepare("Die Rechnungen und die Rechnungsnummer")) == ["invoice", "invoice"]
    assert pivots(prepare("Stromrechnung fehlt")) == []  # not at the start of a word
    assert pivots(prepare("11월 청구서가 안 왔어요")) == ["invoice"]
    assert pivots(prepare("미청구서")) == []
    # Japanese anywhere (no spaces); accents folded as the model reads text
    assert pivots(prepare("11月分の請求書が届きません")) == ["invoice"]
    assert pivots(prepare("Le RÔLE d'admin")) == ["role"]
    assert pivots(prepare("het platform is stilgevallen")) == ["stopped"]
    assert glossary.gloss("no term here") == "no term here"
    assert glossary.gloss(prepare("請求書")) == "請求書\n invoice"
    # the shipped glossary: every language of the corpus, and what it is for
    shipped = Glossary.load()
    assert shipped.terms > 1000
    assert {lang for by in shipped.entries.values() for lang in by} >= {
        "de",
        "fr",
        "es",
        "nl",
        "ko",
        "ja",
    }
    for text, pivot in (
        ("Die Rechnung für Mai fehlt", "invoice"),
        ("La facture de mai", "invoice"),
        ("청구서가 두 번 왔어요", "invoice"),
        ("パスワードを忘れました", "password"),
    ):
        assert pivot in shipped.pivots(prepare(text)), text


def test_a_glossary_that_cannot_be_used_is_refused_with_locations(tmp_path):
    with pytest.raises(GlossaryError) as info:
        Glossary.from_mapping(
            {"Invoice": {"de": ["rechnung"]}, "role": {"xx": ["r"], "ja": ["ロ"]}, "pay": "x"}
        )
    lines = str(info.value).splitlines()
    assert "glossary.Invoice: a pivot is a lower-case English word" in lines
    assert any(line.startswith("glossary.role.xx: unknown language") for line in lines)
    assert "glossary.role.ja: a term matched anywhere needs 2 characters" in lines
    assert "glossary.pay: not a mapping of languages to terms" in lines
    broken = tmp_path / "glossary.yml"
    broken.write_text("invoice: [unclosed\n")
    with pytest.raises(GlossaryError, match="glossary.yml: not YAML"):
        Glossary.load(broken)
    # a model file whose glossary is broken is not a model
    data = json.loads(__import__("gzip").decompress(SHIPPED_MODEL.read_bytes()))
    data["glossary"] = {"invoice": {"ja": ["x"]}}
    with pytest.raises(ModelError, match="not a usable glossary"):
        TextModel(data)


def test_a_format_1_model_file_is_still_read(tmp_path):
    old = {
        "format": 1,
        "classes": ["billing", "security"],
        "intercept": [0.0, 0.0],
        "vectorizers": [
            {
                "analyzer": "word",
                "ngram_range": [1, 1],
                "terms": ["invoice", "leaked"],
                "weights": pack([1.0, 2.0, -2.0, 1.0, -2.0, 2.0]),
            }
        ],
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    model = TextModel.load(path)
    assert model.priority_classes == () and model.priority_probabilities("x", "y") is None
    p = model.probabilities("Invoice", "the invoice")
    assert max(p, key=p.get) == "billing"


def test_format_3_glosses_for_every_vectorizer_format_4_for_those_marked(tmp_path):
    data = {
        "format": 3,
        "classes": ["billing", "security"],
        "intercept": [0.0, 0.0],
        "glossary": {"invoice": {"de": ["rechnung"]}},
        "vectorizers": [
            {
                "analyzer": "word",
                "ngram_range": [1, 1],
                "terms": ["invoice", "leaked"],
                "weights": pack([1.0, 2.0, -2.0, 1.0, -2.0, 2.0]),
            }
        ],
    }
    german = ("Frage", "zur Rechnung")
    p = TextModel(data).probabilities(*german)
    assert p["billing"] > 0.9  # the pivot "invoice" was read
    unmarked = TextModel({**data, "format": 4}).probabilities(*german)
    assert unmarked == {"billing": 0.5, "security": 0.5}  # format 4: not glossed unless marked
    marked = {**data, "format": 4, "vectorizers": [{**data["vectorizers"][0], "glossed": True}]}
    assert TextModel(marked).probabilities(*german) == pytest.approx(p)
    for bad in ("yes", 1, None):
        broken = {**marked, "vectorizers": [{**data["vectorizers"][0], "glossed": bad}]}
        with pytest.raises(ModelError, match="glossed is .*, not true or false"):
            TextModel(broken)


def test_the_priority_model_only_raises():
    p = {"low": 0.05, "medium": 0.25, "high": 0.3, "critical": 0.4}
    at = {"high": 0.5, "critical": 0.35}
    assert raise_priority("medium", p, at) == ("critical", "model: critical p=0.40", 0.4)
    priority, reason, confidence = raise_priority("medium", p, {"high": 0.5, "critical": 0.5})
    assert (priority, reason) == ("high", "model: high p=0.70") and confidence == pytest.approx(0.7)
    # never lower than what was asked for or what a rule set
    assert raise_priority("critical", p, at)[0] == "critical"
    quiet = {"low": 0.7, "medium": 0.25, "high": 0.04, "critical": 0.01}
    priority, reason, confidence = raise_priority("medium", quiet, at)
    assert (priority, reason) == ("medium", "model: stays medium (high or above p=0.05)")
    assert confidence == pytest.approx(0.95)
    priority, reason, _ = raise_priority("high", quiet, at)
    assert (priority, reason) == ("high", "model: stays high (critical p=0.01)")


def test_the_automaton_finds_the_known_n_grams_each_word_gives():
    """The one-pass matcher counts exactly the vocabulary n-grams of char_wb_ngrams."""
    terms = sorted({"ap", "api", " api", "api ", " api ", "key", "ey ", "ü", " z", "a b"})
    rows = _char_wb_matcher(terms)
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
                    "raise_priority": 2,
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
        "classifier.raise_priority: must be true or false (got 2)",
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
    answer = client.get(f"/api/v1/staff/tickets/{ticket_id}/audit", headers=staff.headers)
    return answer.json["items"]


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


STOPS = [  # (title, description): an active compromise or a production stop, no keyword
    (
        "Operators have had no money since breakfast",
        "Not one payout to our charge point operators has left since 07:00. They normally go "
        "every ten minutes and the operators are phoning us.",
    ),
    (
        "Login by a developer we let go",
        "The activity log shows our former developer signing in last night and exporting "
        "reports. He left the company three weeks ago.",
    ),
    (
        "출금이 전부 멈췄어요",
        "오늘 새벽부터 출금이 하나도 나가지 않고 전부 대기 중입니다. 고객 충전이 막혔습니다.",
    ),
    (
        "知らない管理者が追加されています",
        "ユーザー一覧に誰も作っていない管理者が昨夜追加されていました。当社の誰も操作していません。",
    ),
]


def _priority_entries(client, staff, ticket_id):
    return [e for e in _audit(client, staff, ticket_id) if e["field"] == "priority"]


def test_the_priority_model_raises_a_compromise_or_a_stop_and_says_why(client, make):
    model = load_model(SHIPPED_MODEL)
    acme, agent = make.partner(), make.staff()
    for title, description in STOPS:
        ticket = make.ticket(acme, title=title, description=description)
        assert ticket["priority"] in ("high", "critical"), (title, ticket["priority"])
        decision = _priority_entries(client, agent, ticket["id"])[-1]
        assert (decision["actor_kind"], decision["before"], decision["after"]) == (
            "system",
            "medium",
            ticket["priority"],
        )
        assert decision["reason"].startswith(f"model: {ticket['priority']} p=")
        assert decision["confidence"] >= model.raise_at[ticket["priority"]]
    # what a partner asked for is the floor the model starts from, never lowered
    asked_low = make.ticket(acme, title=STOPS[0][0], description=STOPS[0][1], priority="low")
    assert asked_low["priority"] in ("high", "critical")
    question = "Could you send us a copy of the March invoice for our records?"
    asked_critical = make.ticket(
        acme, title="Invoice copy", description=question, priority="critical"
    )
    assert asked_critical["priority"] == "critical"
    # a routine question stays where it was, and the model's view is on record
    routine = make.ticket(acme, title="Invoice copy", description=question)
    assert routine["priority"] == "medium"
    [decision] = [
        e
        for e in _priority_entries(client, agent, routine["id"])
        if e["reason"].startswith("model")
    ]
    assert decision["actor_kind"] == "system"
    assert (decision["before"], decision["after"]) == ("medium", "medium")
    assert decision["reason"].startswith("model: stays medium (high or above p=")
    assert 0.5 <= decision["confidence"] <= 1


def test_the_priority_model_can_be_switched_off(db_url, tmp_path):
    config = ticketing_config(db_url, tmp_path)
    config["TICKETING"]["classifier"] = {"raise_priority": False}
    for app in migrated_app(config):
        from tests.harness.seed import Maker

        client = app.test_client()
        make = Maker(app, client)
        acme, agent = make.partner(), make.staff()
        ticket = make.ticket(acme, title=STOPS[0][0], description=STOPS[0][1])
        assert ticket["priority"] == "medium"  # no keyword rule fires; the model is off
        assert [e["reason"] for e in _priority_entries(client, agent, ticket["id"])] == [
            "default priority"
        ]
        assert ticket["category"] == "technical"  # the category model still decides


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

"""Every console route, fed generated form data and query strings, answers without a 5xx.

Like the schemathesis run over the OpenAPI operations (tests/ticketing/test_api_fuzz.py),
but for HTML forms: hypothesis draws, for each POST route of the console, a form
with the route's own field names (and stray ones) holding valid values, edge
values and arbitrary text, sent with a valid CSRF token by a signed-in admin
(so requests reach validation and the domain functions behind it); GET routes
get generated query strings. Derandomized: the same cases on every run.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.app import create_test_app
from tests.harness.console import signed_in
from ticketing.desk.choices import CATEGORIES, PRIORITIES, STATUSES

EXAMPLES = 25
FIELDS = {
    "api_key": st.one_of(
        st.just(""),
        st.text(max_size=80),
        st.from_regex(r"pw_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", fullmatch=True),
    ),
    "next": st.sampled_from(["/console/", "//evil", "https://x/console", "/console/../api", ""]),
    "body": st.one_of(
        st.text(max_size=300),
        st.just("x" * 20001),
        st.just("\x00"),
        st.just("<script>alert(1)</script>"),
    ),
    "kind": st.sampled_from(["reply", "note", "", "other"]),
    "assignee": st.one_of(
        st.sampled_from(["me", "none", "1", "2", "0", "99999999999", "-1", ""]),
        st.text(max_size=12),
    ),
    "status": st.one_of(st.sampled_from(STATUSES + ("", "any", "active")), st.text(max_size=12)),
    "priority": st.one_of(st.sampled_from(PRIORITIES + ("",)), st.text(max_size=10)),
    "category": st.one_of(st.sampled_from(CATEGORIES + ("",)), st.text(max_size=10)),
    "partner": st.one_of(st.sampled_from(["1", "0", "abc", "9" * 12]), st.text(max_size=6)),
    "overdue": st.sampled_from(["yes", "no", "maybe", ""]),
    "cursor": st.one_of(st.text(max_size=40), st.just("eyJhZnRlciI6MSwiZGVzYyI6ZmFsc2V9")),
    "type": st.one_of(
        st.sampled_from(["SUSPICIOUS_PATTERN", "FAILED_AUTH", ""]), st.text(max_size=20)
    ),
    "v": st.text(max_size=20),
}
forms = st.fixed_dictionaries({}, optional={**FIELDS, "stray": st.text(max_size=20)})
ticket_ids = st.sampled_from(["1", "2", "999999", "2147483648"])


def _routes() -> list[tuple[str, str]]:
    app = create_test_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}, migrate=False)
    return sorted(
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.") and rule.endpoint != "console.static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
        # logging out would end the session the cases use (see test_console)
        if rule.rule != "/console/logout"
    )


ROUTES = _routes()


@pytest.fixture
def session(console_app, client, make):
    acme, admin = make.partner("Acme"), make.staff("admin")
    for title in ("Invoice missing", "Urgent: pool empty"):
        make.ticket(acme, title=title)
    make.upload(acme, 1)
    return client, signed_in(client, admin)


def _url(rule: str, ticket_id: str) -> str:
    url = rule.replace("<id:ticket_id>", ticket_id).replace("<id:attachment_id>", "1")
    return url.replace("<path:anything>", "no/such/page")


@pytest.mark.parametrize("rule,method", ROUTES, ids=[f"{m} {r}" for r, m in ROUTES])
@given(data=st.data())
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_form_or_query_gets_a_server_error(session, rule, method, data):
    client, token = session
    url = _url(rule, data.draw(ticket_ids))
    form = data.draw(forms)
    if method == "POST":
        response = client.post(url, data={**form, "csrf_token": token})
    else:
        response = client.get(url, query_string=form)
    sent = f"{method} {url} {form!r}"
    assert response.status_code < 500, f"{sent} -> {response.status_code} {response.text[:300]}"
    if response.status_code >= 400 and response.mimetype == "text/html":
        assert 'role="alert"' in response.text, sent  # a page that says why
    if response.status_code >= 400 and response.mimetype == "application/json":
        assert isinstance(response.json["error"]["message"], str), sent


def test_every_console_form_route_is_fuzzed():
    assert {
        "/console/tickets/<id:ticket_id>/messages",
        "/console/tickets/<id:ticket_id>/assign",
        "/console/tickets/<id:ticket_id>/status",
        "/console/tickets/<id:ticket_id>/triage",
        "/console/login",
    } <= {rule for rule, method in ROUTES if method == "POST"}

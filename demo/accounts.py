"""Prepare the ticket service for the demo: migrate, then a partner, a staff member and their keys.

Runs the ticket service's own CLI commands (``db upgrade``, ``create-partner``,
``create-staff``, ``create-key``; see ticketing/runtime/cli.py) in a single process,
through Flask's CLI runner, instead of paying the app's start-up once per
command.  Configured like the service, from the environment
(``TICKETING_DATABASE_URL``, ...).  Prints one JSON object::

    python -m demo.accounts
    {"partner_id": 1, "staff_id": 1, "partner_key": "pw_...", "staff_key": "pw_..."}

The partner is "Acme Energy", like the demo platform's first partner.
"""

from __future__ import annotations

import json
import os
import sys

PARTNER = "Acme Energy"
STAFF = ("Sam Support", "sam@partnerwatch.example", "admin")


def main() -> int:
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
    partner_id = run("create-partner", PARTNER)
    name, email, role = STAFF
    staff_id = run("create-staff", name, email, "--role", role)
    partner_key = run("create-key", "--partner", partner_id, "--name", "demo")
    staff_key = run("create-key", "--staff", staff_id, "--name", "demo")
    print(
        json.dumps(
            {
                "partner_id": int(partner_id),
                "staff_id": int(staff_id),
                "partner_key": partner_key,
                "staff_key": staff_key,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Everything is committed; skip the interpreter's shutdown, which waits on
    # the app's background machinery (delivery worker, connection pools) for seconds.
    os._exit(code)

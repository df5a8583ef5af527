"""The demo's account setup (``python -m demo.accounts``), as ``./dev run`` starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_setup_on_a_new_database_prints_keys_and_no_traceback(tmp_path):
    env = {**os.environ, "TICKETING_DATABASE_URL": f"sqlite:///{tmp_path / 'ticketing.db'}"}
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "demo.accounts"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr  # e.g. a worker before "db upgrade"
    accounts = json.loads(done.stdout.strip().splitlines()[-1])
    assert accounts["partner_key"].startswith("pw_") and accounts["staff_key"].startswith("pw_")


def _setup(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "demo.accounts", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_kept_database_gets_its_keys_printed_again_and_nothing_twice(tmp_path):
    """``./dev run`` keeps its data: the second setup finds the accounts and the last keys."""
    db = tmp_path / "ticketing.db"
    env = {**os.environ, "TICKETING_DATABASE_URL": f"sqlite:///{db}"}
    env.pop("REDIS_URL", None)
    first = _setup(env)
    assert first["kept"] is False
    stack_json = tmp_path / "stack.json"
    stack_json.write_text(
        json.dumps({"keys": {"partner": first["partner_key"], "staff": first["staff_key"]}})
    )
    again = _setup(env, "--previous", str(stack_json))
    assert again == {**first, "kept": True}

    # A lost stack.json: the same partner and staff member, new keys (a key is shown once).
    lost = _setup(env, "--previous", str(tmp_path / "missing.json"))
    assert (lost["partner_id"], lost["staff_id"]) == (first["partner_id"], first["staff_id"])
    assert lost["kept"] is False and lost["partner_key"] != first["partner_key"]

    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM partners").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM staff").fetchone() == (1,)

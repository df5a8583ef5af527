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

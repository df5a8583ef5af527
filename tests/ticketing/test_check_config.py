"""``partnerwatch-ticketing check-config [FILE]``: the real console script, in a subprocess.

Exit 0 and a summary for a valid file (merged over the shipped defaults), 2 and
one ``location: problem`` line per problem on stderr for an invalid one; it
starts nothing, so it works where the app could not start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ticketing.config import SECTIONS

CLI = Path(sys.executable).with_name("partnerwatch-ticketing")


def check_config(*args, env: dict | None = None, cwd: Path) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TICKETING_CONFIG"}
    # An unreachable database: checking the configuration must not need one.
    environ["TICKETING_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/nothing"
    return subprocess.run(
        [str(CLI), "check-config", *map(str, args)],
        cwd=cwd,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def outcome(result: subprocess.CompletedProcess) -> tuple[int, list[str], list[str]]:
    return result.returncode, result.stdout.splitlines(), result.stderr.splitlines()


def test_the_shipped_defaults_are_valid(tmp_path):
    result = check_config(cwd=tmp_path, env={"ALERTMANAGER_URL": "http://am.internal:9093/"})
    assert outcome(result) == (
        0,
        [
            "ticketing.yml (shipped defaults): configuration OK",
            "classification: 4 priority rules, 6 categories",
            "sla first response: critical 30m, high 2h, medium 8h, low 1d",
            "ratelimits: on, login 5/minute, withdrawal 3/minute, api_call 100/minute, "
            "ticket_create 20/minute",
            "outbox: worker on, to http://am.internal:9093",
            "live: every 5s, up to 200 clients per process",
        ],
        [],
    )
    assert not list(tmp_path.iterdir())  # no instance folder, no database file


@pytest.mark.parametrize("how", ["argument", "TICKETING_CONFIG"])
def test_an_override_file_is_merged_over_the_defaults(tmp_path, how):
    override = tmp_path / "override.yml"
    override.write_text("sla:\n  first_response:\n    high: 45m\nlive:\n  enabled: false\n")
    args, env = (
        ([override], None) if how == "argument" else ((), {"TICKETING_CONFIG": str(override)})
    )
    result = check_config(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{override}: configuration OK"
    assert "sla first response: critical 30m, high 45m, medium 8h, low 1d" in lines
    assert "live: off" in lines


def test_every_problem_of_every_section_is_one_located_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("""
sla:
  first_response: {high: soon}
api:
  default_page_size: 0
security:
  failed_auth: {threshold: many}
ratelimits:
  limits: {login: often}
outbox:
  worker: yes please
live:
  interval: 2s
  query_timeout: 2s
outbx: {worker: false}
""")
    assert outcome(check_config(bad, cwd=tmp_path)) == (
        2,
        [],
        [
            "sla.first_response.high: must be a duration such as 15s, 500ms or 2m (got 'soon')",
            "api.default_page_size: must be an integer > 0 (got 0)",
            "security.failed_auth.threshold: must be an integer > 0 (got 'many')",
            'ratelimits.limits.login: must be a rate such as "5/minute" or "100 per hour" '
            "(got 'often')",
            "outbox.worker: must be true or false (got 'yes please')",
            "live.query_timeout: must be < live.interval, or snapshots fall behind while a "
            "source hangs",
            f"outbx: unknown section (known: {', '.join(SECTIONS)})",
        ],
    )


def test_an_unreadable_file_is_one_line(tmp_path):
    missing = tmp_path / "missing.yml"
    result = check_config(missing, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{missing}: cannot read: [Errno 2] No such file or directory: '{missing}'"
    ]
    broken = tmp_path / "broken.yml"
    broken.write_text("sla:\n  first_response: {high: 1h}\n  first_response: {high: 2h}\n")
    result = check_config(broken, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{broken}: invalid YAML at line 3: duplicate key 'first_response'"
    ]

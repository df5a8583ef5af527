"""The README's run command, from a clean clone: every component up, calm until a
scenario runs, a scenario notifies, Ctrl-C stops all.

The repository is cloned into a temporary directory (only committed files),
given a virtualenv that reuses this one's packages (``./dev`` would otherwise
install them from PyPI), and started with ``./dev run --free-ports --fast``.
Set ``PARTNERWATCH_STACK_SOURCE=worktree`` to run the work tree itself instead
of a clone (uncommitted files included).

For its first minutes, with no scenario, the demo platform is a healthy one:
only Watchdog fires (in Prometheus, pending alerts included, and at the sinks).
Then every scenario is triggered with ``python -m demo scenario NAME``: each makes
its shipped rule match in Prometheus, the ticket API attack reaches the
security team at once, and EnergyPoolCritical (``for: 1m``) reaches on-call by
email, Slack and webhook at the notification sinks, which print it and record
it in ``<run>/notifications.jsonl``. After Ctrl-C, ``./dev run`` again on the same
run directory keeps the data and prints the same keys.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import requests

from demo.supervisor import spawn
from tests.harness import pid_alive, wait_until

pytestmark = pytest.mark.slow

SOURCE_ENV = "PARTNERWATCH_STACK_SOURCE"


def _clone(root: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(root), str(dest)], check=True)
    # A virtualenv whose packages are this one's: ./dev finds it installed and up to date.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest / ".venv")], check=True)
    purelib = Path(
        sysconfig.get_paths(vars={"base": str(dest / ".venv"), "platbase": str(dest / ".venv")})[
            "purelib"
        ]
    )
    purelib.mkdir(parents=True, exist_ok=True)
    (purelib / "partnerwatch-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (dest / ".venv" / ".installed").touch()
    return dest


@pytest.fixture(scope="module")
def source(root, tmp_path_factory) -> Path:
    if os.environ.get(SOURCE_ENV) == "worktree":
        return root
    return _clone(root, tmp_path_factory.mktemp("clone") / "partnerwatch")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class RunningStack:
    def __init__(self, source: Path, run_dir: Path) -> None:
        self.source = source
        self.run_dir = run_dir
        self.output_path = run_dir.parent / "stack-output.log"
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.ready_at = 0.0

    def start(self) -> None:
        self.started_at = time.time()
        with open(self.output_path, "wb") as out:
            # Through the harness's launcher: SIGTERM reaches the runner if this run dies,
            # and the runner stops the stack.
            self.proc = spawn(
                [
                    "./dev",
                    "run",
                    "--free-ports",
                    "--fast",
                    "--no-grafana",
                    "--run-dir",
                    str(self.run_dir),
                ],
                cwd=self.source,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                death_signal=signal.SIGTERM,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def state(self) -> dict:
        try:
            return json.loads((self.run_dir / "stack.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def wait_ready(self, timeout: float) -> dict:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"./dev run exited with {self.proc.returncode}:\n{self.output()[-5000:]}"
                )
            state = self.state()
            if state.get("ready") and not self.ready_at:
                self.ready_at = time.time()
            return state if state.get("ready") else None

        try:
            return wait_until(ready, timeout=timeout, interval=0.5, message="the stack")
        except TimeoutError:
            raise AssertionError(f"stack not ready:\n{self.output()[-5000:]}") from None

    def notifications(self) -> list[dict]:
        path = self.run_dir / "notifications.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def kill_leftovers(self) -> None:
        """Teardown safety net: whatever still runs after a failed test."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in self.state().get("pids", {}).values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def stack(source, tmp_path_factory):
    running = RunningStack(source, tmp_path_factory.mktemp("stack") / "run")
    running.start()
    try:
        yield running
    finally:
        running.kill_leftovers()


def prom_query(url: str, expr: str) -> list[dict]:
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_run_command_brings_every_component_up(stack):
    state = stack.wait_ready(timeout=180)
    urls = state["urls"]
    up = {r["metric"]["job"]: r["value"][1] for r in prom_query(urls["prometheus"], "up")}
    assert {"exporter", "ticketing", "prometheus", "alertmanager"} <= set(up)
    assert set(up.values()) == {"1"}, up
    # The exporter sees the demo platform, its database, the ticket database and Redis.
    wait_until(
        lambda: prom_query(urls["prometheus"], 'platform_energy_pool_capacity_units{pool="main"}'),
        timeout=30,
        message="energy pool metrics",
    )
    assert prom_query(urls["prometheus"], "platform_api_probe_success == 1")
    assert prom_query(urls["prometheus"], "platform_redis_up == 1")
    assert prom_query(urls["prometheus"], "platform_partners_active > 0")
    # Every URL printed answers.
    out = stack.output()
    for name in ("ticketing", "exporter", "prometheus", "alertmanager", "platform", "sinks"):
        assert urls[name] in out, f"{name} URL not printed"
    assert state["keys"]["partner"] in out and state["keys"]["staff"] in out
    tickets = requests.get(
        urls["ticketing"] + "/api/v1/tickets",
        headers={"X-API-Key": state["keys"]["partner"]},
        timeout=10,
    )
    assert tickets.status_code == 200, tickets.text
    # The support console's URL is printed, and the demo staff key signs in there.
    assert urls["console"] in out
    browser = requests.Session()
    form = browser.get(urls["console"] + "login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    signed_in = browser.post(
        urls["console"] + "login",
        timeout=10,
        data={"api_key": state["keys"]["staff"], "csrf_token": token},
    )
    assert signed_in.status_code == 200 and "Ticket queue" in signed_in.text, signed_in.text[:300]


#: How long the calm test watches the stack with no scenario (from its start).
CALM_SECONDS = 180
#: Prometheus' first evaluations see a single sample of each counter: TransactionsStalled
#: reads "no second sample yet" as "nothing completed" (its ``or vector(0)``,
#: rules/transactions.rules.yml) and is pending for those seconds, on any Prometheus.
STARTUP_SECONDS = 30


def alerts_seen(prometheus: str, seconds: float) -> list[tuple[str, str, str]]:
    """Every alert Prometheus has had in the last ``seconds``, pending ones included."""
    seen = prom_query(prometheus, f"max_over_time(ALERTS[{max(1, int(seconds))}s])")
    return sorted(
        {
            (r["metric"]["alertname"], r["metric"]["alertstate"], r["metric"].get("partner", ""))
            for r in seen
        }
    )


def test_without_a_scenario_only_watchdog_fires(stack):
    """A new user's first minutes: nothing but the heartbeat, in Prometheus and at the sinks."""
    state = stack.wait_ready(timeout=180)
    prometheus = state["urls"]["prometheus"]
    time.sleep(max(0.0, stack.started_at + CALM_SECONDS - time.time()))
    watchdog = ("Watchdog", "firing", "")
    steady = alerts_seen(prometheus, time.time() - stack.ready_at - STARTUP_SECONDS)
    assert steady == [watchdog], steady
    since_start = alerts_seen(prometheus, time.time() - stack.started_at + 60)
    assert set(since_start) <= {watchdog, ("TransactionsStalled", "pending", "")}, since_start
    notifications = stack.notifications()
    assert notifications, "the heartbeat reaches the sinks"
    others = [n for n in notifications if n.get("alertnames") != ["Watchdog"]]
    assert not others, others[:5]


def scenario(source: Path, run_dir: Path, name: str) -> str:
    done = subprocess.run(
        [
            str(source / ".venv" / "bin" / "python"),
            "-m",
            "demo",
            "scenario",
            name,
            "--run-dir",
            str(run_dir),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_scenarios_fire_alerts_and_reach_the_sinks(stack, source):
    state = stack.wait_ready(timeout=180)
    prometheus = state["urls"]["prometheus"]
    for name in ("drain-energy", "slow-api", "fail-transactions"):
        assert name in scenario(source, stack.run_dir, name)
    attack = scenario(source, stack.run_dir, "attack-tickets")
    assert "sql-injection" in attack and "brute-force" in attack

    def alert(name: str):
        return prom_query(prometheus, f'ALERTS{{alertname="{name}"}}')

    # Each platform scenario makes its rule match (pending: their for: is 1-2 minutes).
    for name in ("EnergyPoolCritical", "PlatformApiSlow", "TransactionFailureRatioHigh"):
        wait_until(
            lambda name=name: alert(name), timeout=60, interval=0.5, message=f"{name} in ALERTS"
        )
    # The attack is counted by type.
    for kind in ("SUSPICIOUS_PATTERN", "MULTIPLE_FAILED_LOGINS", "FAILED_AUTH"):
        wait_until(
            lambda kind=kind: prom_query(prometheus, f'security_events_total{{type="{kind}"}} > 0'),
            timeout=30,
            interval=0.5,
            message=f"{kind} events",
        )

    def notified(match):
        return [
            n
            for n in stack.notifications()
            if n.get("status", "firing") == "firing"
            and any(match(a) for a in n.get("alertnames", []))
        ]

    # The ticket service tells the security team about the attack straight away.
    try:
        security = wait_until(
            lambda: notified(lambda a: a.startswith("Security")),
            timeout=60,
            interval=0.5,
            message="a security notification",
        )
        critical = wait_until(
            lambda: notified(lambda a: a == "EnergyPoolCritical"),
            timeout=120,
            interval=1,
            message="EnergyPoolCritical at a sink",
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; stack output:\n{stack.output()[-5000:]}") from None
    assert {n["channel"] for n in security} & {"email", "slack"}
    assert critical
    # Critical alerts go to on-call by email, Slack and webhook.
    wait_until(
        lambda: (
            {n["channel"] for n in notified(lambda a: a == "EnergyPoolCritical")}
            >= {"email", "slack", "webhook"}
        ),
        timeout=30,
        message="all three channels",
    )
    emails = [n for n in notified(lambda a: a == "EnergyPoolCritical") if n["channel"] == "email"]
    assert any("oncall" in " ".join(n["to"]) for n in emails)
    # The stack printed them too.
    wait_until(
        lambda: "EnergyPoolCritical" in stack.output() and "Security" in stack.output(),
        timeout=10,
        message="the printed notifications",
    )


def test_ctrl_c_stops_everything(stack):
    state = stack.wait_ready(timeout=180)
    pids = state["pids"]
    assert {
        "sinks",
        "redis",
        "platform",
        "ticketing",
        "exporter",
        "alertmanager",
        "prometheus",
    } <= set(pids)
    assert all(pid_alive(pid) for pid in pids.values())
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(60) == 0, stack.output()[-3000:]
    for name, pid in pids.items():
        assert not pid_alive(pid), f"{name} still running"
        assert not _group_alive(pid), f"a process of {name}'s group is still running"
    assert "stopped." in stack.output()


def test_a_restart_keeps_the_data_and_prints_the_same_keys(stack, source):
    """``./dev run`` again on the stopped stack's directory: its tickets, keys and the demo
    partner's webhook are still there, and the banner says the data was kept."""
    before = stack.state()
    assert before["keys"]["partner"] and not before.get("ready")
    again = RunningStack(source, stack.run_dir)
    again.output_path = stack.run_dir.parent / "stack-output-restart.log"
    again.start()
    try:
        state = again.wait_ready(timeout=180)
        out = again.output()
        assert "kept from the last run" in out, out[-3000:]
        assert state["keys"]["partner"] == before["keys"]["partner"]
        assert state["keys"]["staff"] == before["keys"]["staff"]
        assert "the same keys as last time" in out
        headers = {"X-API-Key": state["keys"]["partner"]}
        ticketing = state["urls"]["ticketing"]
        tickets = requests.get(f"{ticketing}/api/v1/tickets", headers=headers, timeout=10)
        assert tickets.status_code == 200, tickets.text
        items = tickets.json()["items"]
        assert items, "the tickets of the first run (the attack's) are still there"
        hooks = requests.get(f"{ticketing}/api/v1/webhooks", headers=headers, timeout=10).json()
        hooks = hooks["items"]
        assert [h["url"] for h in hooks] == [f"{state['urls']['sinks']}/partner/acme-energy"]
        again.proc.send_signal(signal.SIGINT)
        assert again.proc.wait(60) == 0, again.output()[-3000:]
    finally:
        again.kill_leftovers()

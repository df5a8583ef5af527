"""The demo platform: its schema, its moving data and its scenarios."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, inspect, select

from demo import scenarios
from demo.platform import (
    POOL_CAPACITY,
    SETTLE_AFTER,
    Simulator,
    energy_pools,
    make_engine,
    partners,
    transactions,
    utcnow,
)
from tests.harness import free_port, http_ready


@pytest.fixture
def sim(tmp_path):
    simulator = Simulator(make_engine(f"sqlite:///{tmp_path / 'platform.db'}"), seed=7)
    simulator.setup()
    yield simulator
    simulator.engine.dispose()


def pool_ratio(sim: Simulator) -> float:
    with sim.engine.connect() as conn:
        row = conn.execute(select(energy_pools)).one()
    return row.available_units / row.capacity_units


def counts_by_status(sim: Simulator) -> dict[str, int]:
    with sim.engine.connect() as conn:
        return dict(
            conn.execute(
                select(transactions.c.status, func.count()).group_by(transactions.c.status)
            ).all()
        )


def test_schema_is_the_platforms(db_url):
    """The tables and columns the exporter's shipped config queries, on SQLite and PostgreSQL."""
    sim = Simulator(make_engine(db_url), seed=1)
    sim.setup()
    sim.setup()  # idempotent: a restart keeps the data
    sim.tick()
    columns = {
        t: {c["name"] for c in inspect(sim.engine).get_columns(t)}
        for t in ("partners", "energy_pools", "transactions")
    }
    assert columns == {
        "partners": {"id", "name", "status", "created_at"},
        "energy_pools": {"name", "capacity_units", "available_units", "updated_at"},
        "transactions": {"id", "partner_id", "status", "amount_units", "created_at"},
    }
    with sim.engine.connect() as conn:
        statuses = dict(
            conn.execute(select(partners.c.status, func.count()).group_by(partners.c.status)).all()
        )
        pool = conn.execute(select(energy_pools)).one()
    assert statuses == {"active": 18, "suspended": 2}
    assert (pool.name, pool.capacity_units) == ("main", POOL_CAPACITY)
    sim.engine.dispose()


def test_transactions_keep_moving_and_settle(sim):
    start = utcnow() - timedelta(minutes=5)
    seen: dict[str, int] = {}
    pending_seen = 0
    for step in range(40):
        sim.tick(start + timedelta(seconds=step))
        now = counts_by_status(sim)
        for status in ("completed", "failed"):
            assert now.get(status, 0) >= seen.get(status, 0), f"{status} count went down"
        seen = now
        pending_seen = max(pending_seen, now.get("pending", 0))
    assert pending_seen > 0
    assert seen["completed"] > 5 * seen.get("failed", 0)
    # Pending ones settle after a few seconds: the older pending rows are gone.
    with sim.engine.connect() as conn:
        oldest_pending = conn.execute(
            select(func.min(transactions.c.created_at)).where(transactions.c.status == "pending")
        ).scalar_one()
    assert oldest_pending is None or oldest_pending >= start + timedelta(
        seconds=39
    ) - SETTLE_AFTER - timedelta(seconds=1)
    with sim.engine.connect() as conn:
        suspended = {
            r.id
            for r in conn.execute(select(partners.c.id).where(partners.c.status == "suspended"))
        }
        used = {r.partner_id for r in conn.execute(select(transactions.c.partner_id).distinct())}
    assert used and not used & suspended
    assert len(used) >= 8, "busy and quiet partners alike get some traffic"


def test_pool_stays_healthy_without_scenarios(sim):
    ratios = []
    for _ in range(60):
        sim.tick()
        ratios.append(pool_ratio(sim))
    assert min(ratios) > 0.5 and max(ratios) <= 1.0


# The partner rules' thresholds (rules/partners.rules.yml): a partner's failed share of
# its transactions over 5 minutes, and its energy drawn an hour as a share of the pool.
PARTNER_FAILURE_RATIO_ALERT = 0.10
PARTNER_ENERGY_SHARE_ALERT = 0.10


def per_partner(sim: Simulator) -> dict[int, tuple[int, int, float]]:
    """What the exporter's partner queries read: settled counts and energy drawn."""
    out: dict[int, tuple[int, int, float]] = {}
    with sim.engine.connect() as conn:
        for row in conn.execute(
            select(
                transactions.c.partner_id,
                transactions.c.status,
                func.count(),
                func.sum(transactions.c.amount_units),
            ).group_by(transactions.c.partner_id, transactions.c.status)
        ):
            completed, failed, drawn = out.get(row[0], (0, 0, 0.0))
            if row[1] == "completed":
                completed, drawn = row[2], float(row[3])
            elif row[1] == "failed":
                failed = row[2]
            out[row[0]] = (completed, failed, drawn)
    return out


def test_a_healthy_platform_stays_under_every_partner_threshold(sim):
    """With no scenario, no partner rule matches, not even for a moment (a pending alert).

    Twenty simulated minutes, read like the exporter every 5 s; the rates over every
    5-minute window, and over every shorter one that starts in the first minute (a
    Prometheus that has just started sees only those), as the rules compute them.
    """
    start = utcnow() - timedelta(minutes=30)
    samples: list[dict[int, tuple[int, int, float]]] = []
    for step in range(1200):
        sim.tick(start + timedelta(seconds=step))
        if step % 5 == 4:
            samples.append(per_partner(sim))
    window = 60  # samples: 5 minutes
    worst_ratio, worst_draw = 0.0, 0.0
    for end in range(1, len(samples)):
        starts = {max(0, end - window), *range(min(end, 12))}
        for begin in starts:
            seconds = (end - begin) * 5
            for partner, (completed, failed, drawn) in samples[end].items():
                c0, f0, d0 = samples[begin].get(partner, (0, 0, 0.0))
                settled = completed + failed - c0 - f0
                if settled:
                    worst_ratio = max(worst_ratio, (failed - f0) / settled)
                if seconds >= 60:  # Prometheus needs a few samples; the rule's for: is 10 m
                    worst_draw = max(worst_draw, (drawn - d0) / seconds * 3600 / POOL_CAPACITY)
    failures = sum(f for _, f, _ in samples[-1].values())
    assert failures > 0, "a healthy platform still fails now and then"
    assert worst_ratio < PARTNER_FAILURE_RATIO_ALERT / 2, worst_ratio
    assert worst_draw < PARTNER_ENERGY_SHARE_ALERT / 2, worst_draw
    # ... and the platform as a whole: well under TransactionFailureRatioHigh's 5 %.
    totals = counts_by_status(sim)
    assert totals["failed"] / (totals["failed"] + totals["completed"]) < 0.02


def test_the_pool_level_never_predicts_an_empty_pool(sim, monkeypatch):
    """The healthy pool's wave: 65-85 %, and slow enough that predict_linear over any
    stretch of it (EnergyPoolExhaustionPredicted: empty within the hour) stays positive."""
    levels = []
    for minute in range(4 * 60):
        monkeypatch.setattr(time, "time", lambda minute=minute: 1_800_000_000 + minute * 60.0)
        levels.append(sim._pool_target() / POOL_CAPACITY)
    assert 0.649 < min(levels) and max(levels) < 0.851
    steepest = max(abs(b - a) for a, b in zip(levels, levels[1:], strict=False)) * 60  # an hour
    assert min(levels) - steepest > 0.3


def test_drain_energy_then_recover(sim):
    for _ in range(5):
        sim.tick()
    sim.set_scenario("drain-energy")
    for _ in range(10):
        sim.tick()
    assert pool_ratio(sim) < 0.06, "well under the 20 % critical threshold"
    for _ in range(5):
        sim.tick()
    assert 0.0 < pool_ratio(sim) < 0.06, "held low, not emptied to zero"
    for _ in range(300):
        counts = sim.tick()
        assert counts["failed"] == 0 or counts["failed"] < counts["completed"]
    assert 0.019 < pool_ratio(sim) < 0.051, "held at the reserve: partners still find energy"
    sim.set_scenario("recover")
    for _ in range(15):
        sim.tick()
    assert pool_ratio(sim) > 0.5
    assert sim.state.active == {}


def test_fail_transactions_raises_the_failure_ratio(sim):
    def failure_ratio(ticks: int) -> float:
        before = counts_by_status(sim)
        for _ in range(ticks):
            sim.tick()
        after = counts_by_status(sim)
        new = {s: after.get(s, 0) - before.get(s, 0) for s in after}
        return new.get("failed", 0) / sum(new.values())

    assert failure_ratio(50) < 0.1
    sim.set_scenario("fail-transactions")
    assert failure_ratio(50) > 0.3, "well over the 20 % critical threshold"
    sim.set_scenario("recover")
    assert failure_ratio(50) < 0.1


def test_slow_api_and_unknown_scenarios(sim):
    assert max(sim.health_latency() for _ in range(200)) < 1.0
    sim.set_scenario("slow-api")
    assert min(sim.health_latency() for _ in range(200)) > 1.0
    with pytest.raises(ValueError):
        sim.set_scenario("meltdown")


@pytest.fixture
def platform_process(tmp_path, processes, root):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = processes.start(
        [
            sys.executable,
            "-m",
            "demo.platform",
            "--db",
            f"sqlite:///{tmp_path / 'p.db'}",
            "--listen",
            f"127.0.0.1:{port}",
            "--interval",
            "0.2",
            "--seed",
            "3",
        ],
        tmp_path,
        ready=http_ready(url + "/healthz"),
        name="demo-platform",
        env={"PYTHONPATH": str(root)},
    )
    return proc, url


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demo", *args], capture_output=True, text=True, timeout=30, **kwargs
    )


def test_platform_process_scenarios_from_the_command_line(platform_process, root, tmp_path):
    proc, url = platform_process
    health = requests.get(url + "/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["latency_seconds"] < 1.0

    done = run_cli("scenario", "slow-api", "--platform-url", url, cwd=root)
    assert done.returncode == 0, done.stderr
    assert "slow-api" in done.stdout
    started = time.monotonic()
    requests.get(url + "/healthz", timeout=10).raise_for_status()
    assert time.monotonic() - started >= 1.0

    # The address may also come from the stack's run directory.
    (tmp_path / "stack.json").write_text(json.dumps({"urls": {"platform": url}}))
    assert run_cli("scenario", "drain-energy", "--run-dir", str(tmp_path), cwd=root).returncode == 0
    status = run_cli("status", "--run-dir", str(tmp_path), cwd=root)
    state = json.loads(status.stdout)
    assert state["scenarios"]["active"] == ["drain-energy", "slow-api"]
    assert state["partners"] == 20

    assert run_cli("scenario", "recover", "--platform-url", url, cwd=root).returncode == 0
    assert (
        json.loads(run_cli("status", "--platform-url", url, cwd=root).stdout)["scenarios"]["active"]
        == []
    )

    bad = requests.post(url + "/control/scenario", data=b"not json", timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"

    proc.signal(signal.SIGTERM)
    assert proc.popen.wait(15) == 0


def test_cli_reports_an_unreachable_stack(root):
    done = run_cli(
        "scenario", "drain-energy", "--platform-url", f"http://127.0.0.1:{free_port()}", cwd=root
    )
    assert done.returncode == 1
    assert "is ./dev run running?" in done.stderr


def test_attack_tickets_sends_each_kind_of_attack(http_sink):
    http_sink.status = 401
    results = scenarios.attack_tickets(
        http_sink.url, "pw_demo_key", echo=lambda line: None, brute_force=6
    )
    assert set(results) == {"brute-force", "sql-injection", "xss", "path-traversal"}
    received = http_sink.received()
    assert len(received) == sum(sum(c.values()) for c in results.values())
    brute = [r for r in received if r.headers.get("X-API-Key") != "pw_demo_key"]
    assert len(brute) == 6 and len({r.headers["X-API-Key"] for r in brute}) == 6
    seen = " ".join(r.path + r.body.decode() for r in received)
    assert "UNION%20SELECT" in seen and "<script>" in seen and "..%2F" in seen

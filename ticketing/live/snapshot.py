"""What the live feed shows: one snapshot of the platform, and each caller's view of it.

A :class:`Snapshot` is taken once per interval by the broadcaster, whatever the
number of connected clients. It reads three sources:

- **Prometheus** (the source of truth for every platform number): the instant
  queries in :data:`QUERIES`, all evaluated at the same ``time`` so they agree
  with each other and can be re-run by anyone to get the same values. They use
  the recording rules of ``rules/`` (names in docs/metrics.md), so the feed
  shows what the dashboards and alerts see;
- **Alertmanager**: the alerts firing now (active, not silenced, not
  inhibited), from ``/api/v2/alerts``;
- **the ticketing database**: open tickets per partner and priority, one
  grouped query, because the exporter's ``support_tickets`` gauge is not
  labelled by partner (partner ids are not a bounded label set).

A source that cannot be read leaves its part empty (``null``) and says so in
``sources``; the other parts are still shown:

    {"sources": {"prometheus": {"ok": false, "error": "ConnectionError: ..."},
                 "alertmanager": {"ok": true}, "database": {"ok": true}}, ...}

:func:`staff_view` and :func:`partner_view` turn a snapshot into what one
caller may see (docs/live.md lists both).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import func

from ticketing.desk.choices import ACTIVE_STATUSES, PRIORITIES

#: Instant queries by name. A deployment may replace any of them with
#: ``live.queries.<name>`` (e.g. to query raw series where the rules are not loaded).
QUERIES: dict[str, str] = {
    "api_up": "platform_api_probe_success",
    "api_latency": "platform_api_probe_duration_seconds",
    "api_latency_p95": "platform:api_probe_duration_seconds:p95_5m",
    "service_error_ratio": "max(ticketing:http_5xx:ratio_rate5m)",
    "energy_pool_available_ratio": "platform:energy_pool_available:ratio",
    "transaction_rate": "platform:transactions:rate5m",
    "transaction_failure_ratio": "max(platform:transactions_failed:ratio_rate5m)",
    "partners_active": "max(platform_partners_active)",
    "open_tickets": f'sum by (priority) (support_tickets{{status=~"{"|".join(ACTIVE_STATUSES)}"}})',
}

SEVERITY_ORDER = ("critical", "warning", "info")


class SourceUnavailable(Exception):
    """The source cannot be reached at all (connection refused, timeout, 5xx)."""


def _short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def _number(value: Any) -> float | None:
    """A sample value as JSON can carry it: NaN and infinities become None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def iso_timestamp(unix: float) -> str:
    """``2024-05-01T12:00:00.123Z``: what a browser's ``new Date(...)`` parses."""
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ------------------------------------------------------------------ sources


class PrometheusSource:
    """Runs the snapshot's instant queries against Prometheus' HTTP API."""

    def __init__(self, url: str, timeout: float, queries: Mapping[str, str]):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.queries = {**QUERIES, **queries}
        self.session = requests.Session()

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """The result vector of ``expr`` at ``at``.

        Raises :class:`SourceUnavailable` when Prometheus does not answer, and
        ValueError when it answers that the query itself is wrong.
        """
        try:
            response = self.session.get(
                f"{self.url}/api/v1/query",
                params={"query": expr, "time": f"{at:.3f}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise SourceUnavailable(_short_error(exc)) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise SourceUnavailable(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise SourceUnavailable(f"HTTP {response.status_code}: not JSON") from None
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType', 'error')}: {body.get('error', '')}"[:300])
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        if data["resultType"] != "vector":
            raise ValueError(f"expected an instant vector, got {data['resultType']}")
        vector: list[dict[str, Any]] = data["result"]
        return vector

    def collect(self, at: float) -> tuple[dict[str, list[dict[str, Any]] | None], dict[str, Any]]:
        """Every query at ``at``: (results by name, source status).

        The first query that finds Prometheus unreachable ends the round, so an
        outage costs one timeout per snapshot, not one per query.
        """
        results: dict[str, list[dict[str, Any]] | None] = dict.fromkeys(self.queries)
        failed: dict[str, str] = {}
        for name, expr in self.queries.items():
            try:
                results[name] = self.query(expr, at)
            except SourceUnavailable as exc:
                return dict.fromkeys(self.queries), {
                    "ok": False,
                    "error": str(exc),
                    "evaluated_at": at,
                }
            except (ValueError, KeyError, TypeError) as exc:
                failed[name] = str(exc) or type(exc).__name__
        status: dict[str, Any] = {"ok": not failed, "evaluated_at": at}
        if failed:
            status["error"] = "some queries failed"
            status["failed_queries"] = failed
        return results, status


class AlertmanagerSource:
    """Reads the alerts firing now; with several URLs (an HA pair) the first that answers."""

    PATH = "/api/v2/alerts"
    PARAMS = {"active": "true", "silenced": "false", "inhibited": "false"}

    def __init__(self, urls: tuple[str, ...], timeout: float):
        self.urls = tuple(u.rstrip("/") for u in urls)
        self.timeout = timeout
        self.session = requests.Session()

    def collect(self) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
        errors = []
        for url in self.urls:
            try:
                response = self.session.get(
                    url + self.PATH, params=self.PARAMS, timeout=self.timeout
                )
                response.raise_for_status()
                alerts = response.json()
                if not isinstance(alerts, list):
                    raise ValueError("the answer is not a list of alerts")
                return [_alert(a) for a in alerts if isinstance(a, dict)], {"ok": True}
            except (requests.RequestException, ValueError) as exc:
                errors.append(_short_error(exc))
        return None, {"ok": False, "error": "; ".join(errors)}


def _alert(raw: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's alert reduced to what views use (staff see all of it)."""
    labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in (raw.get("annotations") or {}).items()}
    return {
        "name": labels.get("alertname", ""),
        "severity": labels.get("severity"),
        "team": labels.get("team"),
        "summary": annotations.get("summary"),
        "description": annotations.get("description"),
        "runbook_url": annotations.get("runbook_url"),
        "starts_at": raw.get("startsAt"),
        "fingerprint": raw.get("fingerprint"),
        "labels": labels,
    }


def _alert_order(alert: dict[str, Any]) -> tuple[int, str, str]:
    severity = alert.get("severity")
    rank = SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)
    return rank, alert.get("starts_at") or "", alert.get("name") or ""


def open_tickets_by_partner() -> dict[int, dict[str, int]]:
    """Open tickets (status open or in_progress) per partner and priority, in one query.

    Runs inside an application context, on the ticketing database.
    """
    from ticketing.db import db
    from ticketing.models import Ticket

    rows = db.session.execute(
        db.select(Ticket.partner_id, Ticket.priority, func.count())
        .where(Ticket.status.in_(ACTIVE_STATUSES))
        .group_by(Ticket.partner_id, Ticket.priority)
    ).all()
    counts: dict[int, dict[str, int]] = {}
    for partner_id, priority, count in rows:
        counts.setdefault(int(partner_id), dict.fromkeys(PRIORITIES, 0))[priority] = int(count)
    return counts


# ------------------------------------------------------------------ the snapshot


@dataclass
class Snapshot:
    """One round of readings, shared by every client until the next one."""

    seq: int
    taken_at: float
    metrics: dict[str, list[dict[str, Any]] | None]
    alerts: list[dict[str, Any]] | None
    tickets_by_partner: dict[int, dict[str, int]] | None
    sources: dict[str, dict[str, Any]]
    views: dict[Any, str] = field(default_factory=dict, repr=False)

    @property
    def timestamp(self) -> str:
        return iso_timestamp(self.taken_at)


def take_snapshot(
    seq: int,
    prometheus: PrometheusSource,
    alertmanager: AlertmanagerSource,
    tickets: Callable[[], dict[int, dict[str, int]]],
    query_offset: float = 0.0,
) -> Snapshot:
    """Read every source once; a failing source is recorded, never raised.

    Prometheus is read as of ``query_offset`` seconds ago: a sample is
    written a moment after its timestamp, so reading "now" could miss one that
    a later query at the same time would see. With the offset, running the
    snapshot's queries at ``sources.prometheus.evaluated_at`` gives its numbers.
    """
    taken_at = round(time.time(), 3)
    metrics, prom_status = prometheus.collect(round(taken_at - query_offset, 3))
    alerts, am_status = alertmanager.collect()
    by_partner: dict[int, dict[str, int]] | None
    db_status: dict[str, Any]
    try:
        by_partner, db_status = tickets(), {"ok": True}
    except Exception as exc:  # any database error: the other parts still go out
        by_partner, db_status = None, {"ok": False, "error": _short_error(exc)}
    return Snapshot(
        seq,
        taken_at,
        metrics,
        alerts,
        by_partner,
        {"prometheus": prom_status, "alertmanager": am_status, "database": db_status},
    )


# ------------------------------------------------------------------ views


def _by_label(result: list[dict[str, Any]] | None, label: str) -> dict[str, float | None] | None:
    if result is None:
        return None
    return {r["metric"].get(label, ""): _number(r["value"][1]) for r in result}


def _single(result: list[dict[str, Any]] | None) -> float | None:
    if not result:
        return None
    return _number(result[0]["value"][1])


def _platform(snap: Snapshot) -> dict[str, Any]:
    """The platform-level part every caller sees."""
    m = snap.metrics
    up = _by_label(m["api_up"], "target")
    latency = _by_label(m["api_latency"], "target") or {}
    p95 = _by_label(m["api_latency_p95"], "target") or {}
    targets = None
    if up is not None:
        targets = {
            t: {
                "up": None if v is None else v == 1.0,
                "latency_seconds": latency.get(t),
                "latency_p95_seconds": p95.get(t),
            }
            for t, v in sorted(up.items())
        }
    return {
        "api": {
            "up": None if not targets else all(t["up"] for t in targets.values()),
            "targets": targets,
        },
        "service": {"error_ratio": _single(m["service_error_ratio"])},
        "energy_pools": _energy_pools(m["energy_pool_available_ratio"]),
        "transactions": {
            "rate_per_second": _by_label(m["transaction_rate"], "status"),
            "failure_ratio": _single(m["transaction_failure_ratio"]),
        },
    }


def _energy_pools(result: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    ratios = _by_label(result, "pool")
    if ratios is None:
        return None
    return {pool: {"available_ratio": ratio} for pool, ratio in sorted(ratios.items())}


def _alerts_part(alerts: list[dict[str, Any]], max_items: int) -> dict[str, Any]:
    alerts = sorted(alerts, key=_alert_order)
    by_severity: dict[str, int] = {}
    for alert in alerts:
        key = alert.get("severity") or "none"
        by_severity[key] = by_severity.get(key, 0) + 1
    return {
        "firing": len(alerts),
        "by_severity": by_severity,
        "items": alerts[:max_items],
        "truncated": len(alerts) > max_items,
    }


def staff_view(snap: Snapshot, *, max_alerts: int, hidden_alerts: frozenset[str]) -> dict[str, Any]:
    """Everything: platform status, all open tickets (Prometheus), every alert in full."""
    view = _platform(snap)
    active = _single(snap.metrics["partners_active"])
    view["partners"] = {"active": None if active is None else int(active)}
    tickets = _by_label(snap.metrics["open_tickets"], "priority")
    view["tickets"] = {
        "scope": "all",
        "open_by_priority": None
        if tickets is None
        else {p: int(tickets.get(p) or 0) for p in PRIORITIES},
    }
    if snap.alerts is None:
        view["alerts"] = None
    else:
        view["alerts"] = _alerts_part(
            [a for a in snap.alerts if a["name"] not in hidden_alerts], max_alerts
        )
    view["sources"] = snap.sources
    return view


#: Teams whose alerts are internal whatever the allow-list says.
INTERNAL_TEAMS = frozenset({"security", "support"})


def is_internal_team(team: str | None) -> bool:
    """Whether a ``team`` label names an internal team, whatever its case and spaces
    (``Security``, `` support ``)."""
    return team is not None and team.strip().casefold() in INTERNAL_TEAMS


def partner_view(
    snap: Snapshot, partner_id: int, *, max_alerts: int, partner_alerts: frozenset[str]
) -> dict[str, Any]:
    """Platform status, the partner's own open tickets (database) and public alerts only.

    Alerts: only those named in ``live.partner_alerts``, never a security or
    support team alert, never one labelled for another partner; reduced to
    name, severity, summary and start. Source errors are reduced to "unavailable"
    (the messages name internal hosts).
    """
    view = _platform(snap)
    counts = None
    if snap.tickets_by_partner is not None:
        counts = snap.tickets_by_partner.get(partner_id, dict.fromkeys(PRIORITIES, 0))
    view["tickets"] = {"scope": "own", "open_by_priority": counts}
    if snap.alerts is None:
        view["alerts"] = None
    else:
        public = []
        for alert in snap.alerts:
            owner = alert["labels"].get("partner_id", alert["labels"].get("partner"))
            if (
                alert["name"] in partner_alerts
                and not is_internal_team(alert.get("team"))
                and (owner is None or owner == str(partner_id))
            ):
                public.append(
                    {
                        "name": alert["name"],
                        "severity": alert.get("severity"),
                        "summary": alert.get("summary"),
                        "starts_at": alert.get("starts_at"),
                    }
                )
        view["alerts"] = _alerts_part(public, max_alerts)
    view["sources"] = {
        name: {"ok": status["ok"]} if status["ok"] else {"ok": False, "error": "unavailable"}
        for name, status in snap.sources.items()
    }
    return view

"""Delivering partner events from the outbox to the partners' endpoints.

The outbox channel ``partner_webhook``: :func:`deliver_due` claims due rows of
that kind (claims, attempts and ``next_attempt_at`` are the outbox's, see
docs/outbox.md), posts each event to its endpoint in the process's pool
(:mod:`ticketing.webhooks.dispatch`: bounded concurrency, per-endpoint slots,
circuits) and records the outcome, each in the pool thread's own app context:

- 2xx: ``success``, done;
- 5xx, 408, 429, a timeout or a connection error: ``retry``, again after
  ``backoff(attempt)`` (exponential, jitter; ``Retry-After`` is honoured up to
  ``max_backoff``);
- the socket's peer is not a public address: ``blocked``, retried like a
  failure (DNS may change back);
- any other status (3xx, 4xx): ``failed``, not retried: the partner must fix
  the endpoint;
- the endpoint was deleted or disabled: ``dropped``, not sent;
- the endpoint's circuit is open: ``circuit_open``, not sent, put back until the probe;
- the event is not of the endpoint's partner: dropped, not sent, recorded in the
  outbox row and the log (never in that endpoint's log).

Every attempt is a row in the endpoint's delivery log.  An endpoint whose
attempts keep failing for ``disable_after`` is disabled, the reason kept on it
and told to the partner's other endpoints (event ``endpoint.disabled``).

Each post is signed (:mod:`ticketing.webhooks.signing`) at the moment it is
sent; the body is the same bytes at every attempt, with the same event id, so a
partner that got an event twice (its answer was lost) recognises it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import requests
from flask import Flask, current_app
from sqlalchemy import select, update

from ticketing.db import db
from ticketing.models import utcnow
from ticketing.outbox.delivery import DeliveryReport
from ticketing.outbox.models import OutboxMessage
from ticketing.outbox.store import (
    Claimed,
    claim_due,
    mark_failed,
    mark_finished,
    release,
)
from ticketing.webhooks import events, metrics, signing
from ticketing.webhooks.dispatch import ADMITTED, OPEN, Dispatcher
from ticketing.webhooks.guard import BlockedAddress, Network, guarded_session
from ticketing.webhooks.models import WebhookDelivery, WebhookEndpoint
from ticketing.webhooks.settings import WebhooksSettings

log = logging.getLogger("ticketing.webhooks")

USER_AGENT = "partnerwatch-webhooks/1.0"
_sessions: dict[tuple[Network, ...], requests.Session] = {}
_dispatchers_lock = threading.Lock()


def session_for(settings: WebhooksSettings) -> requests.Session:
    key = settings.allowed_networks
    if key not in _sessions:
        _sessions[key] = guarded_session(key)
    return _sessions[key]


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Outcome:
    result: str
    status_code: int | None = None
    latency: float | None = None
    error: str | None = None
    retry_after: float | None = None


def post(
    settings: WebhooksSettings, url: str, secret: str, event: dict[str, Any], attempt: int
) -> Outcome:
    """One signed POST of ``event`` to ``url``; reads at most ``max_response_bytes``."""
    body = body_of(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Partnerwatch-Event-Id": event["id"],
        "Partnerwatch-Event-Type": event["type"],
        "Partnerwatch-Delivery-Attempt": str(attempt),
        signing.HEADER: signing.signature_header(secret, body),
    }
    started = time.monotonic()
    try:
        response = session_for(settings).post(
            url,
            data=body,
            headers=headers,
            stream=True,
            allow_redirects=False,
            timeout=(settings.connect_timeout, settings.read_timeout),
        )
        try:
            read = 0
            deadline = started + settings.connect_timeout + settings.read_timeout
            for chunk in response.iter_content(1024):
                read += len(chunk)
                if read >= settings.max_response_bytes or time.monotonic() > deadline:
                    break
        finally:
            response.close()
    except BlockedAddress as exc:
        return Outcome("blocked", error=str(exc))
    except requests.RequestException as exc:
        blocked = _blocked_cause(exc)
        if blocked is not None:
            return Outcome("blocked", error=str(blocked))
        return Outcome(
            "retry", latency=time.monotonic() - started, error=f"{type(exc).__name__}: {exc}"[:500]
        )
    latency = time.monotonic() - started
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("success", status, latency)
    error = f"HTTP {status}"
    if status >= 500 or status in (408, 429):
        return Outcome("retry", status, latency, error, _retry_after(response))
    return Outcome("failed", status, latency, error)


def _blocked_cause(exc: BaseException) -> BlockedAddress | None:
    """requests wraps urllib3's errors: find a BlockedAddress among the causes."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BlockedAddress):
            return current
        seen.add(id(current))
        args = current.args
        current = (
            current.__cause__
            or current.__context__
            or (args[0] if args and isinstance(args[0], BaseException) else None)
        )
        reason = getattr(current, "reason", None)
        if isinstance(reason, BlockedAddress):
            return reason
    return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max((parsedate_to_datetime(value).timestamp() - time.time()), 0.0)
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class _Job:
    """A claimed event for an enabled endpoint of its partner, ready to post."""

    claimed: Claimed
    endpoint_id: int
    url: str
    secret: str
    event: dict[str, Any]


def _prepare(batch: list[Claimed]) -> list[_Job]:
    """Look the endpoints of a claimed batch up (in the deliverer's thread, one query):
    the jobs to post; the other events are dropped (endpoint deleted or disabled,
    another partner's event)."""
    wanted = {c.payload.get("endpoint_id") for c in batch} - {None}
    endpoints = {
        e.id: e
        for e in db.session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.id.in_(sorted(wanted)))
        )
    }
    jobs: list[_Job] = []
    dropped: list[tuple[Claimed, str]] = []
    for claimed in batch:
        endpoint_id = claimed.payload.get("endpoint_id")
        event = claimed.payload.get("event") or {}
        endpoint = endpoints.get(endpoint_id) if endpoint_id else None
        if endpoint is None or not endpoint.enabled:
            reason = "endpoint deleted" if endpoint is None else "endpoint disabled"
            if endpoint is not None:
                _record_attempt(
                    endpoint.id, event, claimed.attempts, Outcome("dropped", error=reason)
                )
            dropped.append((claimed, reason))
            continue
        if event.get("partner_id") != endpoint.partner_id:
            # Never another partner's event, whatever the row says: dropped, and recorded
            # (the row's last_error, the log, the metric), not in the endpoint's own log,
            # which its partner reads.
            reason = (
                f"dropped: event {str(event.get('id'))[:40]} of partner "
                f"{event.get('partner_id')!r} addressed to endpoint {endpoint.id} of partner "
                f"{endpoint.partner_id}"
            )
            dropped.append((claimed, reason))
            log.error("webhooks: %s", reason)
            continue
        jobs.append(_Job(claimed, endpoint.id, endpoint.url, endpoint.secret, event))
    db.session.commit()  # no transaction stays open while the partners are called
    for claimed, reason in dropped:
        mark_finished(claimed, reason)
        metrics.deliveries.labels(result="dropped").inc()
    return jobs


def _attempt(
    app: Flask, settings: WebhooksSettings, dispatcher: Dispatcher, job: _Job
) -> DeliveryReport:
    """In a pool thread: post (no database), then record the outcome in an application
    context of this thread (its own session)."""
    report = DeliveryReport()
    try:
        outcome = post(settings, job.url, job.secret, job.event, job.claimed.attempts)
    except Exception as exc:  # not the partner's doing: retried like a failure
        log.exception("webhooks: posting to endpoint %s failed", job.endpoint_id)
        outcome = Outcome("retry", error=f"{type(exc).__name__}: {exc}"[:500])
    metrics.deliveries.labels(result=outcome.result).inc()
    if outcome.latency is not None:
        metrics.delivery_duration.observe(outcome.latency)
    circuit = dispatcher.record(job.endpoint_id, outcome.result in ("success", "failed"))
    if circuit == "opened":
        outcome.error = (
            f"{outcome.error}; circuit opened after "
            f"{settings.delivery.circuit_failures} consecutive failures"
        )[:500]
        log.warning("webhooks: circuit of endpoint %s opened", job.endpoint_id)
    try:
        with app.app_context():
            _record_outcome(settings, job, outcome, report)
    except Exception as exc:  # the claim times out and the event is sent again
        log.exception("webhooks: recording the outcome for endpoint %s failed", job.endpoint_id)
        report.failed += 1
        report.errors.append(f"endpoint {job.endpoint_id}: not recorded: {exc}")
    return report


def _record_outcome(
    settings: WebhooksSettings, job: _Job, outcome: Outcome, report: DeliveryReport
) -> None:
    claimed, endpoint_id, event = job.claimed, job.endpoint_id, job.event
    now = utcnow()
    try:
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        _record_attempt(endpoint_id, event, claimed.attempts, outcome, now)
        disabled = False
        if endpoint is not None:
            if outcome.result == "success":
                endpoint.failing_since = None
            else:
                endpoint.failing_since = endpoint.failing_since or now
                if now - endpoint.failing_since >= timedelta(seconds=settings.disable_after):
                    disabled = True
                    _disable(endpoint, now, outcome)
        if outcome.result == "success":  # done, in the transaction that logs it
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == claimed.id, OutboxMessage.delivered_at.is_(None))
                .values(delivered_at=now, last_error=None),
                execution_options={"synchronize_session": False},
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise

    if outcome.result == "success":
        report.delivered += 1
        log.info(
            "webhooks: delivered %s %s to endpoint %s",
            event.get("type"),
            event.get("id"),
            endpoint_id,
        )
        return
    report.failed += 1
    report.errors.append(f"endpoint {endpoint_id}: {outcome.error}")
    if outcome.result == "failed" or disabled:
        mark_finished(claimed, outcome.error or outcome.result)
    else:
        delay = settings.backoff(claimed.attempts)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, settings.max_backoff))
        mark_failed([claimed], outcome.error or outcome.result, lambda _attempts: delay)
    log.warning(
        "webhooks: %s to endpoint %s, attempt %s: %s",
        outcome.result,
        endpoint_id,
        claimed.attempts,
        outcome.error,
    )


def _circuit_open(settings: WebhooksSettings, job: _Job, wait: float) -> None:
    """Not sent: the endpoint's circuit is open. Logged, and put back until the probe;
    an endpoint failing for ``disable_after`` is disabled here as after an attempt."""
    now = utcnow()
    outcome = Outcome(
        "circuit_open",
        error=f"not sent: the endpoint's circuit is open, next probe in {wait:.0f}s",
    )
    disabled = False
    try:
        _record_attempt(job.endpoint_id, job.event, job.claimed.attempts, outcome, now)
        endpoint = db.session.get(WebhookEndpoint, job.endpoint_id)
        if endpoint is not None and endpoint.failing_since is not None:
            failing_for = (now - endpoint.failing_since).total_seconds()
            if failing_for >= settings.disable_after:
                disabled = True
                _disable(endpoint, now, outcome)
            else:  # back when it is due to be disabled, if that comes before the probe
                wait = max(0.0, min(wait, settings.disable_after - failing_for))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    metrics.deliveries.labels(result="circuit_open").inc()
    if disabled:
        mark_finished(job.claimed, "dropped: endpoint disabled")
    else:
        release([job.claimed], wait)


def _record_attempt(
    endpoint_id: int,
    event: dict[str, Any],
    attempt: int,
    outcome: Outcome,
    now: datetime | None = None,
) -> None:
    """Add the row of this attempt to the endpoint's delivery log (``webhook_deliveries``,
    what the partner reads), in the session's transaction: the caller commits it."""
    db.session.add(
        WebhookDelivery(
            endpoint_id=endpoint_id,
            event_id=str(event.get("id", ""))[:40],
            event_type=str(event.get("type", ""))[:40],
            attempt=attempt,
            result=outcome.result,
            status_code=outcome.status_code,
            latency_ms=None if outcome.latency is None else round(outcome.latency * 1000),
            error=outcome.error,
            at=now or utcnow(),
        )
    )


def _disable(endpoint: WebhookEndpoint, now: datetime, outcome: Outcome) -> None:
    since = (endpoint.failing_since or now).isoformat(timespec="seconds") + "Z"
    endpoint.enabled = False
    endpoint.disabled_reason = (
        f"disabled automatically at {now.isoformat(timespec='seconds')}Z:"
        f" every delivery failed since {since} (last: {outcome.error})"
    )[:400]
    endpoint.updated_at = now
    events.drop_queued_for(endpoint.id, "endpoint disabled")  # nothing more waits for it
    metrics.endpoints_disabled.inc()
    log.warning(
        "webhooks: endpoint %s of partner %s disabled: %s",
        endpoint.id,
        endpoint.partner_id,
        endpoint.disabled_reason,
    )
    # The partner hears of it in the endpoint's own log (the disabling attempt,
    # and GET shows disabled_reason) and on its other endpoints.
    events.queue_event(
        endpoint.partner_id,
        events.ENDPOINT_DISABLED,
        {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": endpoint.disabled_reason},
        exclude_endpoint=endpoint.id,
    )


def batch_size(settings: WebhooksSettings, claim_timeout: float) -> int:
    """Rows claimed by one claim statement, at most: ``batch_size``, fewer when the claim
    timeout is short (as if they were posted in sequence, a wide margin: each claimed
    row is posted at once in its own slot, or put back)."""
    per_delivery = settings.connect_timeout + settings.read_timeout
    return max(1, min(settings.batch_size, int(claim_timeout // (2 * per_delivery))))


def dispatcher_for(app: Flask, settings: WebhooksSettings) -> Dispatcher:
    """The app's dispatcher in this process (a new one after a fork)."""
    state = app.extensions["webhooks"]
    with _dispatchers_lock:
        dispatcher: Dispatcher | None = state.dispatcher
        if dispatcher is None or dispatcher.pid != os.getpid():
            outbox = app.extensions.get("outbox")
            wake = outbox.worker.wake if outbox is not None else None
            dispatcher = state.dispatcher = Dispatcher(settings.delivery, wake)
        return dispatcher


def deliver_due(
    settings: WebhooksSettings, max_batches: int | None = None, wait: bool = True
) -> DeliveryReport:
    """One pass over the due partner events (inside an application context).

    Claims as many due events as the dispatcher has free slots (each claimed event
    is posted at once, so it is done long before its claim times out; one that has
    no slot of its endpoint is put back), posts them in the pool and records each
    outcome in the pool thread's own application context.  ``wait``: return when
    every post of this pass is recorded (``flask outbox deliver``, tests); the
    delivery thread does not wait (a hanging endpoint holds only its slots; a freed
    slot wakes the thread).
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # the proxy's app
    dispatcher = dispatcher_for(app, settings)
    claim_timeout = current_app.extensions["outbox"].settings.claim_timeout
    most = batch_size(settings, claim_timeout)
    report = DeliveryReport()
    futures: list[Future[DeliveryReport]] = []
    batches = 0
    while max_batches is None or batches < max_batches:
        free = dispatcher.free_slots()
        if free <= 0:
            break
        size = min(free, most)
        batch = claim_due(size, claim_timeout, kinds=(events.KIND,))
        if not batch:
            break
        batches += 1
        try:
            jobs = _prepare(batch)
        except Exception:
            db.session.rollback()
            raise
        busy: list[Claimed] = []
        for job in jobs:
            verdict, later = dispatcher.admit(job.endpoint_id)
            if verdict == ADMITTED:
                futures.append(
                    dispatcher.submit(
                        job.endpoint_id, partial(_attempt, app, settings, dispatcher, job)
                    )
                )
            elif verdict == OPEN:  # a margin, so the probe finds the circuit half-open
                _circuit_open(settings, job, later + 0.1)
            else:
                busy.append(job.claimed)
        release(busy, min(1.0, settings.connect_timeout))
        if len(batch) < size:
            break
    if wait:
        for future in futures:
            report.merge(future.result())
    return report

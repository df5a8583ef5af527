"""The security monitor's counters (ticketing's ``/metrics``).

Counters only, so they are right under gunicorn's multiprocess mode; names and
labels are those of ``docs/metrics.md``. Label values come from bounded sets:
event types and severities are fixed lists, actions are the configured ones.

Every series exists from the start, at 0 (:func:`start_at_zero`, called when
the monitor is set up in each process): Prometheus' ``increase()`` and
``rate()`` need a sample before the first event to see that event at all, and
a brute-force attempt is often the first MULTIPLE_FAILED_LOGINS of a worker's
life.
"""

from collections.abc import Iterable

from prometheus_client import Counter

security_events = Counter(
    "security_events_total",
    "Security events recorded, each occurrence (also those folded into an existing row).",
    ["type", "severity"],
)
ratelimit_rejections = Counter(
    "ratelimit_rejections_total",
    "Requests refused with 429 by a rate limit.",
    ["action"],
)
ratelimit_backend_errors = Counter(
    "ratelimit_backend_errors_total",
    "Rate-limit storage (Redis) errors; limits fall back to per-process memory meanwhile.",
)


def start_at_zero(
    event_types: Iterable[str], severities: Iterable[str], actions: Iterable[str]
) -> None:
    """Create the series of every event type and severity, and of every action, at 0."""
    severities = tuple(severities)
    for event_type in event_types:
        for severity in severities:
            security_events.labels(type=str(event_type), severity=severity)
    for action in actions:
        ratelimit_rejections.labels(action=action)

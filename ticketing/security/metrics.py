"""The security monitor's counters (ticketing's ``/metrics``).

Counters only, so they are right under gunicorn's multiprocess mode; names and
labels are those of ``docs/metrics.md``. Label values come from bounded sets:
event types and severities are fixed lists, actions are the configured ones.
"""
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

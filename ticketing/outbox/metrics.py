"""Delivery counters (ticketing's ``/metrics``; safe under gunicorn multiprocess mode).

The backlog itself, ``support_outbox_pending``, is a gauge read from the
database by the exporter, so it is right whichever process delivers.
"""

from prometheus_client import Counter

notifications_delivered = Counter(
    "notifications_delivered_total",
    "Outbox notifications accepted by Alertmanager.",
    ["kind"],
)
notifications_failed = Counter(
    "notifications_failed_total",
    "Outbox delivery attempts that failed (the notification is retried later).",
    ["kind"],
)

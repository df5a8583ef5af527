"""Partner webhook counters (ticketing's ``/metrics``; safe under gunicorn multiprocess mode)."""

from prometheus_client import Counter, Gauge, Histogram

#: success, retry (5xx, 408, 429, timeout, connection error: tried again later),
#: failed (another 4xx: not retried), blocked (a non-public address), dropped
#: (the endpoint was deleted or disabled before delivery), circuit_open (not sent:
#: the endpoint's circuit is open, the event waits for the probe).
RESULTS = ("success", "retry", "failed", "blocked", "dropped", "circuit_open")

deliveries = Counter(
    "partner_webhook_deliveries_total",
    "Partner webhook delivery attempts by result.",
    ["result"],
)
for _result in RESULTS:
    deliveries.labels(result=_result)

delivery_duration = Histogram(
    "partner_webhook_delivery_duration_seconds",
    "Time from connecting to a partner endpoint to its answer being read.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

endpoints_disabled = Counter(
    "partner_webhook_endpoints_disabled_total",
    "Partner webhook endpoints disabled because they failed for webhooks.disable_after.",
)

alert_notifications = Counter(
    "partner_alert_notifications_total",
    "Alerts in Alertmanager notifications to the partner receiver, by what became of them.",
    ["result"],  # queued (events for the partner's endpoints), duplicate, ignored (no partner)
)
for _result in ("queued", "duplicate", "ignored"):
    alert_notifications.labels(result=_result)

in_flight = Gauge(
    "partner_webhook_deliveries_in_flight",
    "Partner webhook posts in flight (at most webhooks.delivery.concurrency per process).",
    multiprocess_mode="livesum",
)

circuits_open = Gauge(
    "partner_webhook_circuits_open",
    "Partner webhook endpoints whose circuit is open (consecutive failures; probed later).",
    multiprocess_mode="livesum",
)

circuit_opened = Counter(
    "partner_webhook_circuit_opened_total",
    "Times an endpoint's circuit opened after webhooks.delivery.circuit_failures failures.",
)

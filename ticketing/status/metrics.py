"""Status page counters (ticketing's ``/metrics``; safe under gunicorn multiprocess mode)."""

from prometheus_client import Counter

incidents_opened = Counter(
    "status_incidents_opened_total",
    "Status page incidents opened, by source (alert: a platform alert; staff: by hand).",
    ["source"],
)
for _source in ("alert", "staff"):
    incidents_opened.labels(source=_source)

incidents_published = Counter(
    "status_incidents_published_total", "Status page incidents published to partners."
)

incidents_resolved = Counter("status_incidents_resolved_total", "Status page incidents resolved.")

alert_notifications = Counter(
    "status_alert_notifications_total",
    "Alerts in Alertmanager notifications to the status receiver, by what became of them.",
    # recorded (a new notice of a component's alert), duplicate, ignored (no known component)
    ["result"],
)
for _result in ("recorded", "duplicate", "ignored"):
    alert_notifications.labels(result=_result)

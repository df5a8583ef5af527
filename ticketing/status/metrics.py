"""Status page counters (ticketing's ``/metrics``; safe under gunicorn multiprocess mode)."""

from prometheus_client import Counter, Histogram

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

# Tickets and incidents (incident_tickets.py); counted once the change has committed.
tickets_linked = Counter(
    "status_incident_tickets_linked_total",
    "Tickets linked to an incident, by how (automatic: by their score; staff: by hand).",
    ["how"],
)
for _how in ("automatic", "staff"):
    tickets_linked.labels(how=_how)

tickets_suggested = Counter(
    "status_incident_ticket_suggestions_total",
    "Tickets that matched an open incident too weakly to be linked: suggested to staff.",
)

linked_per_incident = Histogram(
    "status_incident_linked_tickets",
    "Tickets linked to an incident, observed when it is resolved.",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)

bulk_replies = Counter(
    "status_incident_bulk_replies_total",
    "Public replies posted on linked tickets in one action, by kind (update: an incident "
    "update; closing: the message of the incident's resolution).",
    ["kind"],
)
for _kind in ("update", "closing"):
    bulk_replies.labels(kind=_kind)

sla_paused_seconds = Counter(
    "support_ticket_sla_paused_seconds_total",
    "Time tickets' SLA clocks stood still while their incident was open (counted when "
    "each pause ends).",
)

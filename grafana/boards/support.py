"""Support: the ticket queue, its SLA, response and resolution times, and the ticket API."""

from __future__ import annotations

from grafana.board import Board
from grafana.panels import bargauge, query, stat, timeseries

PRIORITY = 'priority=~"$priority"'
OPEN = f'{{status=~"open|in_progress", {PRIORITY}}}'


def quantiles(histogram: str) -> list:
    """p50, p95 and p99 of a ticket-duration histogram over the last hour."""
    return [
        query(
            f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{{{PRIORITY}}}[1h])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def build(rules: dict) -> Board:
    board = Board(
        "partnerwatch-support",
        "Support",
        "Support queue, SLA, response and resolution times, ticket API.",
        tags=["support"],
        rules=rules,
    )
    board.variable("priority", "Priority", "support_tickets")

    def tickets(
        title: str, description: str, expr: str, legend: str, w: int, sparkline: bool = False
    ) -> None:
        board.add(
            stat(title, description, "short", [query(expr, legend)], sparkline=sparkline), w=w, h=5
        )

    tickets(
        "Open tickets",
        "Tickets open or in progress (support_tickets).",
        f"sum(support_tickets{OPEN})",
        "open",
        5,
        sparkline=True,
    )
    tickets(
        "First response overdue",
        "Open tickets past their first-response target with no "
        "public staff reply (support_tickets_first_response_overdue); "
        "SupportFirstResponseOverdue fires after 5 m.",
        f"sum(support_tickets_first_response_overdue{{{PRIORITY}}})",
        "overdue",
        5,
    )
    tickets(
        "Critical tickets open",
        "Open critical tickets.",
        'sum(support_tickets{status=~"open|in_progress", priority="critical"})',
        "critical",
        4,
    )
    tickets(
        "Critical tickets unassigned",
        "Open critical tickets without an assignee "
        "(support_tickets_unassigned); CriticalTicketUnassigned fires after 5 m.",
        'sum(support_tickets_unassigned{priority="critical"})',
        "unassigned",
        5,
    )
    board.add(
        stat(
            "Ticket API 5xx ratio",
            "5xx / all ticket API requests over 5 m (ticketing:http_5xx:ratio_rate5m).",
            "percentunit",
            [query("ticketing:http_5xx:ratio_rate5m", "5xx ratio")],
            thresholds=board.alerts("TicketingHighErrorRate"),
            decimals=2,
        ),
        w=5,
        h=5,
    )

    board.add(
        bargauge(
            "Open tickets by priority",
            "Open and in-progress tickets per priority.",
            "short",
            [query(f"sum by (priority) (support_tickets{OPEN})", "{{priority}}")],
        ),
        w=8,
        h=8,
    )
    board.add(
        bargauge(
            "Tickets by status",
            "Every ticket in the ticketing database by status.",
            "short",
            [query(f"sum by (status) (support_tickets{{{PRIORITY}}})", "{{status}}")],
        ),
        w=8,
        h=8,
    )
    board.add(
        bargauge(
            "First response overdue by priority",
            "Open tickets past their first-response target per priority.",
            "short",
            [
                query(
                    f"sum by (priority) (support_tickets_first_response_overdue{{{PRIORITY}}})",
                    "{{priority}}",
                )
            ],
        ),
        w=8,
        h=8,
    )

    board.add(
        timeseries(
            "Open tickets by priority over time",
            "Open and in-progress tickets per priority over time.",
            "short",
            [query(f"sum by (priority) (support_tickets{OPEN})", "{{priority}}")],
            stacked=True,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Tickets created by category",
            "New tickets per minute by category (support_tickets_created_total).",
            "cpm",
            [
                query(
                    "sum by (category) (rate(support_tickets_created_total"
                    f"{{{PRIORITY}}}[$__rate_interval])) * 60",
                    "{{category}}",
                )
            ],
            bars=True,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "First-response time",
            "Time from creation to the first public staff "
            "reply: quantiles over the last hour (support_ticket_first_response_"
            "seconds).",
            "s",
            quantiles("support_ticket_first_response_seconds"),
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Resolution time",
            "Time from creation to resolution: quantiles over "
            "the last hour (support_ticket_resolution_seconds).",
            "s",
            quantiles("support_ticket_resolution_seconds"),
        ),
        w=12,
        h=8,
    )

    board.add(
        timeseries(
            "Messages",
            "Messages posted per minute by sender (partner, staff).",
            "cpm",
            [
                query(
                    "sum by (sender_type) (rate(support_ticket_messages_total"
                    "[$__rate_interval])) * 60",
                    "{{sender_type}}",
                )
            ],
        ),
        w=8,
        h=8,
    )
    board.add(
        timeseries(
            "Ticket API requests",
            "Requests per second by status (ticketing:http_requests:rate5m).",
            "reqps",
            [query("ticketing:http_requests:rate5m", "{{status}}")],
            stacked=True,
        ),
        w=8,
        h=8,
    )
    board.add(
        timeseries(
            "Ticket API latency p95",
            "p95 request duration per route (ticketing:http_request_duration_seconds:p95_5m).",
            "s",
            [query("ticketing:http_request_duration_seconds:p95_5m", "{{path}}")],
        ),
        w=8,
        h=8,
    )

    # Partner webhooks: what the partners' own endpoints get (docs/webhooks.md).
    deliveries = "partner_webhook_deliveries_total"
    board.add(
        timeseries(
            "Partner webhook deliveries by result",
            "Delivery attempts to partners' endpoints per second by result "
            "(partner_webhook_deliveries_total): success, retry (5xx, 408, 429, "
            "timeout, connection error), failed (other 4xx), blocked (non-public "
            "address), dropped.",
            "ops",
            [query(f"sum by (result) (rate({deliveries}[$__rate_interval]))", "{{result}}")],
            stacked=True,
        ),
        w=8,
        h=8,
    )
    board.add(
        timeseries(
            "Partner webhook failure ratio",
            "Retried, failed and blocked attempts / all attempts over 15 m "
            "(partner_webhook:deliveries_failed:ratio_rate15m); the line is the "
            "PartnerWebhookDeliveryFailing threshold.",
            "percentunit",
            [query("partner_webhook:deliveries_failed:ratio_rate15m", "failure ratio")],
            thresholds=board.alerts("PartnerWebhookDeliveryFailing"),
            max_value=1,
        ),
        w=6,
        h=8,
    )
    board.add(
        timeseries(
            "Partner webhook delivery latency p95",
            "p95 of the time from connecting to a partner endpoint to its answer "
            "(partner_webhook_delivery_duration_seconds) over 5 m.",
            "s",
            [
                query(
                    "histogram_quantile(0.95, sum by (le) (rate("
                    "partner_webhook_delivery_duration_seconds_bucket[5m])))",
                    "p95",
                )
            ],
        ),
        w=6,
        h=8,
    )
    board.add(
        stat(
            "Partner endpoints disabled (24 h)",
            "Endpoints disabled because every delivery failed for webhooks.disable_after "
            "(partner_webhook_endpoints_disabled_total); their partners are told.",
            "short",
            [query("sum(increase(partner_webhook_endpoints_disabled_total[24h]))", "disabled")],
        ),
        w=4,
        h=8,
    )

    # Incidents: tickets linked to a known outage, answered and resolved together
    # (docs/status.md, "Tickets and incidents").
    tickets(
        "SLA paused",
        "Open tickets whose SLA clock stands still because their incident is open "
        "(support_tickets_sla_paused); a paused ticket is never overdue.",
        f"sum(support_tickets_sla_paused{{{PRIORITY}}})",
        "paused",
        4,
    )
    board.add(
        bargauge(
            "Tickets linked to incidents (24 h)",
            "Tickets linked to an incident in the last 24 hours, by how: automatic "
            "(their score against an open incident) or staff (by hand) "
            "(status_incident_tickets_linked_total).",
            "short",
            [
                query(
                    "sum by (how) (increase(status_incident_tickets_linked_total[24h]))",
                    "{{how}}",
                )
            ],
        ),
        w=6,
        h=5,
    )
    board.add(
        bargauge(
            "Replies sent in bulk (24 h)",
            "Public replies posted on every linked ticket in one action, by kind: an "
            "incident update, or the closing message when the incident resolved them "
            "(status_incident_bulk_replies_total).",
            "short",
            [
                query(
                    "sum by (kind) (increase(status_incident_bulk_replies_total[24h]))",
                    "{{kind}}",
                )
            ],
        ),
        w=6,
        h=5,
    )
    tickets(
        "Tickets per resolved incident (7 d)",
        "Linked tickets per incident resolved in the last 7 days, on average "
        "(status_incident_linked_tickets, observed when an incident resolves).",
        "sum(increase(status_incident_linked_tickets_sum[7d]))"
        " / sum(increase(status_incident_linked_tickets_count[7d]))",
        "tickets",
        4,
    )
    board.add(
        stat(
            "SLA time paused (24 h)",
            "Time linked tickets' SLA clocks stood still while their incident was open, "
            "counted when each pause ends (support_ticket_sla_paused_seconds_total).",
            "s",
            [query("sum(increase(support_ticket_sla_paused_seconds_total[24h]))", "paused")],
        ),
        w=4,
        h=5,
    )
    return board

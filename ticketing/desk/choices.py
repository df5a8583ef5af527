"""The fixed vocabularies of the ticket service.

They are shared by the models (CHECK constraints), the API schemas (enums in
the OpenAPI document), the configuration checks and the exporter's queries,
so they live in one place. Priorities are listed from lowest to highest.
"""

from __future__ import annotations

STATUSES = ("open", "in_progress", "resolved", "closed")
PRIORITIES = ("low", "medium", "high", "critical")
CATEGORIES = ("api", "billing", "technical", "energy", "account", "security", "other")
STAFF_ROLES = ("agent", "admin")
SENDER_TYPES = ("partner", "staff")
ACTOR_KINDS = ("partner", "staff", "system")
PARTNER_STATUSES = ("active", "suspended")

#: Statuses in which a ticket still waits for work (SLA clocks run).
ACTIVE_STATUSES = ("open", "in_progress")


def priority_rank(priority: str) -> int:
    """Position of ``priority`` in :data:`PRIORITIES` (higher is more urgent)."""
    return PRIORITIES.index(priority)


def max_priority(a: str, b: str) -> str:
    return a if priority_rank(a) >= priority_rank(b) else b

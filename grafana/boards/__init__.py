"""One module per dashboard, each with ``build(rules) -> Board``.

``BOARDS`` maps the JSON file each is written to (in grafana/dashboards/) to its module.
"""

from __future__ import annotations

from grafana.boards import operations, platform_overview, security, stack_health, support

BOARDS = {
    "platform-overview.json": platform_overview,
    "support.json": support,
    "security.json": security,
    "operations.json": operations,
    "stack-health.json": stack_health,
}

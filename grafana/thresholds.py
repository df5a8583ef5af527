"""Panel thresholds read from the alert rules, so a dashboard cannot drift from them.

An alert expression here has one shape: a left-hand side compared with a number,
``platform:energy_pool_available:ratio < 0.20``. :func:`alert_thresholds` finds
every rule of an alert name in ``rules/*.rules.yml`` (a name may have a warning
and a critical rule) and returns their comparisons; an expression of any other
shape stops the generator with its file and text, instead of drawing a wrong line:

    rules = alerting_rules(RULES)
    alert_thresholds("EnergyPoolCritical", rules)   # [AlertThreshold("<", 0.2, "critical")]
    threshold_steps(["EnergyPoolLow", "EnergyPoolCritical"], rules)
    # [("red", None), ("orange", 0.2), ("green", 0.3)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parent.parent / "rules"

# The colour a panel gives the values an alert of that severity fires on.
SEVERITY_COLORS = {"warning": "orange", "critical": "red"}
OK_COLOR = "green"

# `<expression> <op> <number>`: nothing after the number, no other comparison before it.
COMPARISON_RE = re.compile(
    r"^(?P<lhs>.+?)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$",
    re.S,
)


class RuleShapeError(ValueError):
    """An alert expression is not ``<expression> <op> <number>``, or the alert is missing."""


@dataclass(frozen=True)
class AlertThreshold:
    op: str  # "<", "<=", ">" or ">="
    value: float
    severity: str  # the rule's severity label

    @property
    def above(self) -> bool:
        """Whether the alert fires on values above the threshold."""
        return self.op.startswith(">")


def alerting_rules(rules_dir: Path = RULES) -> dict[str, list[dict]]:
    """Alerting rules by alert name, each with the file it came from under ``"file"``."""
    rules: dict[str, list[dict]] = {}
    for path in sorted(Path(rules_dir).glob("*.rules.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    rules.setdefault(rule["alert"], []).append({**rule, "file": path.name})
    return rules


def alert_thresholds(name: str, rules: dict[str, list[dict]]) -> list[AlertThreshold]:
    """The comparison and constant of each rule named ``name``, in file order."""
    if name not in rules:
        raise RuleShapeError(f"alert {name} is not in the rule files")
    found = []
    for rule in rules[name]:
        expr = " ".join(str(rule["expr"]).split())
        match = COMPARISON_RE.match(expr)
        if match is None or re.search(r"[<>]", match.group("lhs")):
            raise RuleShapeError(
                f"{rule['file']}: alert {name}: expected '<expression> <op> <number>', got {expr!r}"
            )
        severity = rule.get("labels", {}).get("severity")
        if severity not in SEVERITY_COLORS:
            raise RuleShapeError(
                f"{rule['file']}: alert {name}: severity {severity!r} "
                f"has no panel colour (one of {sorted(SEVERITY_COLORS)})"
            )
        value = float(match.group("value"))
        found.append(
            AlertThreshold(match.group("op"), int(value) if value.is_integer() else value, severity)
        )
    return found


def threshold_steps(
    alert_names: list[str], rules: dict[str, list[dict]]
) -> list[tuple[str, float | None]]:
    """Grafana threshold steps ``(colour, from value)`` for the alerts behind a panel.

    For alerts on values above a threshold the base is green and each threshold
    takes its alert's colour from there up; for alerts on values below one, the
    colours run the other way (red at the bottom, green above the highest).
    """
    found = sorted(
        (t for name in alert_names for t in alert_thresholds(name, rules)), key=lambda t: t.value
    )
    if not found:
        return [(OK_COLOR, None)]
    if len({t.above for t in found}) != 1:
        raise RuleShapeError(f"alerts {alert_names} compare in both directions: {found}")
    colors = [SEVERITY_COLORS[t.severity] for t in found]
    values = [t.value for t in found]
    if found[0].above:
        return [(OK_COLOR, None)] + list(zip(colors, values, strict=True))
    return list(zip(colors, [None] + values[:-1], strict=True)) + [(OK_COLOR, values[-1])]

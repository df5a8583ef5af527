"""Render prometheus.yml (and, optionally, the rules) for a local run or a test.

The shipped ``prometheus/prometheus.yml`` targets the docker-compose service
names and loads ``rules/*.rules.yml`` relative to itself (the compose stack
mounts the repository's ``rules/`` next to it).  A run on loopback addresses
renders a copy that keeps every job and changes only what is named:

- ``targets``: job name -> ``host:port`` list (every job named must exist);
- ``alertmanagers``: ``host:port`` list;
- ``rules_dir``: the folder whose ``*.rules.yml`` are loaded (default: the
  repository's ``rules/``, as an absolute path);
- ``scrape_interval`` / ``evaluation_interval``;
- ``replica``: this Prometheus is one replica of an HA pair (docs/deployment.md,
  "Scaling out"): the external label ``replica`` is set to it, and dropped
  again from the alerts it sends (so Alertmanager sees the pair's alerts as
  one) and from what it ``remote_write``s (so the long-term store keeps one
  series, which it de-duplicates);
- ``remote_write``: URLs to ``remote_write`` every sample to (VictoriaMetrics).

``prometheus/prometheus-ha.yml`` is this file rendered with
:data:`COMPOSE_HA` (what the compose ``ha`` profile runs); a test keeps it so.

:func:`render_rules` copies the rule files with every ``for:`` capped, so an
end-to-end test does not wait minutes for an alert to fire::

    from prometheus.render import render, render_rules
    rules = render_rules(tmp / "rules", max_for="2s")
    text = render(targets={"exporter": [exporter_addr], "ticketing": [app_addr],
                           "prometheus": [prom_addr], "alertmanager": [am.address]},
                  alertmanagers=[am.address], rules_dir=rules,
                  scrape_interval="1s", evaluation_interval="1s")
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from sharedconfig import parse_duration

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "prometheus.yml"
HA_CONFIG = HERE / "prometheus-ha.yml"
RULES_DIR = HERE.parent / "rules"
#: The external label that tells the replicas of an HA pair apart.
REPLICA_LABEL = "replica"
#: How the compose ``ha`` profile's replicas differ from the single Prometheus
#: (``${PROMETHEUS_REPLICA}`` is expanded by ``--enable-feature=expand-external-labels``).
COMPOSE_HA = {
    "replica": "${PROMETHEUS_REPLICA}",
    "targets": {
        "prometheus": ["prometheus:9090", "prometheus-b:9090"],
        "alertmanager": ["alertmanager:9093", "alertmanager-b:9093"],
        "ticketing": ["ticketing:8000", "ticketing-b:8000"],
    },
    "alertmanagers": ["alertmanager:9093", "alertmanager-b:9093"],
    "remote_write": ["http://victoriametrics:8428/api/v1/write"],
}


class RenderError(ValueError):
    """A requested change names something the config does not have."""


def render(
    source: Path = CONFIG,
    *,
    targets: Mapping[str, Sequence[str]] | None = None,
    alertmanagers: Sequence[str] | None = None,
    rules_dir: str | Path | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    replica: str | None = None,
    remote_write: Sequence[str] | None = None,
    keep_rule_files: bool = False,
) -> str:
    """Return the YAML text of ``source`` with the given changes applied.

    ``keep_rule_files`` leaves ``rule_files`` as written (relative to the
    config, as in the container) instead of pointing them at ``rules_dir``.
    """
    config = yaml.safe_load(Path(source).read_text())
    glob = config.setdefault("global", {})
    if scrape_interval is not None:
        glob["scrape_interval"] = scrape_interval
        if "scrape_timeout" in glob and seconds(glob["scrape_timeout"]) > seconds(scrape_interval):
            glob["scrape_timeout"] = scrape_interval
    if evaluation_interval is not None:
        glob["evaluation_interval"] = evaluation_interval

    if not keep_rule_files:
        rules = Path(rules_dir or RULES_DIR).resolve()
        config["rule_files"] = [str(rules / "*.rules.yml")]

    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    for name, addresses in (targets or {}).items():
        if name not in jobs:
            raise RenderError(f"job {name!r} does not exist; jobs: {', '.join(jobs)}")
        jobs[name]["static_configs"] = [{"targets": list(addresses)}]
    if alertmanagers is not None:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    drop_replica = [{"action": "labeldrop", "regex": REPLICA_LABEL}]
    if replica is not None:
        glob.setdefault("external_labels", {})[REPLICA_LABEL] = replica
        config.setdefault("alerting", {})["alert_relabel_configs"] = copy.deepcopy(drop_replica)
    if remote_write:
        config["remote_write"] = [
            {
                "url": url,
                **(
                    {"write_relabel_configs": copy.deepcopy(drop_replica)}
                    if replica is not None
                    else {}
                ),
            }
            for url in remote_write
        ]

    header = f"# Rendered from {Path(source).name} by prometheus/render.py.\n"
    return header + yaml.safe_dump(config, sort_keys=False, width=1000)


def render_compose_ha(source: Path = CONFIG) -> str:
    """The text of ``prometheus/prometheus-ha.yml``: ``source`` as the ``ha`` replicas run it."""
    text = render(source, keep_rule_files=True, **COMPOSE_HA)
    return HA_HEADER + text.split("\n", 1)[1]


HA_HEADER = """\
# Prometheus for partnerwatch as an HA pair (docker-compose --profile ha).
#
# Generated from prometheus.yml by `python -m prometheus.render > prometheus/prometheus-ha.yml`;
# edit prometheus.yml and regenerate (tests/dashboards/test_docker_compose.py checks it).
# Both replicas (prometheus, prometheus-b) run this file: the same rules and
# targets, told apart by the external label `replica` (each container sets
# PROMETHEUS_REPLICA; --enable-feature=expand-external-labels). The label is
# dropped from the alerts sent to both Alertmanagers, which then hold one alert
# for the pair and, clustered, notify once; and from what is remote-written to
# VictoriaMetrics, which keeps one series per target (-dedup.minScrapeInterval).
"""


def render_rules(
    dest: str | Path, *, max_for: str | None = None, source_dir: Path = RULES_DIR
) -> Path:
    """Copy ``source_dir/*.rules.yml`` into ``dest``, capping each ``for:`` at ``max_for``.

    Returns ``dest``, ready to pass as ``render(rules_dir=...)``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cap = seconds(max_for) if max_for else None
    for path in sorted(Path(source_dir).glob("*.rules.yml")):
        doc = yaml.safe_load(path.read_text())
        if cap is not None:
            for group in doc.get("groups", []):
                for rule in group.get("rules", []):
                    if "for" in rule and seconds(rule["for"]) > cap:
                        rule["for"] = max_for
        (dest / path.name).write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    return dest


def seconds(duration: str) -> float:
    """A Prometheus duration (``1h30m``, ``15s``, ``0s``) in seconds."""
    try:
        return parse_duration(duration)
    except ValueError:
        raise RenderError(f"not a duration: {duration!r}") from None


if __name__ == "__main__":
    # python -m prometheus.render > prometheus/prometheus-ha.yml
    import sys

    sys.stdout.write(render_compose_ha())

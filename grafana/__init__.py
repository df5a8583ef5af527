"""Grafana as code: the dashboards that provisioning loads are generated here.

``python -m grafana.dashboards`` (or ``./dev dashboards``) writes
``grafana/dashboards/*.json`` from the definitions in ``grafana/boards/``, with
thresholds read from ``rules/*.rules.yml``. See docs/dashboards.md.
"""

"""The demo: a simulated partner platform and a one-command local stack.

- ``python -m demo.platform`` runs the simulated platform (its database keeps
  moving, its health endpoint answers with variable latency);
- ``python -m demo scenario NAME`` makes something go wrong on purpose
  (``drain-energy``, ``slow-api``, ``fail-transactions``, ``attack-tickets``) or
  puts it right again (``recover``);
- ``python -m demo.stack`` (what ``./dev run`` runs) starts Redis, the ticket
  service, the exporter, the demo platform, Prometheus, Alertmanager, local
  notification sinks and, when installed, Grafana.

See docs/demo.md.
"""

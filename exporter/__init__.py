"""partnerwatch's Prometheus exporter and instrumentation library.

- ``python -m exporter --config FILE``: the exporter process (see
  docs/exporter.md): config in :mod:`exporter.config` and
  :mod:`exporter.schema`, collectors in :mod:`exporter.collectors`, run by
  :mod:`exporter.scheduler` and served by :mod:`exporter.scrape` and
  :mod:`exporter.service`; databases through their DB-API drivers in
  :mod:`exporter.databases` (URLs in :mod:`exporter.dburl`, ``:name``
  parameters in :mod:`exporter.sqltext`).
- :mod:`exporter.profiler`: ``@profile("operation")`` for any process.
"""

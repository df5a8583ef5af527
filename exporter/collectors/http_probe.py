"""HTTP probe of the platform API's health endpoints.

Each target is its own collector (``http_probe:<target>``), so one slow
endpoint does not delay the others. A probe succeeds when the response has
the expected status and, when ``body_regex`` is set, a body matching it.

Series (label ``target``): ``platform_api_probe_success``,
``platform_api_probe_duration_seconds``, ``platform_api_probe_http_status_code``
(0 when there was no response). A failed probe still publishes these (with
success 0), and also marks its collector failed in the ``exporter_collector_*``
self metrics.
"""
from __future__ import annotations

import re
import time

import requests
from prometheus_client.core import GaugeMetricFamily

from ..schema import ProbeTarget
from .base import CollectFailed, Collector

USER_AGENT = "partnerwatch-exporter"


def _families(target: str, success: bool, duration: float | None, status: int):
    ok = GaugeMetricFamily("platform_api_probe_success",
                           "1 when the last probe got the expected status (and body match), else 0.",
                           labels=["target"])
    ok.add_metric([target], 1.0 if success else 0.0)
    code = GaugeMetricFamily("platform_api_probe_http_status_code",
                             "HTTP status of the last probe (0 when no response).",
                             labels=["target"])
    code.add_metric([target], float(status))
    families = [ok, code]
    if duration is not None:
        took = GaugeMetricFamily("platform_api_probe_duration_seconds",
                                 "Duration of the last probe.", labels=["target"])
        took.add_metric([target], duration)
        families.append(took)
    return families


class HttpProbe(Collector):
    def __init__(self, target: str, config: ProbeTarget, **schedule):
        super().__init__(f"http_probe:{target}", **schedule)
        self.target = target
        self.config = config
        self.request_timeout = config.timeout or self.timeout
        self.body_regex = re.compile(config.body_regex) if config.body_regex else None
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def collect(self):
        start = time.perf_counter()
        try:
            # A fresh connection each time: the probe measures what a client sees.
            response = self.session.get(self.config.url, timeout=self.request_timeout,
                                        headers={"Connection": "close"})
            body = response.text
        except requests.RequestException as exc:
            duration = time.perf_counter() - start
            raise CollectFailed(f"{type(exc).__name__}: {exc}",
                                _families(self.target, False, duration, 0)) from None
        duration = time.perf_counter() - start
        status = response.status_code
        if status != self.config.expected_status:
            raise CollectFailed(f"status {status}, expected {self.config.expected_status}",
                                _families(self.target, False, duration, status))
        if self.body_regex is not None and not self.body_regex.search(body):
            raise CollectFailed(f"body does not match {self.body_regex.pattern!r}",
                                _families(self.target, False, duration, status))
        return _families(self.target, True, duration, status)

    def timeout_families(self):
        return _families(self.target, False, None, 0)

    def close(self) -> None:
        self.session.close()

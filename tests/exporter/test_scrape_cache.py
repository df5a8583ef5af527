"""/metrics keeps its encoded body until a collector run ends or it is a second old.

The WSGI app is called directly (``wsgiref.util.setup_testing_defaults``
fills in a GET request); a registry collector counts how often the registry
is encoded, and the body's age is read from a clock the test moves on.
"""

from __future__ import annotations

import gzip
from wsgiref.util import setup_testing_defaults

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector as RegistryCollector

from exporter.scheduler import Scheduler
from exporter.scrape import CachedCollector, EncodedMetrics
from tests.harness.exporter import Switch

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Encodings(RegistryCollector):
    """Counts the registry's encodings (each one collects every collector)."""

    def __init__(self):
        self.count = 0

    def collect(self):
        self.count += 1
        family = GaugeMetricFamily("test_encodings", "Encodings so far.")
        family.add_metric([], self.count)
        yield family


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup():
    switch = Switch("switch", value=1.0)
    scheduler = Scheduler([switch])
    scheduler.run_once(switch)
    registry = CollectorRegistry()
    registry.register(CachedCollector(scheduler))
    encodings = Encodings()
    registry.register(encodings)
    clock = Clock()
    app = EncodedMetrics(registry, lambda: scheduler.version, max_age=1.0, clock=clock)
    return switch, scheduler, encodings, clock, app


def get(
    app,
    accept: str | None = None,
    query: str = "",
    method: str = "GET",
    encoding: str | None = None,
) -> tuple[str, dict, bytes]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/metrics", "QUERY_STRING": query}
    if accept:
        environ["HTTP_ACCEPT"] = accept
    if encoding:
        environ["HTTP_ACCEPT_ENCODING"] = encoding
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers):
        answer.update(status=status, headers=dict(headers))

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def test_scrapes_between_runs_reuse_the_encoded_body():
    switch, scheduler, encodings, clock, app = setup()
    first = get(app)
    for _ in range(20):
        clock.now += 0.04  # twenty scrapes within 0.8 s
        assert get(app) == first
    assert encodings.count == 1
    status, headers, body = first
    assert status == "200 OK" and headers["Content-Length"] == str(len(body))
    assert b'switch_value{name="switch"} 1.0' in body

    # Each format is encoded once and kept on its own.
    status, headers, om = get(app, OPENMETRICS)
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.endswith(b"# EOF\n") and encodings.count == 2
    assert get(app, OPENMETRICS)[2] == om and get(app)[2] == body
    assert encodings.count == 2


def test_a_finished_run_is_served_at_once():
    switch, scheduler, encodings, clock, app = setup()
    get(app)
    switch.value = 5.0
    scheduler.run_once(switch)
    body = get(app)[2]
    assert b'switch_value{name="switch"} 5.0' in body
    assert b'exporter_collector_success{collector="switch"} 1.0' in body
    assert encodings.count == 2
    # A failed run changes the self metrics, which are part of the body too.
    switch.ok = False
    scheduler.run_once(switch)
    assert b'exporter_collector_errors_total{collector="switch"} 1.0' in get(app)[2]


def test_the_body_is_encoded_again_once_a_second_old():
    switch, scheduler, encodings, clock, app = setup()
    get(app)
    clock.now += 0.99
    get(app)
    assert encodings.count == 1
    clock.now += 0.01  # a second old: process figures, staleness move on
    assert b"test_encodings 2.0" in get(app)[2]


def test_gzip_filters_and_other_methods():
    switch, scheduler, encodings, clock, app = setup()
    plain = get(app)[2]
    status, headers, zipped = get(app, encoding="gzip, deflate")
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == plain
    assert get(app, encoding="gzip")[2] == zipped and encodings.count == 1

    # name[] filters and other methods are prometheus_client's to answer, as before.
    plain_app = make_wsgi_app(app.registry)
    for request in ({"query": "name[]=switch_value"}, {"method": "OPTIONS"}):
        assert get(app, **request)[::2] == get(plain_app, **request)[::2]
    status, headers, body = get(app, method="POST")
    assert status == "405 Method Not Allowed" and headers["Allow"] == "OPTIONS,GET"

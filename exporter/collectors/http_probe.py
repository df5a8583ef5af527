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

import base64
import http.client
import re
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import CollectFailed, Collector
from exporter.errors import describe_error
from exporter.schema import ProbeTarget

USER_AGENT = "partnerwatch-exporter"


def _families(target: str, success: bool, duration: float | None, status: int) -> list[Metric]:
    ok = GaugeMetricFamily(
        "platform_api_probe_success",
        "1 when the last probe got the expected status (and body match), else 0.",
        labels=["target"],
    )
    ok.add_metric([target], 1.0 if success else 0.0)
    code = GaugeMetricFamily(
        "platform_api_probe_http_status_code",
        "HTTP status of the last probe (0 when no response).",
        labels=["target"],
    )
    code.add_metric([target], float(status))
    families: list[Metric] = [ok, code]
    if duration is not None:
        took = GaugeMetricFamily(
            "platform_api_probe_duration_seconds", "Duration of the last probe.", labels=["target"]
        )
        took.add_metric([target], duration)
        families.append(took)
    return families


class HttpProbe(Collector):
    def __init__(self, target: str, config: ProbeTarget, **schedule: float):
        super().__init__(f"http_probe:{target}", **schedule)
        self.target = target
        self.config = config
        self.request_timeout = config.timeout or self.timeout
        self.body_regex = re.compile(config.body_regex) if config.body_regex else None
        self.url, self.authorization = _split_credentials(config.url)
        self.opener = _opener()

    def collect(self) -> list[Metric]:
        # urllib opens a fresh connection each time ("Connection: close"):
        # the probe measures what a client sees.
        request = urllib.request.Request(self.url, headers={"User-Agent": USER_AGENT})
        if self.authorization is not None:  # not sent on to where a redirect points
            request.add_unredirected_header("Authorization", self.authorization)
        start = time.perf_counter()
        try:
            status, body = _fetch(self.opener, request, self.request_timeout)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            duration = time.perf_counter() - start
            raise CollectFailed(
                _describe(exc), _families(self.target, False, duration, 0)
            ) from None
        duration = time.perf_counter() - start
        if status != self.config.expected_status:
            raise CollectFailed(
                f"status {status}, expected {self.config.expected_status}",
                _families(self.target, False, duration, status),
            )
        if self.body_regex is not None and not self.body_regex.search(body):
            raise CollectFailed(
                f"body does not match {self.body_regex.pattern!r}",
                _families(self.target, False, duration, status),
            )
        return _families(self.target, True, duration, status)

    def timeout_families(self) -> list[Metric]:
        return _families(self.target, False, None, 0)


def _opener() -> urllib.request.OpenerDirector:
    """HTTP and HTTPS only (certificates verified against the system's store or
    ``SSL_CERT_FILE``), proxies from the environment, redirects followed."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _fetch(
    opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float
) -> tuple[int, str]:
    """The status and decoded body of a GET, whatever the status."""
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:  # a status other than 2xx: still an answer
        response = exc
    with response:
        status = response.status if response.status is not None else response.code
        raw = response.read()
        charset = response.headers.get_content_charset() or "utf-8"
    try:
        return status, raw.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return status, raw.decode("utf-8", errors="replace")


def _split_credentials(url: str) -> tuple[str, str | None]:
    """``http://user:secret@host/path`` -> the URL without them and a Basic authorization."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return urlunsplit(parts._replace(netloc=hostport)), f"Basic {token}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return (
            describe_error(reason) if isinstance(reason, BaseException) else f"URLError: {reason}"
        )
    return describe_error(exc)

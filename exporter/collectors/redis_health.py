"""Redis health: ``platform_redis_up`` and ``platform_redis_ping_duration_seconds``.

The client does not retry: a PING that fails or times out is reported at
once as ``platform_redis_up 0`` (and a failed ``redis`` collector).
"""
from __future__ import annotations

import time

import redis
from prometheus_client.core import GaugeMetricFamily
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..schema import RedisConfig
from .base import CollectFailed, Collector


def _up(value: float) -> GaugeMetricFamily:
    up = GaugeMetricFamily("platform_redis_up", "1 when Redis answered PING.")
    up.add_metric([], value)
    return up


class RedisHealth(Collector):
    def __init__(self, config: RedisConfig, **schedule):
        super().__init__("redis", **schedule)
        self.client = redis.Redis.from_url(
            config.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0)

    def collect(self):
        start = time.perf_counter()
        try:
            self.client.ping()
        except redis.RedisError as exc:
            self.client.connection_pool.disconnect()
            raise CollectFailed(f"{type(exc).__name__}: {exc}", [_up(0.0)]) from None
        duration = time.perf_counter() - start
        took = GaugeMetricFamily("platform_redis_ping_duration_seconds", "Duration of the PING.")
        took.add_metric([], duration)
        return [_up(1.0), took]

    def timeout_families(self):
        return [_up(0.0)]

    def close(self) -> None:
        self.client.close()

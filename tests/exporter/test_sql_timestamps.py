"""SQL metric values: a timestamp (PostgreSQL's datetime, SQLite's text) is Unix seconds."""

from __future__ import annotations

import datetime as dt

import pytest

from exporter.collectors.base import CollectFailed
from exporter.collectors.sql_metrics import _number


def test_timestamps_become_unix_seconds():
    moment = dt.datetime(2024, 5, 1, 9, 0, 0)  # naive: UTC, as stored
    assert _number("m", moment) == 1714554000.0
    assert _number("m", moment.replace(tzinfo=dt.UTC)) == 1714554000.0
    assert _number("m", "2024-05-01 09:00:00.500000") == 1714554000.5
    assert _number("m", "2024-05-01T09:00:00") == 1714554000.0
    assert _number("m", "12.5") == 12.5
    with pytest.raises(CollectFailed, match="is not a number"):
        _number("m", "soon")

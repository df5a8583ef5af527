"""Configuration: the shipped file is valid, broken files are refused with located lines.

The CLI cases run the real ``python -m exporter`` and check its exit status
and its stderr, one ``location: problem`` line per problem.
"""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from exporter.config import ConfigError, load_config, validate
from exporter.schema import Config
from tests.harness.exporter import SHIPPED_CONFIG, run_cli

ENV = {
    "PLATFORM_DB_URL": "sqlite:////nonexistent/platform.db",
    "TICKETING_DB_URL": "postgresql://exporter@db.invalid/ticketing",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "PLATFORM_API_URL": "http://platform.invalid:8000",
}

VALID_QUERY = """
databases:
  platform:
    url: sqlite:///platform.db
queries:
  energy_pool:
    database: platform
    interval: 10s
    sql: SELECT name AS pool, available_units FROM energy_pools
    metrics:
      - name: platform_energy_pool_available_units
        help: Units available.
        value: available_units
        labels: [pool]
"""


def problems(text: str, environ: dict | None = None) -> list[str]:
    import yaml

    with pytest.raises(ConfigError) as info:
        validate(yaml.safe_load(textwrap.dedent(text)), environ or {})
    return info.value.lines()


# ------------------------------------------------------------------ via the CLI


def test_shipped_config_checks_and_summarises():
    result = run_cli("--config", SHIPPED_CONFIG, "--check-config", env=ENV)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "configuration OK" in out
    for collector in (
        "http_probe:platform_api",
        "database:platform",
        "database:ticketing",
        "redis",
        "query:energy_pool",
        "query:transactions",
        "query:active_partners",
        "query:support_tickets",
        "query:support_first_response_overdue",
        "query:support_outbox",
        "query:partner_webhook_queue",
    ):
        assert f"  {collector}: every " in out
    assert "platform (sqlite), ticketing (postgresql)" in out
    assert "db.invalid" not in out  # URLs (which may hold passwords) are not printed


def test_shipped_config_without_environment_names_each_variable():
    result = run_cli("--config", SHIPPED_CONFIG, "--check-config", unset=tuple(ENV))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "databases.platform.url: environment variable PLATFORM_DB_URL is not set",
        "databases.ticketing.url: environment variable TICKETING_DB_URL is not set",
        "collectors.http_probe.targets.platform_api.url: environment variable "
        "PLATFORM_API_URL is not set",
        "collectors.redis.url: environment variable REDIS_URL is not set",
    ]
    assert result.stdout == ""


CLI_CASES = {
    "missing keys": (
        """
        databases:
          platform: {}
        queries:
          energy_pool:
            interval: 10s
            metrics:
              - name: platform_energy_pool_available_units
                value: available_units
        """,
        [
            "databases.platform.url: required key is missing",
            "queries.energy_pool.database: required key is missing",
            "queries.energy_pool.sql: required key is missing",
            "queries.energy_pool.metrics[0].help: required key is missing",
        ],
    ),
    "wrong types": (
        """
        exporter:
          staleness: [1, 2]
        databases:
          platform:
            url: sqlite:///p.db
            pool_size: many
        collectors:
          redis:
            url: redis://127.0.0.1:6379/0
            enabled: maybe
            interval: soon
        queries:
          energy_pool:
            database: platform
            sql: SELECT 1 AS one
            metrics: 5
        """,
        [
            "exporter.staleness: must be a duration such as 15s, 500ms or 2m (got [1, 2])",
            "databases.platform.pool_size: must be a valid integer, unable to parse string as "
            "an integer (got 'many')",
            "collectors.redis.enabled: must be a valid boolean, unable to interpret input "
            "(got 'maybe')",
            "collectors.redis.interval: must be a duration such as 15s, 500ms or 2m (got 'soon')",
            "queries.energy_pool.metrics: must be a valid tuple (got 5)",
        ],
    ),
    "unknown collector and keys": (
        """
        collectors:
          foo: {interval: 10s}
          redis:
            url: redis://127.0.0.1:6379/0
            intervall: 10s
        extra_section: 1
        """,
        [
            "collectors.foo: unknown collector (known: database, http_probe, redis)",
            "collectors.redis.intervall: unknown key",
            "extra_section: unknown key",
        ],
    ),
    "bad intervals": (
        """
        exporter:
          staleness: 30s
        databases:
          platform: {url: "sqlite:///p.db"}
        collectors:
          redis: {url: "redis://127.0.0.1:6379/0", interval: 0}
          database: {interval: 10s, timeout: 20s}
        queries:
          energy_pool:
            database: platform
            interval: 1m
            timeout: -1
            sql: SELECT 1 AS one
            metrics: [{name: one, help: One., value: one}]
          slow_pool:
            database: platform
            interval: 1m
            sql: SELECT 1 AS one
            metrics: [{name: two, help: Two., value: one}]
        """,
        [
            "collectors.redis.interval: must be > 0 (got 0)",
            "queries.energy_pool.timeout: must be > 0 (got -1)",
        ],
    ),
}


@pytest.mark.parametrize("case", CLI_CASES, ids=list(CLI_CASES))
def test_cli_rejects_with_located_lines(case, write_config):
    text, expected = CLI_CASES[case]
    path = write_config(textwrap.dedent(text))
    result = run_cli("--config", path, "--check-config")
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert sorted(result.stderr.splitlines()) == sorted(expected)


def test_cli_rejects_intervals_that_cannot_work(write_config):
    # Schema-valid, but a timeout longer than its interval, or an interval that
    # reaches the staleness window, cannot run as configured.
    path = write_config(
        textwrap.dedent("""
        exporter:
          staleness: 30s
        databases:
          platform: {url: "sqlite:///p.db"}
        collectors:
          database: {interval: 10s, timeout: 20s}
        queries:
          energy_pool:
            database: platform
            interval: 1m
            sql: SELECT 1 AS one
            metrics: [{name: one, help: One., value: one}]
        """)
    )
    result = run_cli("--config", path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "collectors.database.timeout: must not exceed interval (20s > 10s)",
        "queries.energy_pool.interval: must be shorter than exporter.staleness (30s), "
        "or its series would go stale between runs",
    ]


def test_cli_rejects_unreadable_file(tmp_path):
    missing = tmp_path / "nope.yml"
    result = run_cli("--config", missing)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{missing}: cannot read: [Errno 2] No such file or directory: '{missing}'"
    ]

    result = run_cli("--config", tmp_path)  # a directory
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path}: cannot read: [Errno 21] Is a directory")


def test_cli_rejects_invalid_yaml(write_config):
    path = write_config("exporter:\n  staleness: 60s\nqueries:\n  a: [1, 2\n  b: 3\n")
    result = run_cli("--config", path)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{path}: invalid YAML at line 5: ")


# ------------------------------------------------------------- in-process checks


def test_shipped_config_loads_into_a_frozen_typed_config():
    config = load_config(SHIPPED_CONFIG, ENV)
    assert isinstance(config, Config)
    assert config.databases["platform"].url == ENV["PLATFORM_DB_URL"]
    assert (
        config.collectors.http_probe.targets["platform_api"].url
        == "http://platform.invalid:8000/healthz"
    )
    assert config.queries["active_partners"].params == {"since": 900.0}
    assert config.exporter.listen == "127.0.0.1:9701"  # ${EXPORTER_LISTEN:-...} default
    with pytest.raises(ValidationError, match="frozen"):
        config.exporter.staleness = 1


def test_environment_references():
    config = validate(
        {
            "exporter": {"listen": "${HOST}:${PORT:-9800}"},
            "databases": {"p": {"url": "sqlite:///${DIR}/p.db"}},
            "queries": {
                "q": {
                    "database": "p",
                    "sql": "SELECT '$$5' AS x, 1 AS one",
                    "metrics": [{"name": "one", "help": "One.", "value": "one"}],
                }
            },
        },
        {"HOST": "0.0.0.0", "DIR": "/srv"},
    )
    assert config.exporter.listen == "0.0.0.0:9800"
    assert config.databases["p"].url == "sqlite:////srv/p.db"
    assert config.queries["q"].sql.startswith("SELECT '$5'")


def test_duplicate_yaml_keys_are_refused(write_config):
    path = write_config("exporter:\n  staleness: 60s\n  staleness: 30s\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.lines() == [f"{path}: invalid YAML at line 3: duplicate key 'staleness'"]


def test_top_level_must_be_a_mapping(write_config):
    path = write_config("- a\n- b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.lines()[0].startswith(f"{path}: must be a mapping")


def test_cross_references_and_metric_rules():
    lines = problems("""
        databases:
          platform: {url: "sqlite:///p.db"}
          legacy: {url: "oracle+nodriver://x/y"}
        collectors:
          database: {databases: [platform, archive]}
          http_probe:
            targets:
              api: {url: "ftp://x", body_regex: "(unclosed"}
        queries:
          a:
            database: ticketing
            params: {now: 5m}
            sql: SELECT COUNT(*) AS n FROM t WHERE created_at > :since
            metrics:
              - {name: platform_transactions, type: counter, help: X., value: n}
              - {name: platform_db_up, help: X., value: n, labels: [n]}
          b:
            database: platform
            sql: SELECT 1 AS n
            metrics:
              - {name: platform_transactions, help: X., value: n, labels: [x, x]}
              - {name: bad-name, help: X., value: n}
              - {name: c, type: histogram, help: X., value: n}
        """)
    assert sorted(lines) == sorted(
        [
            "collectors.http_probe.targets.api.url: must be an http:// or https:// URL (got 'ftp://x')",
            "collectors.http_probe.targets.api.body_regex: invalid regular expression: "
            "missing ), unterminated subpattern at position 0",
            "queries.b.metrics[1].name: invalid name 'bad-name': must match "
            "^[a-zA-Z_:][a-zA-Z0-9_:]*$",
            "queries.b.metrics[2].type: must be one of 'gauge' or 'counter' (got 'histogram')",
        ]
    )
    # Cross checks run once the shape is valid.
    lines = problems("""
        databases:
          platform: {url: "sqlite:///p.db"}
          legacy: {url: "oracle+nodriver://x/y"}
          typo: {url: "platform.db"}
        collectors:
          database: {databases: [platform, archive]}
        queries:
          a:
            database: ticketing
            params: {now: 5m}
            sql: SELECT COUNT(*) AS n FROM t WHERE created_at > :since
            metrics:
              - {name: platform_transactions, type: counter, help: X., value: n}
              - {name: platform_db_up, help: X., value: n, labels: [n]}
          b:
            database: platform
            sql: SELECT 1 AS n
            metrics:
              - {name: platform_transactions, help: X., value: n, labels: [x, x]}
        """)
    assert sorted(lines) == sorted(
        [
            "collectors.database.databases[1]: unknown database 'archive' "
            "(defined: legacy, platform, typo)",
            "databases.typo.url: invalid database URL: expected dialect://user:password@host:port"
            "/database or sqlite:///path",
            "databases.legacy.url: unsupported database 'oracle+nodriver': the exporter reads "
            "PostgreSQL (postgresql://, through psycopg 3) and SQLite (sqlite:///path)",
            "queries.a.database: unknown database 'ticketing' (defined: legacy, platform, typo)",
            "queries.a.sql: parameter :since is neither :now nor defined under params",
            "queries.a.params.now: :now is built in",
            "queries.a.metrics[0].name: counter names must end in _total",
            "queries.a.metrics[1].name: platform_db_up is reserved for the built-in collectors",
            "queries.a.metrics[1].value: column 'n' is also a label",
            "queries.b.metrics[0].name: platform_transactions is already defined by "
            "queries.a.metrics[0]",
            "queries.b.metrics[0].labels: labels repeat",
        ]
    )


def test_missing_environment_variable_hides_follow_up_errors():
    lines = problems("""
        databases:
          platform: {url: "${PLATFORM_DB_URL}"}
        """)
    assert lines == ["databases.platform.url: environment variable PLATFORM_DB_URL is not set"]


def test_incremental_queries_and_series_budgets_are_checked():
    lines = problems("""
        databases:
          platform: {url: "sqlite:///p.db"}
        queries:
          a:
            database: platform
            incremental: {table: transactions, key: id, batch: 0}
            series_budget: {max_series: 0}
            sql: SELECT COUNT(*) AS n FROM new_rows
            metrics:
              - {name: a_total, type: counter, help: X., value: n}
          b:
            database: platform
            incremental: {table: "transactions; DROP TABLE x", key: id}
            sql: SELECT COUNT(*) AS n FROM new_rows
            metrics:
              - {name: b_total, type: counter, help: X., value: n}
        """)
    assert sorted(lines) == [
        "queries.a.incremental.batch: must be >= 1 (got 0)",
        "queries.a.series_budget.max_series: must be >= 1 (got 0)",
        "queries.b.incremental.table: invalid name 'transactions; DROP TABLE x': "
        "must match ^[A-Za-z_]\\w*(\\.[A-Za-z_]\\w*)?$",
    ]
    lines = problems("""
        databases:
          platform: {url: "sqlite:///p.db"}
        queries:
          a:
            database: platform
            incremental: {table: transactions, key: id}
            sql: SELECT COUNT(*) AS n FROM transactions
            metrics:
              - {name: a, help: X., value: n}
          c:
            database: platform
            incremental: {table: transactions, key: id, final: "status <> :done"}
            series_budget: {max_series: 10, group_by: [partner]}
            sql: SELECT status, COUNT(*) AS n FROM new_rows GROUP BY status
            metrics:
              - {name: c_total, type: counter, help: X., value: n, labels: [status]}
              - {name: exporter_query_x_total, type: counter, help: X., value: n}
        """)
    assert sorted(lines) == sorted(
        [
            "queries.a.metrics[0].type: an incremental query publishes counters: must be counter",
            "queries.a.sql: an incremental query reads its rows from new_rows",
            "queries.c.incremental.final: parameter :done is neither :now nor defined under params",
            "queries.c.series_budget.group_by: label 'partner' is not a label of c_total "
            "(metrics.0)",
            "queries.c.series_budget.group_by: label 'partner' is not a label of "
            "exporter_query_x_total (metrics.1)",
            "queries.c.metrics[1].name: exporter_query_x_total is reserved for the "
            "built-in collectors",
        ]
    )

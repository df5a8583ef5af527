"""The OpenAPI document (valid, covering every route), health probes and configuration."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from tests.harness import free_port
from tests.harness.app import create_test_app, ticketing_config
from tests.harness.assertions import assert_error
from ticketing.config import ConfigError, load_sections
from ticketing.db import db
from ticketing.desk.settings import check_core


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_openapi_document_is_valid_and_covers_every_route(app, client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    spec = r.json
    validate(spec)

    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("console.") or rule.endpoint == "api_docs.asset":
            continue  # the console's pages and Swagger UI's files are not API operations
        path = _openapi_path(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {rule.rule}")
    assert missing == []

    # The request schemas are the validating ones: strict, with enums and limits.
    schemas = spec["components"]["schemas"]
    create = schemas["TicketCreate"]
    assert create["additionalProperties"] is False
    assert set(create["required"]) == {"title", "description"}
    assert create["properties"]["priority"]["enum"] == ["low", "medium", "high", "critical"]
    assert create["properties"]["title"]["maxLength"] == 200
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    post = spec["paths"]["/api/v1/tickets"]["post"]
    assert {p["name"] for p in post["parameters"]} >= {"Idempotency-Key"}
    assert {"201", "200", "422", "default"} <= set(post["responses"])
    upload = spec["paths"]["/api/v1/tickets/{ticket_id}/attachments"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["responses"]["415"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    ticket_id = next(
        p
        for p in spec["paths"]["/api/v1/tickets/{ticket_id}"]["parameters"]
        if p["name"] == "ticket_id"
    )
    assert ticket_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    error = schemas["Error"]
    assert error["required"] == ["error"]
    assert client.get("/api/docs").status_code == 200


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok", "checks": {}}
    assert client.get("/readyz").json == {"status": "ok", "checks": {"database": "ok"}}


def test_readiness_fails_when_the_database_is_down(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_test_app(ticketing_config(url, tmp_path), migrate=False)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    error = assert_error(client.get("/readyz"), 503, "unavailable")
    assert error["details"]["checks"]["database"]
    with app.app_context():
        db.engine.dispose()


def test_shipped_config_is_valid_and_overrides_merge(tmp_path, monkeypatch):
    settings = check_core(load_sections())
    assert settings.sla.first_response["high"].total_seconds() == 2 * 3600
    override = tmp_path / "ticketing.yml"
    override.write_text("sla:\n  first_response:\n    high: 45m\n")
    settings = check_core(load_sections(override))
    assert settings.sla.first_response["high"].total_seconds() == 45 * 60
    assert settings.sla.first_response["low"].total_seconds() == 86400  # kept from the defaults

    # The app reads the file named by TICKETING_CONFIG.
    monkeypatch.setenv("TICKETING_CONFIG", str(override))
    app = create_test_app(
        ticketing_config(f"sqlite:///{tmp_path / 'x.db'}", tmp_path), migrate=False
    )
    assert app.config["TICKETING"]["sla"]["first_response"]["high"] == "45m"
    assert app.extensions["ticketing"].sla.first_response["high"].total_seconds() == 2700


def test_invalid_config_names_every_problem(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("""
classification:
  default_priority: whenever
  priority_rules:
    - keywords: []
      priority: high
  category_rules:
    gossip: [rumour]
sla:
  first_response: {critical: soon, high: 1h, medium: 0, low: 1d}
attachments:
  max_bytes: -1
  allowed_content_types: [text/plain, "not a type"]
api:
  colour: red
""")
    with pytest.raises(ConfigError) as info:
        check_core(load_sections(bad))
    problems = "\n".join(info.value.problems)
    for location in (
        "classification.default_priority",
        "classification.priority_rules[0].keywords",
        "classification.category_rules.gossip",
        "sla.first_response.critical",
        "sla.first_response.medium",
        "attachments.max_bytes",
        "attachments.allowed_content_types[1]",
        "api.colour",
    ):
        assert f"{location}:" in problems, problems
    with pytest.raises(ConfigError):
        create_test_app({"TESTING": True, "TICKETING_CONFIG": str(bad)}, migrate=False)
    bad.write_text("sla: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_sections(bad)


@pytest.mark.parametrize("root", ["/", "/api/v1"])
def test_the_roots_point_to_the_console_the_api_and_its_docs(client, root):
    answer = client.get(root)
    assert answer.status_code == 200
    pointers = answer.json
    assert set(pointers) == {"service", "console", "api", "docs", "openapi"}
    for name in ("console", "docs", "openapi"):
        assert client.get(pointers[name]).status_code in (200, 302, 303), name

"""The ``status`` section: defaults, and every problem named by its location."""

from __future__ import annotations

import pytest

from ticketing.config import check_config, load_sections
from ticketing.status.settings import StatusConfigError, load_settings


def test_the_shipped_section_is_valid_and_lists_the_components():
    checked = check_config(load_sections(), environ={})
    status = checked["status"]
    assert [c.id for c in status.components] == ["api", "transactions", "energy-pool", "support"]
    assert status.auto_publish == () and not status.email.enabled
    assert status.component_for({"component": "api", "alertname": "X"}).name == "Platform API"
    assert status.component_for({"component": "nowhere"}) is None


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            {"components": [{"id": "api", "name": "A"}, {"id": "api", "name": "B"}]},
            "status.components[1].id: must be unique (api is listed twice)",
        ),
        ({"components": [{"id": "Bad Id", "name": "A"}]}, "status.components[0].id: must be 1-40"),
        ({"auto_publish": ["urgent"]}, "status.auto_publish[0]: must be one of critical"),
        ({"severity_states": {"critical": "on_fire"}}, "status.severity_states.critical"),
        ({"email": {"smtp_server": "mailpit"}}, "status.email.smtp_server: must be host:port"),
        ({"history_days": 0}, "status.history_days: must be an integer >= 1"),
        (
            {"receiver_token_file": "/nonexistent/token"},
            "status.receiver_token_file: cannot be read",
        ),
        ({"colour": "green"}, "status.colour: unknown setting"),
    ],
)
def test_problems_are_located(section, problem):
    with pytest.raises(StatusConfigError) as caught:
        load_settings(section, environ={})
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_null_settings_fall_back_to_the_environment(tmp_path):
    token = tmp_path / "token"
    token.write_text("a-status-receiver-token-0123456789\n")
    settings = load_settings(
        {}, environ={"STATUS_SMTP_SERVER": "mail:25", "STATUS_RECEIVER_TOKEN_FILE": str(token)}
    )
    assert settings.email.smtp_server == "mail:25" and settings.email.enabled
    assert settings.receiver_token == "a-status-receiver-token-0123456789"

"""The partner webhook API: register, list, update, disable, delete; the URL guard; isolation."""

from __future__ import annotations

import pytest

from tests.harness.seed import partners
from tests.harness.webhooks import register

PUBLIC = "https://93.184.216.34/partnerwatch"  # a public address literal: no DNS needed


def test_register_shows_the_secret_once_and_lists_without_it(make_app):
    app = make_app(require_https=True, allowed_networks=[])
    keys = partners(app)
    client = app.test_client()
    created = register(app, keys.a, PUBLIC, events=["alert.firing", "alert.resolved"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["events"] == ["alert.firing", "alert.resolved"] and created["enabled"]

    listed = client.get("/api/v1/webhooks", headers={"X-API-Key": keys.a}).json
    assert listed["next_cursor"] is None
    assert [e["id"] for e in listed["items"]] == [created["id"]]
    assert "secret" not in listed["items"][0]
    one = client.get(f"/api/v1/webhooks/{created['id']}", headers={"X-API-Key": keys.a}).json
    assert "secret" not in one and one["url"] == PUBLIC

    default = register(app, keys.a, PUBLIC + "/all")
    assert set(default["events"]) == {
        "alert.firing",
        "alert.resolved",
        "ticket.status_changed",
        "ticket.staff_replied",
        "endpoint.disabled",
        "incident.created",
        "incident.updated",
        "incident.resolved",
        "maintenance.scheduled",
        "maintenance.started",
        "maintenance.completed",
    }


def test_update_disable_enable_delete(make_app):
    app = make_app(require_https=True, allowed_networks=[])
    keys = partners(app)
    client = app.test_client()
    headers = {"X-API-Key": keys.a}
    endpoint = register(app, keys.a, PUBLIC)
    path = f"/api/v1/webhooks/{endpoint['id']}"

    changed = client.patch(
        path, json={"events": ["ticket.status_changed"], "description": "ops"}, headers=headers
    )
    assert changed.status_code == 200 and changed.json["events"] == ["ticket.status_changed"]
    disabled = client.patch(path, json={"enabled": False}, headers=headers)
    assert disabled.json["enabled"] is False
    ping = client.post(path + "/ping", headers=headers)
    assert ping.status_code == 409 and ping.json["error"]["code"] == "endpoint_disabled"
    assert client.patch(path, json={"enabled": True}, headers=headers).json["enabled"] is True

    assert client.delete(path, headers=headers).status_code == 204
    assert client.get(path, headers=headers).status_code == 404
    assert client.get("/api/v1/webhooks", headers=headers).json == {
        "items": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://172.16.5.5/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://[::ffff:127.0.0.1]/hook",
    ],
)
def test_non_public_addresses_are_refused_with_a_json_422(make_app, url):
    app = make_app(require_https=True, allowed_networks=[])
    keys = partners(app)
    response = app.test_client().post(
        "/api/v1/webhooks", json={"url": url}, headers={"X-API-Key": keys.a}
    )
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "unsafe_url" and "non-public" in error["message"]
    assert error["details"]["fields"]["json"]["url"]


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://93.184.216.34/hook", "https"),
        ("ftp://93.184.216.34/", "https"),
        ("https://user:pw@93.184.216.34/", "password"),
        ("https:///nohost", "host"),
        ("https://no-such-host.invalid/", "resolved"),
        ("https://93.184.216.34:99999/", "valid"),
    ],
)
def test_bad_urls_are_refused(make_app, url, problem):
    app = make_app(require_https=True, allowed_networks=[])
    keys = partners(app)
    response = app.test_client().post(
        "/api/v1/webhooks", json={"url": url}, headers={"X-API-Key": keys.a}
    )
    assert response.status_code == 422 and problem in response.json["error"]["message"]


def test_update_to_a_private_url_is_refused_and_changes_nothing(make_app):
    app = make_app(require_https=True, allowed_networks=[])
    keys = partners(app)
    endpoint = register(app, keys.a, PUBLIC)
    client = app.test_client()
    response = client.patch(
        f"/api/v1/webhooks/{endpoint['id']}",
        json={"url": "https://10.0.0.1/"},
        headers={"X-API-Key": keys.a},
    )
    assert response.status_code == 422
    assert (
        client.get(f"/api/v1/webhooks/{endpoint['id']}", headers={"X-API-Key": keys.a}).json["url"]
        == PUBLIC
    )


def test_the_allowlist_lets_a_private_network_through(make_app):
    app = make_app(require_https=True, allowed_networks=["10.20.0.0/16"])
    keys = partners(app)
    assert register(app, keys.a, "https://10.20.1.2/hook")["url"] == "https://10.20.1.2/hook"


def test_another_partners_endpoint_is_not_found(make_app):
    app = make_app(require_https=True, allowed_networks=[])
    keys = partners(app)
    endpoint = register(app, keys.a, PUBLIC)
    client = app.test_client()
    path = f"/api/v1/webhooks/{endpoint['id']}"
    for method, extra in (
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "/ping"),
        ("get", "/deliveries"),
    ):
        kwargs = {"json": {"enabled": False}} if method == "patch" else {}
        response = getattr(client, method)(path + extra, headers={"X-API-Key": keys.b}, **kwargs)
        assert response.status_code == 404, (method, extra, response.json)
        assert response.json["error"]["code"] == "not_found"
    assert client.get("/api/v1/webhooks", headers={"X-API-Key": keys.b}).json["items"] == []
    assert client.get(path, headers={"X-API-Key": keys.a}).json["enabled"] is True
    # Staff keys are not partner keys.
    assert client.get("/api/v1/webhooks", headers={"X-API-Key": keys.staff}).status_code == 403
    assert client.get("/api/v1/webhooks").status_code == 401


def test_invalid_input_is_a_422_and_the_endpoint_limit_a_409(make_app):
    app = make_app(require_https=True, allowed_networks=[], max_endpoints=2)
    keys = partners(app)
    client = app.test_client()
    headers = {"X-API-Key": keys.a}
    for body in (
        {"url": PUBLIC, "events": ["nope"]},
        {"url": PUBLIC, "events": []},
        {"url": PUBLIC, "extra": 1},
        {},
        {"url": 5},
    ):
        response = client.post("/api/v1/webhooks", json=body, headers=headers)
        assert response.status_code == 422, (body, response.json)
    register(app, keys.a, PUBLIC)
    register(app, keys.a, PUBLIC + "/2")
    response = client.post("/api/v1/webhooks", json={"url": PUBLIC + "/3"}, headers=headers)
    assert response.status_code == 409 and response.json["error"]["code"] == "too_many_endpoints"


def test_the_endpoint_list_is_a_page_like_every_list(make_app):
    """``{items, next_cursor}``, oldest first, paged with a signed cursor that
    belongs to the partner's list."""
    app = make_app()
    keys = partners(app)
    client = app.test_client()
    made = [register(app, keys.a, f"{PUBLIC}/{n}")["id"] for n in range(3)]
    walked, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/webhooks", headers={"X-API-Key": keys.a}, query_string=query)
        assert page.status_code == 200 and len(page.json["items"]) <= 2, page.json
        walked += [e["id"] for e in page.json["items"]]
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
        foreign = client.get(
            "/api/v1/webhooks", headers={"X-API-Key": keys.b}, query_string={"cursor": cursor}
        )
        assert foreign.status_code == 400 and foreign.json["error"]["code"] == "invalid_cursor"
    assert walked == made
    bad = client.get("/api/v1/webhooks", headers={"X-API-Key": keys.a}, query_string={"limit": 0})
    assert bad.status_code == 422 and "limit" in str(bad.json["error"])

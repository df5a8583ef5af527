"""The sign-in page's ``next``, on SQLite and PostgreSQL: anything but a plain path under
/console/ is ignored (the queue instead), never a server error nor a redirect elsewhere."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.harness.console import csrf_token, signed_in
from ticketing.console.guard import local_path

QUEUE = "/console/"

#: (name, ``next`` as the server receives it)
IGNORED = [
    ("CR LF", "/console/\r\nSet-Cookie: stolen=1"),
    ("LF", "/console/\nLocation: https://evil.example"),
    ("CR", "/console/\rx"),
    ("%0d%0a kept encoded", "/console/%0d%0aSet-Cookie:%20stolen=1"),
    ("%0D%0A upper case", "/console/%0D%0ALocation:https://evil.example"),
    ("tab", "/console/\tx"),
    ("NUL", "/console/\x00x"),
    ("DEL", "/console/\x7f"),
    ("backslash", "/console\\..\\evil"),
    ("//evil", "//evil.example/console/"),
    ("/\\evil", "/\\evil.example"),
    ("\\\\evil", "\\\\evil.example"),
    ("https://evil", "https://evil.example/console/"),
    ("scheme-relative with a path", "//evil.example"),
    ("javascript:", "javascript:alert(document.cookie)"),
    ("JaVaScRiPt with a tab", "java\tscript:alert(1)"),
    ("data:", "data:text/html,<script>alert(1)</script>"),
    ("very long", "/console/" + "a" * 10_000),
    ("non-ASCII", "/console/tickets/é"),
    ("non-ASCII encoded", "/console/%C3%A9"),
    ("fullwidth solidus", "／evil.example"),
    ("outside the console", "/api/v1/staff/tickets"),
    ("console prefix only", "/consoleevil"),
    ("dot segments", "/console/../api/v1/tickets"),
    ("encoded dot segments", "/console/%2e%2e/api"),
    ("encoded //", "/console/%2F%2Fevil.example"),
    ("double slash inside", "/console//evil.example"),
    ("space", "/console/ x"),
    ("empty", ""),
]
KEPT = [
    "/console/",
    "/console/tickets/7",
    "/console/?status=open&priority=high",
    "/console/security",
]


def test_local_path_ignores_every_variant():
    for name, target in IGNORED:
        assert local_path(target) is None, name
    for target in KEPT:
        assert local_path(target) == target
    for odd in (None, 7, b"/console/", ["/console/"]):
        assert local_path(odd) is None


def _blocked(response) -> bool:
    """Refused by the security monitor before the view (a NUL byte is blocked): a 400 page."""
    return response.status_code == 400 and "refused" in response.text.lower()


def _lands_on_queue(response, name: str) -> None:
    assert response.status_code < 500, (name, response.status_code)
    if _blocked(response):
        return
    assert response.status_code in (302, 303), (name, response.status_code, response.text[:300])
    assert response.location == QUEUE, (name, response.location)


def test_signing_in_with_a_bad_next_goes_to_the_queue(console_app, make):
    agent = make.staff("agent")
    for name, target in IGNORED:
        client = console_app.test_client()
        page = client.get("/console/login", query_string={"next": target})
        assert page.status_code == 200 or _blocked(page), (name, page.status_code)
        assert 'name="next"' not in page.text, name
        response = client.post(
            "/console/login",
            data={"api_key": agent.key, "csrf_token": csrf_token(client), "next": target},
        )
        _lands_on_queue(response, name)
        # Signed in, the sign-in page sends on at once: the same check.
        _lands_on_queue(client.get("/console/login", query_string={"next": target}), name)


def test_next_decoded_by_the_server_into_control_characters(console_app, make):
    """``%0d%0a`` in the raw query string reaches the view as CR LF."""
    agent = make.staff("agent")
    client = console_app.test_client()
    signed_in(client, agent)
    for raw in ("%0d%0aSet-Cookie:%20x=1", "/console/%0d%0aX:%20y", "/console/%00", "%09/evil"):
        response = client.get("/console/login?next=" + raw)
        _lands_on_queue(response, raw)
        for name, value in response.headers.items():
            assert "\r" not in value and "\n" not in value, (raw, name)
            assert not value.startswith("x=1"), (raw, name)


def test_good_next_is_kept(console_app, make):
    agent = make.staff("agent")
    for target in KEPT:
        client = console_app.test_client()
        client.get("/console/login", query_string={"next": target})
        response = client.post(
            "/console/login",
            data={"api_key": agent.key, "csrf_token": csrf_token(client), "next": target},
        )
        assert response.status_code == 303 and response.location == target


def test_pages_with_odd_paths_send_to_sign_in_without_error(console_app):
    client = console_app.test_client()
    for path in (
        "/console/%0d%0aX:%20y",
        "/console/tickets/%C3%A9",
        "/console/%5Cevil",
        "/console/?q=%0a",
    ):
        response = client.get(path)
        assert response.status_code in (302, 404), (path, response.status_code)
        if response.status_code == 302:
            assert response.location.startswith("/console/login")
            assert "\n" not in response.location and "\r" not in response.location
    # The page a signed-out visitor asked for is offered back after sign-in.
    response = client.get("/console/tickets/7?tab=audit")
    assert parse_qs(urlsplit(response.location).query) == {"next": ["/console/tickets/7?tab=audit"]}

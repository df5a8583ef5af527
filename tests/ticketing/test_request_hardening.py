"""What the security review found in request handling, each as a class of inputs:

- every JSON route refuses a non-empty body that is not valid JSON with 400
  ``invalid_json``, whether the view reads a body or not (close, reopen, ping);
- ids in paths and query strings are ASCII digits only (``１２`` is not 12);
- an empty or unknown filter value is a 422, not a filter that matches nothing;
- ``PATCH {}`` is refused (422) and the document says so (``minProperties: 1``);
- the control-character rule of text fields is in the document (``pattern``) and
  agrees with what the service refuses.
"""

from __future__ import annotations

import re

import pytest

from ticketing.db import db
from ticketing.models import Ticket
from ticketing.webhooks.models import WebhookEndpoint

#: Bodies sent as application/json that are not JSON.
MALFORMED = [
    ("truncated object", b'{"a": '),
    ("bare word", b"hello"),
    ("single quotes", b"{'a': 1}"),
    ("trailing comma", b'{"a": 1,}'),
    ("whitespace only", b"   "),
    ("not UTF-8", b'{"a": "\xff"}'),
    ("nested too deeply", b"[" * 50_000),  # under api.max_json_bytes
]


@pytest.fixture
def world(app, client, make):
    acme = make.partner("Acme")
    admin = make.staff("admin")
    ticket = make.ticket(acme)
    with app.app_context():
        endpoint = WebhookEndpoint(
            partner_id=acme.id,
            url="https://hooks.example.com/pw",
            events=["ticket.created"],
            secret="whsec_test",
        )
        db.session.add(endpoint)
        db.session.commit()
        endpoint_id = endpoint.id
    return {"acme": acme, "admin": admin, "ticket": ticket["id"], "endpoint": endpoint_id}


def _routes(world) -> list[tuple[str, str, dict]]:
    t, e = world["ticket"], world["endpoint"]
    partner, staff = world["acme"].headers, world["admin"].headers
    return [
        # Views without a body schema: the body used to be ignored.
        ("POST", f"/api/v1/tickets/{t}/close", partner),
        ("POST", f"/api/v1/tickets/{t}/reopen", partner),
        ("POST", f"/api/v1/webhooks/{e}/ping", partner),
        ("DELETE", f"/api/v1/webhooks/{e}", partner),
        # Views with one: the same answer.
        ("POST", "/api/v1/tickets", partner),
        ("POST", f"/api/v1/tickets/{t}/messages", partner),
        ("PATCH", f"/api/v1/staff/tickets/{t}", staff),
        ("POST", f"/api/v1/staff/tickets/{t}/status", staff),
        ("POST", f"/api/v1/staff/tickets/{t}/assign", staff),
        ("POST", f"/api/v1/staff/tickets/{t}/messages", staff),
    ]


def test_a_malformed_json_body_is_400_invalid_json_on_every_json_route(app, client, world):
    for method, path, headers in _routes(world):
        for name, body in MALFORMED:
            response = client.open(
                path, method=method, data=body, content_type="application/json", headers=headers
            )
            assert response.status_code == 400, (method, path, name, response.text[:300])
            error = response.get_json()["error"]
            assert error["code"] == "invalid_json", (method, path, name, error)
    with app.app_context():  # nothing was done: the ticket is still open, the endpoint there
        assert db.session.get(Ticket, world["ticket"]).status == "open"
        assert db.session.get(WebhookEndpoint, world["endpoint"]) is not None


def test_body_less_routes_still_take_no_body_or_valid_json(client, world):
    t = world["ticket"]
    headers = world["acme"].headers
    assert client.post(f"/api/v1/tickets/{t}/close", headers=headers).status_code == 200
    response = client.post(f"/api/v1/tickets/{t}/reopen", json={}, headers=headers)
    assert response.status_code == 200, response.text
    response = client.post(
        f"/api/v1/tickets/{t}/close", data="not json", content_type="text/plain", headers=headers
    )
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"


#: Ids that Python's int() reads but are not ASCII digits.
NOT_ASCII_IDS = [
    "\uff11\uff12",  # fullwidth 12
    "\u0661\u0662",  # Arabic-Indic 12
    "\u0967\u0968",  # Devanagari 12
    "1\uff12",  # mixed
    "\U0001d7d9\U0001d7da",  # mathematical double-struck 12
]


def test_path_ids_are_ascii_digits_only(client, world):
    t = world["ticket"]
    assert t < 10
    fullwidth = chr(0xFF10 + t)
    headers = world["acme"].headers
    assert client.get(f"/api/v1/tickets/{t}", headers=headers).status_code == 200
    for raw in [fullwidth, "\u0660" + str(t), *NOT_ASCII_IDS]:
        for path in (
            f"/api/v1/tickets/{raw}",
            f"/api/v1/tickets/{raw}/messages",
            f"/api/v1/webhooks/{raw}/deliveries",
        ):
            response = client.get(path, headers=headers)
            assert response.status_code == 404, (path, response.status_code, response.text)
            assert response.get_json()["error"]["code"] == "not_found"
        staff = client.get(f"/api/v1/staff/tickets/{raw}", headers=world["admin"].headers)
        assert staff.status_code == 404, (raw, staff.text)


#: Query-string numbers that Python's int() reads but a URL does not carry.
NOT_QUERY_NUMBERS = [*NOT_ASCII_IDS, "+1", " 1", "1 ", "1_0", "0x1", "1e3", "", "99999999999"]


def test_query_ids_and_numbers_are_ascii_digits_only(client, world):
    admin = world["admin"].headers
    for value in NOT_QUERY_NUMBERS:
        for name in ("partner_id", "limit"):
            response = client.get(
                "/api/v1/staff/tickets", query_string={name: value}, headers=admin
            )
            assert response.status_code == 422, (name, value, response.text)
            fields = response.get_json()["error"]["details"]["fields"]["query"]
            assert name in fields, (name, value, fields)
        response = client.get(
            "/api/v1/tickets", query_string={"limit": value}, headers=world["acme"].headers
        )
        assert response.status_code == 422, (value, response.text)
    ok = client.get("/api/v1/staff/tickets?partner_id=1&limit=5", headers=admin)
    assert ok.status_code == 200, ok.text


#: Filter values that are empty or not one of the known ones.
BAD_FILTERS = [
    ("status", ""),
    ("status", ","),
    ("status", "open,"),
    ("status", "opened"),
    ("priority", ""),
    ("priority", "urgent"),
    ("category", ""),
    ("category", "API"),
]

STAFF_ONLY_BAD_FILTERS = [
    ("assignee", ""),
    ("assignee", "someone"),
    ("order", ""),
    ("order", "random"),
    ("overdue", ""),
    ("overdue", "1"),
    ("overdue", "yes"),
    ("needs_triage", ""),
    ("needs_triage", "True"),
    ("partner_id", ""),
]


def test_empty_or_unknown_filter_values_are_422(client, world):
    cases = [("partner", name, value) for name, value in BAD_FILTERS]
    cases += [("staff", name, value) for name, value in BAD_FILTERS + STAFF_ONLY_BAD_FILTERS]
    for who, name, value in cases:
        path = "/api/v1/tickets" if who == "partner" else "/api/v1/staff/tickets"
        headers = world["acme" if who == "partner" else "admin"].headers
        response = client.get(path, query_string={name: value}, headers=headers)
        assert response.status_code == 422, (who, name, value, response.text)
        error = response.get_json()["error"]
        assert error["code"] == "validation_error", (who, name, value, error)
        assert name in error["details"]["fields"]["query"], (who, name, value, error)


def test_known_filter_values_still_filter(client, world):
    headers = world["admin"].headers
    for query in (
        {"status": "open"},
        {"status": "open,closed"},
        {"overdue": "false"},
        {"needs_triage": "true"},
        {"assignee": "none"},
    ):
        response = client.get("/api/v1/staff/tickets", query_string=query, headers=headers)
        assert response.status_code == 200, (query, response.text)


def test_patch_without_fields_is_422_and_documented(client, world):
    t = world["ticket"]
    response = client.patch(f"/api/v1/staff/tickets/{t}", json={}, headers=world["admin"].headers)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and "fields" in error["details"]
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/v1/staff/tickets/{ticket_id}"]["patch"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["minProperties"] == 1


def _text_fields(document):
    for name, schema in document["components"]["schemas"].items():
        for field, prop in (schema.get("properties") or {}).items():
            if prop.get("type") == "string" and "minLength" in prop and "maxLength" in prop:
                yield name, field, prop


def test_text_fields_document_the_control_character_rule(client, world):
    document = client.get("/api/openapi.json").get_json()
    found = {(name, field): prop["pattern"] for name, field, prop in _text_fields(document)}
    for must in [
        ("TicketCreate", "title"),
        ("TicketCreate", "description"),
        ("PartnerMessageCreate", "body"),
        ("StaffMessageCreate", "body"),
    ]:
        assert must in found, (must, sorted(found))
    title, description = found[("TicketCreate", "title")], found[("TicketCreate", "description")]
    # The documented pattern and the service agree, character by character.
    for code in [*range(0x20), 0x7F]:
        char = chr(code)
        for pattern, field, single_line in (
            (title, "title", True),
            (description, "description", False),
        ):
            documented_ok = re.fullmatch(pattern, f"a{char}b") is not None
            allowed_by_service = not single_line and char in "\t\n\r"
            assert documented_ok == allowed_by_service, (field, hex(code))
    assert re.fullmatch(title, "Ünïcode title, tabs aside") is not None
    headers = world["acme"].headers
    for char in ("\x00", "\x1b", "\x7f", "\t"):
        response = client.post(
            "/api/v1/tickets", json={"title": f"a{char}b", "description": "x"}, headers=headers
        )
        assert response.status_code == 422, (repr(char), response.text)


#: Numbers in ASCII digits that no 32-bit id column holds; PostgreSQL refuses them in a
#: comparison ("integer out of range"), so they must be refused before any query.
OUT_OF_RANGE_IDS = ["0", "2147483648", "3000000000", "9999999999", "00000000000"]


def _query_id_parameters(client):
    """Every (path, parameter) of a GET operation whose query parameter names a row: an
    integer up to 2**31-1, or a text whose pattern carries a staff id (``assignee``)."""
    document = client.get("/api/openapi.json").get_json()
    found = []
    for path, operations in document["paths"].items():
        get = operations.get("get")
        if get is None or "{" in path:
            continue
        for parameter in get.get("parameters", []):
            schema = parameter.get("schema", {})
            if parameter["in"] != "query":
                continue
            if schema.get("maximum") == 2**31 - 1 or "[0-9]{0,9}" in schema.get("pattern", ""):
                found.append((path, parameter["name"]))
    return found


def test_every_query_id_out_of_range_is_422_on_both_databases(client, world):
    """An id the column cannot hold is a 422 naming the parameter on every id-carrying query
    parameter the document lists (found by walking it, so a new one is covered too), on
    SQLite and PostgreSQL alike, never a 500 from the database."""
    parameters = _query_id_parameters(client)
    names = {name for _path, name in parameters}
    assert {"partner_id", "incident_id", "assignee"} <= names, parameters
    for path, name in parameters:
        headers = world["admin" if "/staff/" in path else "acme"].headers
        for value in OUT_OF_RANGE_IDS:
            response = client.get(path, query_string={name: value}, headers=headers)
            assert response.status_code == 422, (path, name, value, response.text)
            fields = response.get_json()["error"]["details"]["fields"]["query"]
            assert name in fields, (path, name, value, fields)
        largest = client.get(path, query_string={name: str(2**31 - 1)}, headers=headers)
        assert largest.status_code == 200, (path, name, largest.text)


def test_out_of_range_path_ids_are_404_on_both_databases(client, world):
    for raw in OUT_OF_RANGE_IDS[1:]:
        for path, who in (
            (f"/api/v1/tickets/{raw}", "acme"),
            (f"/api/v1/webhooks/{raw}/deliveries", "acme"),
            (f"/api/v1/staff/tickets/{raw}", "admin"),
            (f"/api/v1/staff/incidents/{raw}/suggestions", "admin"),
        ):
            response = client.get(path, headers=world[who].headers)
            assert response.status_code == 404, (path, response.status_code, response.text)

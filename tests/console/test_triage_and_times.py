"""The console through Flask's test client, on SQLite and on PostgreSQL: triage of
low-confidence tickets, one time format on every page, the narrow layout's labels,
files with the same name told apart."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html.parser import HTMLParser

from tests.harness.console import signed_in
from ticketing.db import db
from ticketing.models import Ticket

#: The one way the console shows a point in time.
ONE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
#: Anything else that reads as a date, a clock time or a relative time.
OTHER_FORMATS = re.compile(
    r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|\b\d{1,2}:\d{2}\b|\bago\b|just now|yesterday"
    r"|\b(?:AM|PM)\b|\b(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d",
    re.IGNORECASE,
)


class PageText(HTMLParser):
    """A page's ``<time>`` elements, its other visible text, and its text attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self.attributes: list[str] = []
        self._time: tuple[dict[str, str | None], list[str]] | None = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        self.attributes += [v for k, v in attrs if k in ("title", "aria-label", "alt") and v]
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "time":
            self._time = (found, [])

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag == "time" and self._time is not None:
            self.times.append((self._time[0], "".join(self._time[1]).strip()))
            self._time = None

    def handle_data(self, data):
        if self._skip:
            return
        (self._time[1] if self._time is not None else self.text).append(data)


def assert_one_time_format(html: str, where: str) -> int:
    """Every time on the page is a ``<time>`` in the one format, matching its ``datetime``;
    no other date, clock or relative time is shown anywhere. Returns how many times."""
    page = PageText()
    page.feed(html)
    for attrs, text in page.times:
        assert ONE_FORMAT.fullmatch(text), (where, text)
        moment = datetime.fromisoformat((attrs.get("datetime") or "").removesuffix("Z"))
        assert moment.strftime("%Y-%m-%d %H:%M UTC") == text, (where, attrs, text)
    rest = " ".join(page.text)
    assert not OTHER_FORMATS.search(rest), (where, OTHER_FORMATS.search(rest), rest[:2000])
    for value in page.attributes:
        assert not OTHER_FORMATS.search(ONE_FORMAT.sub("", value)), (where, value)
    return len(page.times)


def _mark_for_triage(app, ticket_id: int, confidence: float) -> None:
    with app.app_context():
        ticket = db.session.get(Ticket, ticket_id)
        ticket.needs_triage, ticket.category_confidence = True, confidence
        db.session.commit()


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-ticket-id="(\d+)"', html)]


def test_low_confidence_tickets_are_marked_filtered_and_triaged(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    vague = make.ticket(acme, title="Something is off", description="Please look.")["id"]
    other = make.ticket(acme, title="Also unclear", description="Numbers look odd.")["id"]
    sure = make.ticket(acme, title="Invoice missing", description="Refund the charge.")["id"]
    _mark_for_triage(console_app, vague, 0.31)
    _mark_for_triage(console_app, other, 0.22)
    token = signed_in(client, agent)

    # The queue marks them, counts them and filters by them.
    queue = client.get("/console/").text
    found = re.findall(r'<tr class="([^"]*)" data-ticket-id="(\d+)"', queue)
    rows = {int(i): classes for classes, i in found}
    assert "needs-triage" in rows[vague] and "needs-triage" in rows[other]
    assert "needs-triage" not in rows[sure]
    assert len(rows) == 3
    assert queue.count('<span class="badge triage"') == 2
    assert re.search(r'id="triage-count"><strong>2</strong> need triage', queue)
    assert sorted(_ids(client.get("/console/?triage=needed").text)) == [vague, other]
    assert _ids(client.get("/console/?triage=done").text) == [sure]
    assert 'value="needed" selected' in client.get("/console/?triage=needed").text
    bad = client.get("/console/?triage=maybe")
    assert bad.status_code == 400 and "needs_triage" in bad.text

    # The ticket page says so, with the confidence, and the form confirms the category.
    page = client.get(f"/console/tickets/{vague}").text
    assert 'id="triage-note"' in page and "31 % confidence" in page
    assert "Confirm category and save" in page
    assert 'id="triage-note"' not in client.get(f"/console/tickets/{sure}").text
    category = client.get(f"/api/v1/staff/tickets/{vague}", headers=agent.headers).json["category"]

    # Confirming the same category ends the triage (as PATCH in the staff API does) ...
    answer = client.post(
        f"/console/tickets/{vague}/triage",
        data={"priority": "medium", "category": category, "csrf_token": token},
    )
    assert answer.status_code == 303
    page = client.get(f"/console/tickets/{vague}").text
    assert f"Category {category} confirmed: the ticket no longer needs triage." in page
    assert 'id="triage-note"' not in page and "triage done" in page
    stored = client.get(f"/api/v1/staff/tickets/{vague}", headers=agent.headers).json
    assert stored["needs_triage"] is False and stored["category"] == category

    # ... and so does choosing another.
    answer = client.post(
        f"/console/tickets/{other}/triage",
        data={"priority": "medium", "category": "energy", "csrf_token": token},
    )
    assert answer.status_code == 303
    stored = client.get(f"/api/v1/staff/tickets/{other}", headers=agent.headers).json
    assert stored["needs_triage"] is False and stored["category"] == "energy"
    trail = client.get(f"/api/v1/staff/tickets/{other}/audit", headers=agent.headers).json
    assert ("needs_triage", "True", "False", "category set by staff") in {
        (e["field"], e["before"], e["after"], e["reason"]) for e in trail["items"]
    }
    assert _ids(client.get("/console/?triage=needed").text) == []
    assert re.search(
        r'id="triage-count"><strong>0</strong> need triage', client.get("/console/").text
    )


def test_every_page_shows_times_in_one_format(console_app, client, make):
    acme, admin = make.partner("Acme"), make.staff("admin")
    fresh = make.ticket(acme, title="Fresh one", priority="critical")["id"]
    old = make.ticket(acme, title="Old one")["id"]
    client.post(
        f"/api/v1/tickets/{fresh}/messages", headers=acme.headers, json={"body": "Any news?"}
    )
    make.upload(acme, fresh, filename="trace.txt")
    client.post(
        f"/api/v1/staff/tickets/{old}/status", headers=admin.headers, json={"status": "resolved"}
    )
    with console_app.app_context():
        # Months old and overdue: where a relative time would have turned into a bare date.
        ticket = db.session.get(Ticket, old)
        for column in ("created_at", "updated_at", "first_response_due_at", "resolution_due_at"):
            setattr(ticket, column, getattr(ticket, column) - timedelta(days=90))
        db.session.commit()
    client.get("/api/v1/tickets?q=%27%20OR%201%3D1%20--")  # a security event
    token = signed_in(client, admin)
    client.post(f"/console/tickets/{old}/status", data={"status": "open", "csrf_token": token})
    client.post(
        f"/console/tickets/{fresh}/messages",
        data={"body": "Looking into it", "kind": "reply", "csrf_token": token},
    )

    pages = {
        "queue": "/console/",
        "queue, any status": "/console/?status=any",
        "fresh ticket": f"/console/tickets/{fresh}",
        "old ticket": f"/console/tickets/{old}",
        "sessions": "/console/sessions",
        "security": "/console/security",
    }
    for where, url in pages.items():
        answer = client.get(url)
        assert answer.status_code == 200, (where, answer.status_code)
        assert assert_one_time_format(answer.text, where) > 0, where
    # The regions the open pages poll are rendered the same way.
    for url in ("/console/live/queue", f"/console/live/tickets/{fresh}"):
        for name, region in client.get(url).json["regions"].items():
            assert_one_time_format(region["html"], f"{url} {name}")
    # SLA due times are shown as times, with their distance as a duration.
    old_page = client.get(f"/console/tickets/{old}").text
    assert re.search(r"overdue by (\d+ d|\d+ d \d+ h)\)", old_page)
    queue = client.get("/console/").text
    assert re.search(r"Overdue by \d+ d", queue) and "Times are in UTC" in queue


def test_the_queue_labels_each_value_for_the_narrow_layout(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    make.ticket(acme)
    signed_in(client, agent)
    queue = client.get("/console/").text
    headers = re.findall(r'<th scope="col">([^<]+)</th>', queue)
    row = re.search(r"<tr class=\"[^\"]*\" data-ticket-id=\"\d+\">(.*?)</tr>", queue, re.S)
    labels = re.findall(r'<td[^>]*data-label="([^"]+)"', row.group(1))
    assert labels == headers and len(labels) == 8
    css = client.get("/console/static/console.css").text
    narrow = css.split("@media (max-width: 900px)")[1]
    assert "table.queue thead { display: none; }" in narrow
    assert "td[data-label]::before { content: attr(data-label)" in narrow


def test_files_with_the_same_name_are_told_apart(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    tid = make.ticket(acme)["id"]
    for content in (b"first export\n", b"second export\n", b"second export\n"):
        assert (
            make.upload(
                acme, tid, content, filename="export.csv", content_type="text/csv"
            ).status_code
            == 201
        )
    assert make.upload(acme, tid, filename="notes.txt").status_code == 201
    signed_in(client, agent)
    page = client.get(f"/console/tickets/{tid}").text
    files = re.findall(r'<li id="attachment-(\d+)">(.*?)</li>', page, re.S)
    assert len(files) == 4
    exports = [html for _, html in files if ">export.csv</a>" in html]
    assert [
        re.search(r"file (\d) of 3 with this name</span>", html).group(1) for html in exports
    ] == [
        "1",
        "2",
        "3",
    ]
    # Same name, same size, same minute: the content's digest still tells them apart.
    digests = [
        re.search(r"SHA-256 <code[^>]*>([0-9a-f]{8})</code>", html).group(1) for html in exports
    ]
    assert digests[0] != digests[1] == digests[2]
    [notes] = [html for _, html in files if ">notes.txt</a>" in html]
    assert "with this name" not in notes
    assert_one_time_format(page, "ticket with files")

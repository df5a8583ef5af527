"""The support console in a real headless Chromium, against the service under gunicorn.

One server and one browser session per module (a second session for what
another agent sees live). The flow is what an agent does: sign in, find a new
ticket, take it, reply, add an internal note, resolve it; the partner API
then shows the reply and not the note, and the other session saw every step
without reloading. Screenshots go to the run's tmp directory
(``CONSOLE_SCREENSHOTS=docs`` also copies them into docs/).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import create_engine, update

from tests.harness import console
from tests.harness.console import POLL, keep_in_docs
from ticketing import database_url
from ticketing.models import Ticket

pytestmark = pytest.mark.slow
WAIT = 30  # seconds; generous: the suite's other worker may be loading the machine


def wait(driver, timeout: float = WAIT) -> WebDriverWait:
    # Live updates replace page regions, and a form's answer replaces the page: an
    # element found a moment ago may be gone (stale, or a node no longer in the
    # document while the next page loads). The condition is tried again.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(WebDriverException,)
    )


def click(driver, css: str) -> None:
    """Click what ``css`` finds, again if a live update replaced it meanwhile."""

    def clicked(d):
        d.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait(driver).until(clicked)


def notice(driver, text: str) -> None:
    """Wait for the page's notice to say ``text``; else fail with what the page shows."""
    try:
        wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), text))
    except TimeoutException:
        shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".notice")]
        raise AssertionError(
            f"no notice {text!r} on {driver.current_url} ({driver.title!r}); it shows {shown}"
        ) from None


def sign_in(driver, server, key: str) -> None:
    console.sign_in(driver, server.url, key)


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


#: The console's one time format (tests/console/test_triage_and_times.py checks the HTML).
ONE_FORMAT = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"


def times_shown(driver) -> list[str]:
    """The text of every ``<time>`` on the page as the browser shows it."""
    return driver.execute_script(
        "return [...document.querySelectorAll('time')].map(t => t.textContent.trim());"
    )


def mark_for_triage(server, ticket_id: int, confidence: float) -> None:
    """What the classifier does to a ticket whose category it is unsure of."""
    engine = create_engine(database_url(server.db_url))
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Ticket.__table__)
                .where(Ticket.__table__.c.id == ticket_id)
                .values(needs_triage=True, category_confidence=confidence)
            )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def agent(browser, console_server):
    driver = browser()
    sign_in(driver, console_server, console_server.keys["agent"])
    wait(driver).until(EC.title_contains("Queue"))
    return driver


@pytest.fixture(scope="module")
def colleague(browser, console_server):
    """A second browser session: the admin, watching."""
    driver = browser()
    sign_in(driver, console_server, console_server.keys["admin"])
    wait(driver).until(EC.title_contains("Queue"))
    return driver


@pytest.fixture(scope="module")
def queue_with_history(console_server):
    """Tickets of different ages, so the queue shows overdue, due soon and on track."""
    server = console_server
    made = {}
    for title, description, age_minutes in (
        ("Invoice for October is missing", "Our finance team cannot find it.", 600),
        ("Webhook deliveries return 500", "Since this morning every webhook fails.", 100),
        ("Urgent: energy pool allocation wrong", "Units are off by 20 %.", 20),
        ("Production down: all transactions failing", "Nothing settles.", 22),
        ("Question about API rate limits", "How many calls per minute?", 5),
    ):
        response = server.partner_api(
            "POST", "/tickets", json={"title": title, "description": description}
        )
        assert response.status_code == 201, response.text
        made[title] = response.json()["id"]
        # Filed earlier than now: every timestamp and SLA due time moves back.
        server.age_ticket(made[title], timedelta(minutes=age_minutes))
    # The classifier was unsure of this one's category: the queue marks it.
    mark_for_triage(server, made["Question about API rate limits"], 0.34)
    return made


def test_a_partner_key_cannot_sign_in(browser, console_server):
    driver = browser()
    sign_in(driver, console_server, console_server.keys["partner"])
    error = wait(driver).until(EC.visibility_of_element_located((By.ID, "signin-error")))
    assert "partner API key" in error.text
    assert driver.current_url.endswith("/console/login")
    driver.get(console_server.url + "/console/")
    assert "/console/login" in driver.current_url  # no session was made

    sign_in(driver, console_server, "pw_000000000000_" + "x" * 43)
    error = wait(driver).until(EC.visibility_of_element_located((By.ID, "signin-error")))
    assert "not valid" in error.text


def test_an_agent_works_a_new_ticket_and_a_colleague_sees_it_live(
    agent, colleague, console_server, queue_with_history, screenshots, root
):
    server = console_server
    filed = server.partner_api(
        "POST",
        "/tickets",
        json={
            "title": "Transactions stuck in pending",
            "description": "Since 09:00 our transactions stay pending. Order ids: 8812, 8813.",
        },
    )
    assert filed.status_code == 201
    ticket_id = filed.json()["id"]
    assert (
        server.partner_api(
            "POST",
            f"/tickets/{ticket_id}/messages",
            json={"body": "Any news? Our customers are waiting."},
        ).status_code
        == 201
    )
    upload = server.partner_api(
        "POST",
        f"/tickets/{ticket_id}/attachments",
        files={
            "file": ("pending.csv", b"order_id,state\n8812,pending\n8813,pending\n", "text/csv")
        },
    )
    assert upload.status_code == 201, upload.text
    again = server.partner_api(
        "POST",
        f"/tickets/{ticket_id}/attachments",
        files={"file": ("pending.csv", b"order_id,state\n8812,pending\n", "text/csv")},
    )
    assert again.status_code == 201, again.text

    # The colleague's queue is open before anything happens; it must follow without reload.
    colleague.get(server.url + "/console/")
    colleague.execute_script("window.notReloaded = true;")
    row = f'tr[data-ticket-id="{ticket_id}"]'
    wait(colleague).until(EC.presence_of_element_located((By.CSS_SELECTOR, row)))

    # 1. Find the new ticket in the queue (sorted by SLA due: the overdue ones first).
    agent.get(server.url + "/console/")
    wait(agent).until(EC.presence_of_element_located((By.CSS_SELECTOR, row)))
    rows = agent.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    ids = [int(r.get_attribute("data-ticket-id")) for r in rows]
    assert ids[0] == queue_with_history["Invoice for October is missing"]
    assert "row-overdue" in rows[0].get_attribute("class")
    assert "Overdue by" in rows[0].text
    triage_row = f'tr[data-ticket-id="{queue_with_history["Question about API rate limits"]}"]'
    assert "needs triage" in text_of(agent, triage_row)
    shown = times_shown(agent)
    assert shown and all(re.fullmatch(ONE_FORMAT, t) for t in shown), shown
    shot = screenshots / "console-queue.png"
    agent.save_screenshot(str(shot))
    keep_in_docs(shot, "console-queue.png", root)
    click(agent, f"{row} td.title a")
    wait(agent).until(EC.title_contains("Transactions stuck"))

    # 2. Take it.
    click(agent, "#assign-me")
    wait(agent).until(EC.text_to_be_present_in_element((By.ID, "assignee-name"), "Sam Agent"))
    wait(colleague).until(lambda d: "Sam Agent" in d.find_element(By.CSS_SELECTOR, row).text)

    # The colleague opens the ticket and keeps watching it.
    click(colleague, f"{row} td.title a")
    wait(colleague).until(EC.title_contains("Transactions stuck"))
    colleague.execute_script("window.notReloaded = true;")

    # 3. Reply to the partner, 4. add an internal note.
    agent.find_element(By.ID, "body").send_keys("We are on it: the settlement queue is stuck.")
    agent.find_element(By.CSS_SELECTOR, 'button[name="kind"][value="reply"]').click()
    notice(agent, "Reply sent")
    agent.find_element(By.ID, "body").send_keys("Internal: restarted settlement worker 2.")
    wait(agent).until(
        lambda d: (
            d.find_element(By.ID, "body").get_attribute("value")
            == "Internal: restarted settlement worker 2."
        )
    )
    agent.find_element(By.CSS_SELECTOR, 'button[name="kind"][value="note"]').click()
    notice(agent, "note added")
    note = agent.find_element(By.CSS_SELECTOR, ".message.internal")
    assert "Internal note" in note.text and "not shown to the partner" in note.text
    assert "restarted settlement worker" in note.text
    reply = agent.find_element(By.CSS_SELECTOR, ".message.staff")
    assert "settlement queue is stuck" in reply.text
    files = [f.text for f in agent.find_elements(By.CSS_SELECTOR, ".attachments li")]
    assert len(files) == 2 and "file 1 of 2 with this name" in files[0], files
    assert "file 2 of 2 with this name" in files[1] and "SHA-256" in files[1]
    link = agent.find_elements(By.LINK_TEXT, "pending.csv")[0]
    session = requests.Session()
    for cookie in agent.get_cookies():
        session.cookies.set(cookie["name"], cookie["value"], path=cookie["path"])
    download = session.get(link.get_attribute("href"), timeout=10)
    assert download.content.startswith(b"order_id,state")
    assert "attachment" in download.headers["Content-Disposition"]
    shot = screenshots / "console-ticket.png"
    agent.save_screenshot(str(shot))
    keep_in_docs(shot, "console-ticket.png", root)

    # Only valid transitions are offered.
    offered = [
        o.get_attribute("value") for o in Select(agent.find_element(By.ID, "status")).options
    ]
    assert offered == ["in_progress", "resolved", "closed"]

    # 5. Resolve it (the choice and the click together, again if a live update
    # replaced the form in between).
    def resolve(d):
        Select(d.find_element(By.ID, "status")).select_by_value("resolved")
        d.find_element(By.CSS_SELECTOR, 'form[action$="/status"] button').click()
        return True

    wait(agent).until(resolve)
    notice(agent, "Status changed to resolved")
    assert "resolved" in text_of(agent, "#ticket-h + .meta")
    audit = text_of(agent, ".audit")
    assert "status: open → resolved" in audit and "assignee: nobody → Sam Agent" in audit

    # The partner sees the reply, never the note.
    messages = server.partner_api("GET", f"/tickets/{ticket_id}/messages").json()["items"]
    assert [m["body"] for m in messages] == [
        "Any news? Our customers are waiting.",
        "We are on it: the settlement queue is stuck.",
    ]
    assert server.partner_api("GET", f"/tickets/{ticket_id}").json()["status"] == "resolved"

    # The colleague's page followed every step without a reload.
    wait(colleague).until(lambda d: "resolved" in text_of(d, "#ticket-h + .meta"))
    conversation = text_of(colleague, '[data-region="conversation"]')
    assert "settlement queue is stuck" in conversation
    assert "restarted settlement worker" in conversation
    assert colleague.execute_script("return window.notReloaded === true;")
    # The live status tells its times as every page does: UTC, labelled.
    live = text_of(colleague, "#live-status")
    assert re.fullmatch(f"Live: checked {ONE_FORMAT}, last change {ONE_FORMAT}", live), live
    shown = times_shown(colleague)
    assert shown and all(re.fullmatch(ONE_FORMAT, t) for t in shown), shown


def test_an_agent_triages_an_unsure_category(
    agent, console_server, queue_with_history, screenshots, root
):
    server = console_server
    ticket_id = queue_with_history["Question about API rate limits"]
    agent.get(server.url + "/console/")
    Select(agent.find_element(By.ID, "f-triage")).select_by_value("needed")
    click(agent, "form.filters button.primary")
    wait(agent).until(EC.url_contains("triage=needed"))
    rows = agent.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    assert [int(r.get_attribute("data-ticket-id")) for r in rows] == [ticket_id]
    click(agent, f'tr[data-ticket-id="{ticket_id}"] td.title a')
    wait(agent).until(EC.title_contains("API rate limits"))
    note = text_of(agent, "#triage-note")
    assert "Needs triage" in note and "34 % confidence" in note
    shot = screenshots / "console-triage.png"
    agent.save_screenshot(str(shot))
    keep_in_docs(shot, "console-triage.png", root)

    def confirm(d):
        Select(d.find_element(By.ID, "category")).select_by_value("technical")
        d.find_element(By.CSS_SELECTOR, "#triage-form button").click()
        return True

    wait(agent).until(confirm)
    notice(agent, "Category technical confirmed: the ticket no longer needs triage.")
    assert not agent.find_elements(By.ID, "triage-note")
    assert "triage done" in text_of(agent, ".audit")
    agent.get(server.url + "/console/?triage=needed")
    assert "No tickets match these filters." in text_of(agent, "main")


def test_the_page_says_when_it_is_stale(colleague, console_server):
    colleague.get(console_server.url + "/console/")
    wait(colleague).until(lambda d: "checked" in text_of(d, "#live-status"))
    colleague.set_network_conditions(
        offline=True, latency=0, download_throughput=0, upload_throughput=0
    )
    try:
        wait(colleague, 10 * POLL + 10).until(
            lambda d: d.find_element(By.ID, "live").get_attribute("data-stale") == "true"
        )
        assert text_of(colleague, "#live-status").startswith("Stale")
    finally:
        colleague.set_network_conditions(
            offline=False, latency=0, download_throughput=-1, upload_throughput=-1
        )
    wait(colleague, 10 * POLL + 10).until(
        lambda d: d.find_element(By.ID, "live").get_attribute("data-stale") is None
    )


def test_a_forged_form_post_is_refused(agent, console_server):
    server = console_server
    ticket_id = server.partner_api(
        "POST",
        "/tickets",
        json={"title": "Forgery target", "description": "Nobody should answer this."},
    ).json()["id"]
    session = requests.Session()
    for cookie in agent.get_cookies():  # the victim's session cookie, as a browser would send it
        session.cookies.set(cookie["name"], cookie["value"], path=cookie["path"])
    url = f"{server.url}/console/tickets/{ticket_id}/messages"
    forged = session.post(
        url,
        data={"body": "Send your invoices to evil.example", "kind": "reply"},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert forged.status_code == 400
    assert "security token" in forged.text
    wrong_token = session.post(
        url, data={"body": "again", "kind": "reply", "csrf_token": "forged"}, allow_redirects=False
    )
    assert wrong_token.status_code == 400
    assert server.partner_api("GET", f"/tickets/{ticket_id}/messages").json()["items"] == []
    # The session itself works: the refusal was the missing token, not the cookie.
    assert session.get(f"{server.url}/console/tickets/{ticket_id}").status_code == 200


def test_pages_are_accessible_and_self_contained(agent, browser, console_server, screenshots, root):
    server = console_server
    ticket_id = server.partner_api(
        "POST",
        "/tickets",
        json={"title": "Layout check", "description": "A ticket for the narrow window."},
    ).json()["id"]
    pages = ["/console/", f"/console/tickets/{ticket_id}", "/console/login"]
    for path in pages[:2]:
        agent.get(server.url + path)
        unlabelled = agent.execute_script("""
            return [...document.querySelectorAll('input, select, textarea')]
              .filter(e => e.type !== 'hidden' && e.labels.length === 0)
              .map(e => e.outerHTML);""")
        assert unlabelled == [], path
        foreign = agent.execute_script("""
            return performance.getEntriesByType('resource').map(e => e.name)
              .filter(n => !n.startsWith(location.origin));""")
        assert foreign == [], path
    # Keyboard: Tab from the top reaches the skip link, then the console's links.
    agent.get(server.url + "/console/")
    agent.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert agent.switch_to.active_element.text == "Skip to content"

    narrow = browser(420, 860)
    sign_in(narrow, server, server.keys["agent"])
    wait(narrow).until(EC.title_contains("Queue"))
    for path in pages[:2]:
        narrow.get(server.url + path)
        overflow = narrow.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth;"
        )
        wide = narrow.execute_script("""
            return [...document.querySelectorAll('body *')]
              .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
              .slice(-5)
              .map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 40));""")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 420px: {wide}"
    narrow.save_screenshot(str(screenshots / "console-ticket-narrow.png"))

    # Narrow, the queue has no column headers: each value shows what it is.
    narrow.get(server.url + "/console/")
    assert not narrow.find_element(By.CSS_SELECTOR, "table.queue thead").is_displayed()
    labels = narrow.execute_script("""
        const row = document.querySelector('table.queue tbody tr');
        return [...row.cells].map(c => getComputedStyle(c, '::before').content);""")
    assert labels == [
        f'"{name}: "'
        for name in (
            "Ticket",
            "Partner",
            "Status",
            "Priority",
            "Category",
            "Assignee",
            "SLA",
            "Updated",
        )
    ], labels
    narrow.execute_script("document.querySelector('table.queue').scrollIntoView();")
    shot = screenshots / "console-queue-narrow.png"
    narrow.save_screenshot(str(shot))
    keep_in_docs(shot, "console-queue-narrow.png", root)


def test_an_admin_sees_security_events(colleague, agent, console_server):
    server = console_server
    # Something to see: a request with an attack pattern in its query.
    requests.get(
        server.url + "/api/v1/tickets",
        params={"q": "' OR 1=1 --"},
        headers={"X-API-Key": server.keys["partner"]},
        timeout=10,
    )
    colleague.get(server.url + "/console/security")
    assert "SUSPICIOUS_PATTERN" in text_of(colleague, "table.type-counts")
    Select(colleague.find_element(By.ID, "type")).select_by_value("FAILED_AUTH")
    colleague.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait(colleague).until(EC.url_contains("type=FAILED_AUTH"))
    types = {
        cell.text
        for cell in colleague.find_elements(By.CSS_SELECTOR, "table.events tbody td:nth-child(2)")
    }
    assert types == {"FAILED_AUTH"}  # the bad key of the sign-in test

    agent.get(server.url + "/console/security")
    assert "Not allowed" in text_of(agent, "main h1")


def test_the_api_docs_render_from_the_service_alone(browser, console_server, screenshots):
    """Swagger UI at /api/docs: every file from the service itself (nothing from a CDN),
    no script refused by the page's Content-Security-Policy, the operations listed."""
    driver = browser()
    driver.get(f"{console_server.url}/api/docs")
    operations = wait(driver).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path") or None
    )
    paths = {op.get_attribute("data-path") or op.text for op in operations}
    assert any("/api/v1/tickets" in path for path in paths), paths
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert loaded and all(url.startswith(console_server.url) for url in loaded), loaded
    refused = [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] and "script" in entry["message"]
    ]
    assert refused == []
    driver.save_screenshot(str(screenshots / "api-docs.png"))
    headers = requests.get(f"{console_server.url}/api/docs", timeout=10).headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]

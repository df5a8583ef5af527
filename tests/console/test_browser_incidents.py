"""One outage, many tickets, in a real headless Chromium against the service under
gunicorn (SQLite, then PostgreSQL): an agent opens and publishes an incident in the
console, ten tickets about it are linked, the agent sends the incident's update to
all ten from the incident's page (once each, however often pressed), then takes all
ten from the queue filtered by the incident ("Select all on this page", "Assign to
me"). The partner API shows one reply per ticket and none on a ticket not linked;
the staff API shows the ten assigned. Screenshots ``console-incident-tickets.png``
and ``console-bulk.png`` (``CONSOLE_SCREENSHOTS=docs`` copies them into docs/).
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.harness.console import POLL, keep_in_docs, sign_in

pytestmark = pytest.mark.slow
WAIT = 30  # seconds; generous: the machine may be busy
LINKED = 10


def wait(driver) -> WebDriverWait:
    return WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=(WebDriverException,))


def notice(driver, text: str) -> None:
    try:
        wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), text))
    except TimeoutException:
        shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".notice")]
        raise AssertionError(f"no notice {text!r} on {driver.current_url}: {shown}") from None


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def staff_api(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        server.url + "/api/v1/staff" + path,
        headers={"X-API-Key": server.keys["admin"]},
        timeout=10,
        **kwargs,
    )


def partner_api(server, key: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method, server.url + "/api/v1" + path, headers={"X-API-Key": key}, timeout=10, **kwargs
    )


@pytest.fixture(scope="module")
def agent(browser, console_server):
    driver = browser(1400, 1000)  # wide: the screenshots for the docs
    sign_in(driver, console_server.url, console_server.keys["agent"])
    wait(driver).until(EC.title_contains("Queue"))
    return driver


def test_an_agent_answers_and_takes_the_tickets_of_an_incident(
    agent, console_server, screenshots, root
):
    server = console_server
    # The agent opens the incident in the console and publishes it.
    agent.get(server.url + "/console/incidents")
    form = agent.find_element(By.CSS_SELECTOR, "form[action$='/console/incidents']")
    form.find_element(By.NAME, "title").send_keys("Transactions stuck in pending")
    form.find_element(By.CSS_SELECTOR, "input[name=components][value=transactions]").click()
    form.find_element(By.NAME, "body").send_keys(
        "Transactions sent since 09:40 UTC stay pending. We are on it."
    )
    form.find_element(By.CSS_SELECTOR, "input[name=publish]").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    notice(agent, "Incident opened and published.")
    incident_id = int(re.search(r"/console/incidents/(\d+)", agent.current_url).group(1))

    # Ten tickets about it (linked through the staff API's bulk route), one about else.
    ids = [
        partner_api(
            server,
            server.keys["partner"],
            "POST",
            "/tickets",
            json={"title": f"Payout {n} not arriving", "description": "Where is our money?"},
        ).json()["id"]
        for n in range(LINKED)
    ]
    elsewhere = partner_api(
        server,
        server.keys["other"],
        "POST",
        "/tickets",
        json={"title": "Invoice for November", "description": "The PDF is missing."},
    ).json()["id"]
    linked = staff_api(
        server,
        "POST",
        "/tickets/bulk",
        json={"ticket_ids": ids, "action": "link", "value": incident_id},
    )
    assert linked.status_code == 200, linked.text
    assert {r["result"] for r in linked.json()["items"]} <= {"changed", "unchanged"}

    # The incident's page: one press sends the update to the ten, a second sends nothing.
    agent.get(f"{server.url}/console/incidents/{incident_id}")
    assert f"Linked tickets ({LINKED})" in agent.find_element(By.ID, "linked-h").text
    button = agent.find_element(By.ID, "reply-all")
    assert button.text == f"Send the latest update to the {LINKED} linked tickets"
    button.click()
    notice(agent, f"Sent to {LINKED} tickets; 0 had it already; 0 closed")
    shot = screenshots / "console-incident-tickets.png"
    agent.save_screenshot(str(shot))
    keep_in_docs(shot, "console-incident-tickets.png", root)
    agent.find_element(By.ID, "reply-all").click()
    notice(agent, f"Sent to 0 tickets; {LINKED} had it already; 0 closed")
    for ticket_id in ids:
        messages = partner_api(
            server, server.keys["partner"], "GET", f"/tickets/{ticket_id}/messages"
        ).json()["items"]
        replies = [m["body"] for m in messages if m["sender_type"] == "staff"]
        assert len(replies) == 1, (ticket_id, replies)
        assert replies[0].startswith("Investigating: Transactions stuck in pending")
        ticket = partner_api(server, server.keys["partner"], "GET", f"/tickets/{ticket_id}")
        assert ticket.json()["incident"]["id"] == incident_id
        assert ticket.json()["sla_paused"] is True
    assert (
        partner_api(server, server.keys["other"], "GET", f"/tickets/{elsewhere}/messages").json()[
            "items"
        ]
        == []
    )

    # The queue filtered by the incident: select all, assign to me.
    agent.find_element(By.ID, "linked-queue").click()
    wait(agent).until(EC.title_contains("Queue"))
    rows = agent.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    assert sorted(int(r.get_attribute("data-ticket-id")) for r in rows) == sorted(ids)
    assert all("SLA paused" in r.text and f"incident #{incident_id}" in r.text for r in rows)
    agent.find_element(By.CSS_SELECTOR, "label[for=select-all]").click()
    wait(agent).until(EC.text_to_be_present_in_element((By.ID, "bulk-count"), f"{LINKED} selected"))
    assert all(box.is_selected() for box in agent.find_elements(By.NAME, "ticket"))
    Select(agent.find_element(By.ID, "bulk-assignee")).select_by_value("me")
    # A colleague changes a ticket meanwhile: the live update does not pull the rows
    # from under the selection (the table is swapped in once nothing is selected).
    before = staff_api(server, "GET", f"/tickets/{ids[0]}").json()["priority"]
    after = "low" if before != "low" else "high"
    assert staff_api(server, "PATCH", f"/tickets/{ids[0]}", json={"priority": after}).ok
    time.sleep(POLL * 4)
    assert text_of(agent, "#live-status").startswith("Live: checked")  # polls answered
    row = agent.find_element(By.CSS_SELECTOR, f"tr[data-ticket-id='{ids[0]}']")
    assert row.find_element(By.CSS_SELECTOR, "td[data-label=Priority]").text == before
    assert all(box.is_selected() for box in agent.find_elements(By.NAME, "ticket"))
    agent.execute_script("window.scrollTo(0, 0);")
    shot = screenshots / "console-bulk.png"
    agent.save_screenshot(str(shot))
    keep_in_docs(shot, "console-bulk.png", root)
    agent.find_element(By.ID, "bulk-assign").click()
    notice(agent, f"{LINKED} tickets changed.")
    assert f"incident_id={incident_id}" in agent.current_url  # the same view
    assignees = {
        e.text for e in agent.find_elements(By.CSS_SELECTOR, "table.queue td[data-label=Assignee]")
    }
    assert assignees == {"Sam Agent"}

    listed = staff_api(server, "GET", f"/tickets?incident_id={incident_id}&limit=100").json()
    assert sorted(t["id"] for t in listed["items"]) == sorted(ids)
    assert {t["assignee_id"] for t in listed["items"]} == {server.ids["agent"]}

"""Ticket search in the console, in a real headless Chromium against the service under
gunicorn, on SQLite and on PostgreSQL: an agent types a transaction id a partner
gave in the top bar's search box, finds the ticket with the id marked, and opens it.
The screenshot of the results goes to the run's tmp directory
(``CONSOLE_SCREENSHOTS=docs`` also copies it into docs/).
"""

from __future__ import annotations

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.harness.console import keep_in_docs, sign_in

pytestmark = pytest.mark.slow
WAIT = 30  # seconds; generous: the suite's other worker may be loading the machine


def wait(driver) -> WebDriverWait:
    return WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=(WebDriverException,))


@pytest.fixture(scope="module")
def agent(browser, console_server):
    driver = browser()
    sign_in(driver, console_server.url, console_server.keys["agent"])
    wait(driver).until(EC.title_contains("Queue"))
    return driver


def test_an_agent_finds_a_ticket_by_a_transaction_id(agent, console_server, screenshots, root):
    server = console_server
    wanted = server.partner_api(
        "POST",
        "/tickets",
        json={
            "title": "Payout never arrived",
            "description": "Our transfer tx-8f3a-19 left the pool on Monday and never "
            "reached us. <b>Please</b> check.",
        },
    ).json()["id"]
    server.partner_api(
        "POST", "/tickets", json={"title": "Payout question", "description": "tx-0000-00"}
    )

    # From any page (the queue here): type in the top bar's box, press Enter.
    box = agent.find_element(By.CSS_SELECTOR, "header form[role=search] input[name=q]")
    box.send_keys("tx-8f3a-19")
    box.send_keys(Keys.ENTER)
    wait(agent).until(EC.title_contains("Search"))

    hits = agent.find_elements(By.CSS_SELECTOR, ".search-hit")
    assert [h.get_attribute("data-ticket-id") for h in hits] == [str(wanted)]
    marks = [m.text for m in hits[0].find_elements(By.TAG_NAME, "mark")]
    assert marks == ["tx-8f3a-19"]
    # Marked, not merely there: the word is drawn in a highlight colour.
    background = hits[0].find_element(By.TAG_NAME, "mark").value_of_css_property("background-color")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background
    # Stored markup is text on the page, never an element.
    assert "<b>Please</b>" in hits[0].text
    assert hits[0].find_elements(By.TAG_NAME, "b") == []
    # The box keeps the words.
    assert agent.find_element(By.ID, "search-q").get_attribute("value") == "tx-8f3a-19"
    shot = screenshots / "console-search.png"
    agent.save_screenshot(str(shot))
    keep_in_docs(shot, "console-search.png", root)

    hits[0].find_element(By.CSS_SELECTOR, "h2 a").click()
    wait(agent).until(EC.url_contains(f"/console/tickets/{wanted}"))
    assert "Payout never arrived" in agent.title or "Payout never arrived" in (
        agent.find_element(By.TAG_NAME, "h1").text
    )


def test_a_search_without_a_match_says_so(agent, console_server):
    agent.get(console_server.url + "/console/")
    box = agent.find_element(By.ID, "search-q")
    box.send_keys("zzyzx-nothing")
    box.send_keys(Keys.ENTER)
    wait(agent).until(EC.title_contains("Search"))
    assert agent.find_elements(By.CSS_SELECTOR, ".search-hit") == []
    assert "No ticket holds all of these words." in agent.find_element(By.ID, "main").text

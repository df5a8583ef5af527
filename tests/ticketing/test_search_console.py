"""The console's search box and results page (/console/search), through Flask's client,
on SQLite and PostgreSQL: found tickets, marked words, escaped stored text, bad input."""

from __future__ import annotations

import re

from tests.harness.console import signed_in


def _ticket(make, partner, title, description):
    return make.ticket(partner, title=title, description=description)["id"]


def test_every_page_has_the_search_box(client, make):
    signed_in(client, make.staff())
    for path in ("/console/", "/console/sessions", "/console/search"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'role="search"' in page.text and 'name="q"' in page.text, path


def test_results_mark_the_words_and_escape_stored_text(client, make):
    acme = make.partner("Acme Energy")
    hostile = _ticket(
        make, acme, "<script>alert(1)</script> refund", "Refund <img src=x onerror=alert(2)>"
    )
    plain = _ticket(make, acme, "Meter reading", "Please check tx-8f3a-19.")
    agent = make.staff()
    signed_in(client, agent)
    client.post(
        f"/api/v1/staff/tickets/{plain}/messages",
        headers=agent.headers,
        json={"body": "Internal: customer is <b>VIP</b> pangolin", "internal": True},
    )

    page = client.get("/console/search", query_string={"q": "refund"})
    assert page.status_code == 200
    assert f'data-ticket-id="{hostile}"' in page.text
    assert "<script>alert(1)</script>" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <mark>refund</mark>" in page.text
    assert "<mark>Refund</mark> &lt;img src=x onerror=alert" in page.text
    # The box keeps the words (escaped as an attribute).
    assert 'value="refund"' in page.text

    page = client.get("/console/search", query_string={"q": "tx-8f3a-19"})
    assert (
        f'data-ticket-id="{plain}"' in page.text and f'data-ticket-id="{hostile}"' not in page.text
    )
    assert "<mark>tx-8f3a-19</mark>" in page.text

    page = client.get("/console/search", query_string={"q": "pangolin"})
    assert f'data-ticket-id="{plain}"' in page.text
    assert "Internal note #" in page.text
    assert "&lt;b&gt;VIP&lt;/b&gt; <mark>pangolin</mark>" in page.text


def test_no_match_bad_words_and_pages(client, make):
    acme = make.partner("Acme Energy")
    ids = [_ticket(make, acme, f"Invoice {n}", "About an invoice.") for n in range(4)]
    signed_in(client, make.staff())

    page = client.get("/console/search", query_string={"q": "nothing-like-this"})
    assert page.status_code == 200 and "No ticket holds all of these words." in page.text

    page = client.get("/console/search", query_string={"q": "a b c d e f g h i"})
    assert page.status_code == 400 and "At most 8 words." in page.text

    page = client.get("/console/search", query_string={"q": "invoice", "cursor": "forged"})
    assert page.status_code == 400

    # Pages of console.page_size, best match (then newest) first, each ticket once.
    seen: list[int] = []
    url = "/console/search?q=invoice"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        seen += [int(i) for i in re.findall(r'data-ticket-id="(\d+)"', page.text)]
        found = re.search(r'href="([^"]+)" rel="next"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == sorted(ids, reverse=True)


def test_the_page_needs_a_signed_in_staff_member(client):
    response = client.get("/console/search", query_string={"q": "x"})
    assert response.status_code in (302, 303)
    assert "/console/login" in response.headers["Location"]

"""Two ticket-service instances (gunicorn, two workers each) on one PostgreSQL and one Redis.

What a second instance must not break: a partner's rate limit is one limit
whichever instance and worker answers; every instance runs an outbox
deliverer, yet each notification is posted once to each Alertmanager of a
clustered pair (their own ``alertmanager_alerts_received_total`` says so) and
reaches the webhook once; and each instance's live feed pushes snapshots
that reflect what the other instance wrote.
"""

from __future__ import annotations

import itertools
import time

import pytest
import requests
import yaml

from tests.harness import start_alertmanager_cluster, wait_until
from tests.harness.outbox import webhook_config
from tests.harness.ticketing import prepare_database, start_ticketing
from tests.harness.ws_clients import connect, receive_type

pytestmark = pytest.mark.slow

INSTANCES, WORKERS = 2, 2
TICKET_LIMIT = 10  # ticket_create per partner per minute


@pytest.fixture(scope="module")
def service(tmp_path_factory, postgres_server, redis_server, ha_monitoring):
    from tests.harness import HTTPSink

    tmp = tmp_path_factory.mktemp("ha-ticketing")
    sink = HTTPSink().start()
    alertmanagers = start_alertmanager_cluster(tmp, webhook_config(sink.url + "/hook"), size=2)
    instances = []
    try:
        db_url = postgres_server.create_database()
        keys = prepare_database(db_url, partners=2)
        config = tmp / "ticketing.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "outbox": {
                        "alertmanager_url": [am.url for am in alertmanagers],
                        "poll_interval": "200ms",
                        "alert_ttl": "10m",
                    },
                    "ratelimits": {"limits": {"ticket_create": f"{TICKET_LIMIT}/minute"}},
                    "live": {
                        "interval": "1s",
                        "query_timeout": "900ms",
                        "prometheus_url": ha_monitoring.prometheus["a"].url,
                        "alertmanager_url": [am.url for am in ha_monitoring.alertmanagers],
                    },
                }
            )
        )
        env = {
            "TICKETING_DATABASE_URL": db_url,
            "TICKETING_CONFIG": str(config),
            "REDIS_URL": redis_server.url,
        }
        instances = [
            start_ticketing(tmp, env=env, workers=WORKERS, wait=False) for _ in range(INSTANCES)
        ]
        for instance in instances:
            wait_until(
                lambda instance=instance: _ready(instance),
                timeout=90,
                message=f"{instance.url}/readyz",
            )
        yield instances, keys, alertmanagers, sink
    finally:
        for instance in instances:
            instance.stop()
        for am in alertmanagers:
            am.stop()
        sink.stop()


def _ready(instance) -> bool:
    assert instance.process.running(), instance.process.log()[-3000:]
    try:
        return requests.get(f"{instance.url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def create(instance, key: str, n: int) -> requests.Response:
    return requests.post(
        f"{instance.url}/api/v1/tickets",
        headers={"X-API-Key": key},
        json={
            "title": f"Invoice question {n}",
            "description": "The October invoice shows the wrong amount.",
        },
        timeout=10,
    )


def test_a_rate_limit_holds_across_instances_and_workers(service):
    instances, keys, _, _ = service
    key = keys.partners[0]
    answers = []
    # Round robin over the instances; each instance spreads over its workers.
    for n, instance in zip(range(TICKET_LIMIT + 6), itertools.cycle(instances)):
        answers.append((instance.port, create(instance, key, n)))
    statuses = [r.status_code for _, r in answers]
    assert statuses == [201] * TICKET_LIMIT + [429] * 6, statuses
    refused = {port for port, r in answers if r.status_code == 429}
    assert refused == {i.port for i in instances}  # both instances refuse once the limit is used
    last = answers[-1][1]
    assert last.json()["error"]["code"] and int(last.headers["Retry-After"]) > 0
    assert last.headers["X-RateLimit-Limit"] == str(TICKET_LIMIT)
    # The other partner's limit is its own.
    assert create(instances[1], keys.partners[1], 0).status_code == 201


def test_each_outbox_message_is_posted_and_notified_once(service):
    instances, keys, alertmanagers, sink = service
    key = keys.partners[1]
    created = [
        create(instance, key, 100 + n) for n, instance in zip(range(6), itertools.cycle(instances))
    ]
    assert [r.status_code for r in created] == [201] * 6
    tickets = set()
    for partner_key in keys.partners:
        listing = requests.get(
            f"{instances[0].url}/api/v1/tickets?limit=100",
            headers={"X-API-Key": partner_key},
            timeout=10,
        ).json()
        tickets |= {str(t["id"]) for t in listing["items"]}
    assert len(tickets) == TICKET_LIMIT + 1 + 6

    def notified() -> dict[str, int]:
        seen: dict[str, int] = {}
        for post in sink.received("/hook"):
            for alert in post.json["alerts"]:
                if alert["labels"]["alertname"] == "SupportTicketCreated":
                    seen[alert["labels"]["ticket"]] = seen.get(alert["labels"]["ticket"], 0) + 1
        return seen

    wait_until(lambda: set(notified()) == tickets, timeout=60, message="a webhook per ticket")
    time.sleep(18)  # a group_interval and a peer_timeout beyond: any duplicate would be here
    assert notified() == dict.fromkeys(tickets, 1)
    # Every deliverer together posted each row once, to each Alertmanager once.
    delivered = sum(
        i.metric("notifications_delivered_total", kind="ticket_created") for i in instances
    )
    assert delivered == len(tickets)
    for am in alertmanagers:
        received = am.metric("alertmanager_alerts_received_total", status="firing")
        assert received == len(tickets), (am.url, received)


def test_the_live_feed_works_on_each_instance(service):
    instances, keys, _, _ = service
    # Partner 1 filed its tickets through both instances; each feed counts all of them.
    expected = None
    for instance in instances:
        ws = connect(instance.ws_url, keys.partners[0])
        try:
            snapshot = receive_type(ws, "snapshot", timeout=15)
        finally:
            ws.close()
        counts = snapshot["data"]["tickets"]["open_by_priority"]
        assert sum(counts.values()) == TICKET_LIMIT, counts
        assert snapshot["data"]["sources"]["prometheus"] == {"ok": True}
        expected = expected or counts
        assert counts == expected

"""The harness itself: every service starts, answers, stops and restarts."""

import smtplib
from email.message import EmailMessage

import requests


def test_redis_restarts_on_same_port(redis_factory):
    server = redis_factory()
    client = server.client()
    assert client.ping()
    server.kill()
    server.start()
    assert server.client().ping()


def test_postgres_fresh_databases(postgres_server):
    import psycopg

    url = postgres_server.create_database()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.dsn(name)) as conn:
        assert conn.execute("select current_database()").fetchone()[0] == name


def test_prometheus_scrapes_itself(prometheus_factory):
    from tests.harness import free_port

    port = free_port()
    prom = prometheus_factory(
        [{"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        port=port,
    )
    prom.wait_for_value('up{job="prometheus"}', 1)


def test_alertmanager_webhook_reaches_http_sink(alertmanager_factory, http_sink):
    am = alertmanager_factory(
        {
            "route": {"receiver": "hook", "group_wait": "0s", "group_by": ["alertname"]},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": http_sink.url + "/hook"}]}],
        }
    )
    am.post_alerts([{"labels": {"alertname": "HarnessCheck"}}])
    [request] = http_sink.wait_for(1, path="/hook", timeout=30)
    assert request.json["alerts"][0]["labels"]["alertname"] == "HarnessCheck"
    assert am.alerts(alertname="HarnessCheck")


def test_smtp_sink_keeps_messages(smtp_sink):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "hello"
    msg.set_content("body text")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as client:
        client.send_message(msg)
    [mail] = smtp_sink.wait_for(1, timeout=10)
    assert mail.subject == "hello" and "body text" in mail.text()


def test_http_sink_answers_configured_status(http_sink):
    http_sink.status = 503
    assert requests.post(http_sink.url + "/x", json={"a": 1}).status_code == 503
    assert http_sink.received("/x")[0].json == {"a": 1}

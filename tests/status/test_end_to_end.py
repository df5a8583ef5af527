"""End to end: the energy pool runs low, and partners read it on the status page.

platform DB ─> exporter ─> Prometheus (rules/, EnergyPool* with a short `for`)
  ─> Alertmanager (the shipped routes, rendered with short timings)
  ─> ticketing under gunicorn: /internal/alertmanager/incidents ─> draft incident
  ─> staff publish it in the console (Chromium) ─> /status (a second Chromium,
     never reloaded) ─> incident.created to each partner's webhook (HTTP sink),
     one mail to the confirmed subscriber (SMTP sink)
  ─> the pool refills, the alert resolves, staff resolve ─> summary.json operational
  ─> a maintenance window silences the energy pool's alerts in Alertmanager, not the API's

Screenshots of the page (1280 px and 420 px wide) go to the run's tmp directory;
``STATUS_SCREENSHOTS=docs`` also copies them into docs/ (docs/status.md shows them).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from alertmanager.render import render as render_alertmanager
from prometheus.render import render as render_prometheus
from tests.harness import free_port, http_ready, wait_until
from tests.harness.app import create_test_app, dispose, ticketing_config
from tests.harness.monitoring import (
    EVALUATION_INTERVAL,
    SCRAPE_INTERVAL,
    copy_rules,
    exporter_config,
)
from tests.harness.outbox import quick_stop
from tests.harness.partner_platform import PlatformDatabase
from tests.harness.seed import partners

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-status-receiver-token-0123456789"
WAIT = 60

pytestmark = pytest.mark.slow


def wait(driver, timeout: float = WAIT) -> WebDriverWait:
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(WebDriverException,)
    )


def alertmanager_config(dest: Path, sink, base: str) -> Path:
    secrets = dest / "secrets"
    secrets.mkdir(parents=True)
    for name in ("smtp_password", "oncall_webhook_token"):
        (secrets / name).write_text("unused\n")
    (secrets / "slack_api_url").write_text(f"{sink.url}/slack\n")
    (secrets / "partner_webhooks_token").write_text(TOKEN)
    shipped = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    hooks = {
        r["name"]: f"{sink.url}/oncall" for r in shipped["receivers"] if r.get("webhook_configs")
    }
    hooks["partner-webhooks"] = f"{base}/internal/alertmanager/partner-alerts"
    hooks["status-incidents"] = f"{base}/internal/alertmanager/incidents"
    path = dest / "alertmanager.yml"
    path.write_text(
        render_alertmanager(
            secrets_dir=secrets,
            smtp_smarthost="127.0.0.1:1",
            webhook_urls=hooks,
            timings={"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"},
        )
    )
    return path


def shoot(driver, tmp_path: Path, name: str) -> None:
    # The whole page: the viewport as high as the document.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.set_window_size(width, height + 120)
    time.sleep(0.3)
    shot = tmp_path / name
    driver.save_screenshot(str(shot))
    if os.environ.get("STATUS_SCREENSHOTS") == "docs":
        shutil.copyfile(shot, ROOT / "docs" / name)


def test_energy_pool_low_to_published_incident_and_back(
    tmp_path,
    processes,
    prometheus_factory,
    alertmanager_factory,
    http_sink,
    smtp_sink,
    redis_url,
    browser,
    capsys,
):
    platform = PlatformDatabase(tmp_path / "platform.db", partners=2)

    # --- ticketing: migrated SQLite, partners A and B and an agent.
    ticketing_db = f"sqlite:///{tmp_path / 'ticketing.db'}"
    setup = create_test_app(ticketing_config(ticketing_db, ticketing={}))
    keys = partners(setup)
    dispose(setup)
    token_file = tmp_path / "receiver_token"
    token_file.write_text(TOKEN)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ticketing_yml = tmp_path / "ticketing.yml"
    ticketing_yml.write_text(
        yaml.safe_dump(
            {
                "outbox": {"poll_interval": "200ms"},
                "webhooks": {
                    "require_https": False,
                    "allowed_networks": ["127.0.0.1/32"],
                    "initial_backoff": "1s",
                    "max_backoff": "2s",
                    "receiver_token_file": str(token_file),
                },
                "console": {"poll_interval": "1s"},
                "status": {
                    "page_url": f"{base}/status",
                    "poll_interval": "1s",
                    "cache_ttl": "200ms",
                    "email": {"smtp_server": smtp_sink.address},
                },
            }
        )
    )
    am = alertmanager_factory(alertmanager_config(tmp_path / "am", http_sink, base))
    ticketing = processes.start(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "ticketing/runtime/gunicorn.conf.py")],
        tmp_path,
        name="ticketing",
        ready=http_ready(f"{base}/healthz"),
        env={
            "TICKETING_BIND": f"127.0.0.1:{port}",
            "TICKETING_WORKERS": "2",
            "TICKETING_DATABASE_URL": ticketing_db,
            "TICKETING_CONFIG": str(ticketing_yml),
            "ALERTMANAGER_URL": am.url,
            "REDIS_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "ticketing-metrics"),
        },
    )

    def summary() -> dict:
        return requests.get(f"{base}/api/v2/summary.json", timeout=10).json()

    # --- subscribers: both partners' webhooks, one confirmed email address.
    for key, path in ((keys.a, "/a"), (keys.b, "/b")):
        response = requests.post(
            f"{base}/api/v1/webhooks",
            json={"url": f"{http_sink.url}{path}"},
            headers={"X-API-Key": key},
            timeout=10,
        )
        assert response.status_code == 201, response.text
    subscribed = requests.post(
        f"{base}/status/subscribe",
        data={"email": "ops@acme.example", "components": ["energy-pool"]},
        timeout=10,
    )
    assert subscribed.status_code == 200, subscribed.text
    [request_mail] = smtp_sink.wait_for(1, timeout=30)
    link = next(w for w in request_mail.text().split() if "/status/subscription/" in w)
    assert requests.post(link + "/confirm", timeout=10).status_code == 200

    # --- exporter and Prometheus on the project's rules (short `for`).
    exporter_port = free_port()
    processes.start(
        [sys.executable, "-m", "exporter", "--config", str(exporter_config(tmp_path / "exp.yml"))],
        tmp_path,
        name="exporter",
        ready=http_ready(f"http://127.0.0.1:{exporter_port}/metrics"),
        env={
            "EXPORTER_LISTEN": f"127.0.0.1:{exporter_port}",
            "PLATFORM_DB_URL": platform.url,
            "TICKETING_DB_URL": ticketing_db,
            "REDIS_URL": redis_url,
            "PLATFORM_API_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    prom_port = free_port()
    prom = prometheus_factory(
        config=render_prometheus(
            targets={
                "prometheus": [f"127.0.0.1:{prom_port}"],
                "alertmanager": [am.address],
                "exporter": [f"127.0.0.1:{exporter_port}"],
                "ticketing": [f"127.0.0.1:{port}"],
            },
            alertmanagers=[am.address],
            rules_dir=copy_rules(tmp_path / "rules"),
            scrape_interval=f"{SCRAPE_INTERVAL}s",
            evaluation_interval=f"{EVALUATION_INTERVAL}s",
        ),
        port=prom_port,
    )
    prom.wait_for_value('platform_energy_pool_available_units{pool="main"}', 800)

    # --- a partner's browser shows the public page, never reloaded afterwards.
    public = browser(1280, 900)
    public.get(f"{base}/status")
    assert "All Systems Operational" in public.find_element(By.ID, "overall").text
    public.execute_script("window.notReloaded = true;")

    # --- the energy pool runs low: a draft incident, which nobody outside sees.
    low_at = platform.set_available(150)  # 15 %: EnergyPoolCritical
    staff = browser(1280, 900)
    staff.get(f"{base}/console/login")
    field = staff.find_element(By.ID, "api_key")
    field.send_keys(keys.staff)
    field.send_keys(Keys.ENTER)
    wait(staff).until(lambda d: "/console/login" not in d.current_url)

    def draft_listed(d):
        d.get(f"{base}/console/incidents")
        links = d.find_elements(By.CSS_SELECTOR, "#drafts a")
        return links[0] if links else False

    draft = wait(staff, 90).until(draft_listed)
    drafted = time.time()
    assert "Energy pool" in draft.text
    assert summary()["incidents"] == [] and summary()["status"]["indicator"] == "none"
    assert http_sink.received("/a") == [] and len(smtp_sink.messages) == 1

    # --- staff publish it in the console.
    draft.click()
    title = wait(staff).until(lambda d: d.find_element(By.NAME, "title"))
    title.clear()
    title.send_keys("Energy purchases may fail")
    staff.find_element(By.CSS_SELECTOR, "#publish-form textarea").send_keys(
        "The shared energy pool is nearly empty; we are refilling it."
    )
    staff.find_element(By.ID, "publish").click()
    wait(staff).until(lambda d: "Published" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    published = time.time()

    # --- the open page shows it without reload.
    wait(public).until(
        lambda d: "Energy purchases may fail" in d.find_element(By.ID, "status-body").text
    )
    shown = time.time()
    assert public.execute_script("return window.notReloaded === true;")
    assert public.find_element(By.ID, "overall").get_attribute("data-indicator") == "critical"
    state = public.find_element(By.ID, "component-energy-pool").get_attribute("data-status")
    assert state == "major_outage"
    shoot(public, tmp_path, "status-wide.png")
    phone = browser(420, 900)
    phone.get(f"{base}/status")
    assert phone.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    ), "the page scrolls sideways at 420 px"
    shoot(phone, tmp_path, "status-phone.png")

    # --- every subscribed partner's webhook gets incident.created once; one mail.
    for path in ("/a", "/b"):
        http_sink.wait_for(
            1, timeout=30, path=path, predicate=lambda r: r.json["type"] == "incident.created"
        )
    mail = wait_until(lambda: smtp_sink.messages[1:2], timeout=30, message="the incident mail")[0]
    assert mail.rcpt_tos == ["ops@acme.example"]
    assert mail.subject == "Incident: Energy purchases may fail"
    time.sleep(3)  # anything repeated would have arrived by now
    for path in ("/a", "/b"):
        created = [r for r in http_sink.received(path) if r.json["type"] == "incident.created"]
        assert len(created) == 1, path
    assert len(smtp_sink.messages) == 2

    # --- the pool refills: the alert resolves; staff resolve the incident.
    platform.set_available(900)
    wait_until(
        lambda: not am.alerts(alertname="EnergyPoolCritical"), timeout=60, message="resolved"
    )
    staff.refresh()
    staff.find_element(By.CSS_SELECTOR, "#resolve-form textarea").send_keys("The pool is full.")
    staff.find_element(By.ID, "resolve").click()
    wait(staff).until(lambda d: "Resolved" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    wait_until(
        lambda: summary()["status"]["indicator"] == "none", timeout=10, message="operational"
    )
    body = summary()
    assert body["incidents"] == []
    assert {c["status"] for c in body["components"]} == {"operational"}
    wait(public).until(lambda d: "All Systems Operational" in d.find_element(By.ID, "overall").text)
    for path in ("/a", "/b"):
        http_sink.wait_for(
            1, timeout=30, path=path, predicate=lambda r: r.json["type"] == "incident.resolved"
        )

    # --- a maintenance window silences its component's alert and not another's.
    now = datetime.now(UTC)
    am.post_alerts(
        [
            {
                "labels": {"alertname": name, "component": component, "severity": "warning"},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(hours=1)).isoformat(),
            }
            for name, component in (("PoolProbe", "energy-pool"), ("ApiProbe", "api"))
        ]
    )
    staff.get(f"{base}/console/maintenance")
    staff.find_element(By.NAME, "title").send_keys("Pool hardware swap")
    staff.find_element(By.CSS_SELECTOR, "input[name=components][value=energy-pool]").click()
    fmt = "%Y-%m-%dT%H:%M"
    for name, moment in (
        ("starts_at", now - timedelta(minutes=1)),
        ("ends_at", now + timedelta(hours=1)),
    ):
        staff.execute_script(
            "arguments[0].value = arguments[1];",
            staff.find_element(By.NAME, name),
            moment.strftime(fmt),
        )
    staff.find_element(By.CSS_SELECTOR, "form.stack button.primary").click()
    wait(staff).until(lambda d: "scheduled" in d.find_element(By.CSS_SELECTOR, ".notice").text)

    def silenced(name: str) -> list[str]:
        [alert] = am.alerts(alertname=name)
        return alert["status"]["silencedBy"]

    wait_until(lambda: silenced("PoolProbe"), timeout=30, message="the pool's alert silenced")
    assert silenced("ApiProbe") == []
    states = {c["id"]: c["status"] for c in summary()["components"]}
    assert states["energy-pool"] == "under_maintenance" and states["api"] == "operational"

    quick_stop(ticketing)
    with capsys.disabled():
        print(
            "\n  status page end to end:"
            f"\n    pool low -> draft incident in the console   {drafted - low_at:5.1f}s"
            f"\n    published -> shown on the open page        {shown - published:5.1f}s"
        )

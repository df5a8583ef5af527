"""docker-compose.yml, checked by docker-compose itself and against the repository.

``docker-compose config`` (the real tool, which validates the file against the
Compose specification's schema) resolves the file with a copy of
``.env.example``; the resolved services are then checked for what a server
deployment needs: pinned images, healthchecks, read-only configuration
mounts, only Grafana's and the ticket API's ports published, secrets only
from the env file, and addresses that agree with prometheus/prometheus.yml and
Grafana's provisioning. The Alertmanager configuration step is run for real
and its output checked by ``amtool``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# Variables of .env.example that would take precedence if set in the test's environment.
ENV_NAMES = re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M)
#: What the HA block of .env.example says to set for ``--profile ha``.
HA_ENV = {
    "PROMETHEUS_CONFIG": "prometheus-ha.yml",
    "ALERTMANAGER_CLUSTER_LISTEN": "0.0.0.0:9094",
    "ALERTMANAGER_URLS": "http://alertmanager:9093,http://alertmanager-b:9093",
    "PARTNER_WEBHOOKS_EXTRA_URLS": "http://ticketing-b:8000/internal/alertmanager/partner-alerts",
    "STATUS_INCIDENTS_EXTRA_URLS": "http://ticketing-b:8000/internal/alertmanager/incidents",
}
HA_SERVICES = {"ticketing-b", "prometheus-b", "alertmanager-b", "victoriametrics"}
SECRETS = {
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "SMTP_PASSWORD",
    "SLACK_API_URL",
    "ONCALL_WEBHOOK_TOKEN",
    "PARTNER_WEBHOOKS_TOKEN",
}
ONE_SHOT = {"alertmanager-config"}


def compose(*args: str, env_file: Path) -> subprocess.CompletedProcess:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.fail("docker-compose is not installed; ./dev deps installs it")
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    return subprocess.run(
        [
            docker_compose,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copy(ENV_EXAMPLE, path)
    return path


@pytest.fixture(scope="module")
def resolved(env_file) -> dict:
    result = compose("config", env_file=env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(resolved) -> dict:
    return resolved["services"]


def test_compose_file_is_valid(env_file):
    result = compose("config", "-q", env_file=env_file)
    assert result.returncode == 0, result.stderr


def test_secrets_must_come_from_the_env_file(tmp_path):
    empty = tmp_path / ".env"
    empty.write_text("")
    result = compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_the_stack_has_every_component(services):
    assert set(services) == {
        "postgres",
        "redis",
        "ticketing",
        "exporter",
        "prometheus",
        "alertmanager-config",
        "alertmanager",
        "grafana",
        "mailpit",
        "demo-platform",
        *HA_SERVICES,
    }
    assert services["demo-platform"]["profiles"] == ["demo"]
    for name in HA_SERVICES:
        assert services[name]["profiles"] == ["ha"], name
    for name in set(services) - HA_SERVICES - {"demo-platform"}:
        assert "profiles" not in services[name], name


def test_only_grafana_and_the_ticket_api_are_published(services):
    published = {
        name: [str(p["target"]) for p in svc.get("ports", [])]
        for name, svc in services.items()
        if svc.get("ports")
    }
    assert published == {"grafana": ["3000"], "ticketing": ["8000"], "ticketing-b": ["8000"]}


def test_images_are_pinned(services):
    for name, svc in services.items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), (name, image)
    assert services["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    assert services["alertmanager"]["image"] == "prom/alertmanager:v0.25.0"
    assert services["grafana"]["image"].startswith("grafana/grafana:10.4.")


def test_long_running_services_have_healthchecks(services):
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert svc["restart"] == "no"
            continue
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert svc["restart"] == "unless-stopped", name


def bind_mounts(svc: dict) -> list[tuple[Path, str, bool]]:
    """(host path, container path, read-only) of each bind mount of a resolved service."""
    mounts = []
    for volume in svc.get("volumes", []):
        parts = volume.split(":")
        if parts[0].startswith("/"):
            mounts.append((Path(parts[0]), parts[1], len(parts) > 2 and parts[2] == "ro"))
    return mounts


def test_configuration_folders_are_mounted_read_only(services):
    expected = {
        "prometheus": {
            ROOT / "prometheus": "/etc/prometheus",
            ROOT / "rules": "/etc/prometheus/rules",
        },
        "alertmanager": {ROOT / "alertmanager": "/etc/alertmanager"},
        "alertmanager-config": {ROOT / "alertmanager": "/etc/alertmanager"},
        "grafana": {
            ROOT / "grafana" / "provisioning": "/etc/grafana/provisioning",
            ROOT / "grafana" / "dashboards": "/etc/grafana/dashboards",
        },
    }
    for name, mounts in expected.items():
        found = {host: (target, ro) for host, target, ro in bind_mounts(services[name])}
        for host, target in mounts.items():
            assert host.is_dir(), host
            assert found.get(host) == (target, True), f"{name}: {host} -> {found.get(host)}"
    for name, svc in services.items():
        for host, _target, ro in bind_mounts(svc):
            assert ro, f"{name} mounts {host} writable"
            assert host == ROOT or ROOT in host.parents, f"{name} mounts {host} from outside"


def test_secrets_are_never_literal_in_the_compose_file():
    text = COMPOSE_FILE.read_text()
    for name in SECRETS:
        for line in text.splitlines():
            if re.match(rf"\s*{name}:", line):
                assert re.search(rf"\$\{{{name}[:}}]", line), line
    assert "change-me" not in text
    env_example = ENV_EXAMPLE.read_text()
    for name in ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert re.search(rf"^{name}=change-me", env_example, re.M), f"{name} is a placeholder"


def test_env_example_defines_every_variable_the_compose_file_uses():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    assert used <= set(ENV_NAMES), f"missing in .env.example: {used - set(ENV_NAMES)}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_prometheus_scrapes_the_compose_services(services):
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    listening = {
        "prometheus": "9090",
        "alertmanager": "9093",
        "exporter": services["exporter"]["environment"]["EXPORTER_LISTEN"].rpartition(":")[2],
        "ticketing": services["ticketing"]["environment"]["TICKETING_BIND"].rpartition(":")[2],
    }
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert targets == {f"{host}:{port}" for host, port in listening.items()}
    assert all(host in services for host in listening)
    # rule_files are relative to /etc/prometheus, where rules/ is mounted.
    assert config["rule_files"] == ["rules/*.rules.yml"]
    [am] = config["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_grafana_environment_matches_its_provisioning(services):
    env = services["grafana"]["environment"]
    assert env["PROMETHEUS_URL"] == "http://prometheus:9090"
    dashboards_dir = env["PARTNERWATCH_DASHBOARDS_DIR"]
    mounts = bind_mounts(services["grafana"])
    assert (ROOT / "grafana" / "dashboards", dashboards_dir, True) in mounts
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_dir + "/")
    assert (ROOT / "grafana" / "dashboards" / Path(home).name).is_file()


def test_app_services_use_files_that_exist(services):
    image_files = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source
                image_files.add(source)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in (
        "exporter/partnerwatch.yml",
        "ticketing/runtime/gunicorn.conf.py",
        "ticketing/migrations",
    ):
        assert (ROOT / needed).exists(), needed
        assert needed.split("/")[0] in image_files and needed.split("/")[0] not in ignored
    assert "exporter/partnerwatch.yml" in " ".join(services["exporter"]["command"])
    assert "ticketing/runtime/gunicorn.conf.py" in " ".join(services["ticketing"]["command"])
    assert "db upgrade" in " ".join(services["ticketing"]["command"]), "migrations on start"
    assert services["ticketing"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_alertmanager_config_step_renders_a_valid_config(services, tmp_path, alertmanager_factory):
    """Run the step's script as the container would; Alertmanager must load its output."""
    svc = services["alertmanager-config"]
    script = svc["command"][0].replace("$$", "$")
    out = tmp_path / "rendered"
    env = {
        **{k: str(v) for k, v in svc["environment"].items()},
        "PATH": os.environ["PATH"],
        "ALERTMANAGER_DIR": str(ROOT / "alertmanager"),
        "RENDERED_DIR": str(out),
        "SLACK_API_URL": "https://hooks.slack.example/T0/B0/x",
        "ONCALL_WEBHOOK_URL": "",
        "ALERTMANAGER_WEBHOOK_ONCALL_CRITICAL": "https://pager.example.org/hook",
        "SMTP_PASSWORD": "s3cret",
    }
    bindir = tmp_path / "bin"  # `python` as in the image
    bindir.mkdir()
    (bindir / "python").symlink_to(Path(sys.executable))
    env["PATH"] = f"{bindir}:{env['PATH']}"
    result = subprocess.run(
        ["sh", "-euc", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert (out / "secrets" / "smtp_password").read_text() == "s3cret"
    assert (out / "secrets" / "slack_api_url").read_text() == "https://hooks.slack.example/T0/B0/x"
    assert oct((out / "secrets" / "smtp_password").stat().st_mode & 0o777) == "0o600"
    rendered = yaml.safe_load((out / "alertmanager.yml").read_text())
    assert rendered["global"]["smtp_auth_password_file"] == str(out / "secrets" / "smtp_password")
    assert rendered["global"]["smtp_smarthost"] == "mailpit:1025"
    hooks = [w["url"] for r in rendered["receivers"] for w in r.get("webhook_configs", [])]
    assert "https://pager.example.org/hook" in hooks
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is not installed; ./dev deps installs it")
    check = subprocess.run(
        [amtool, "check-config", str(out / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    alertmanager = alertmanager_factory(out / "alertmanager.yml")
    assert alertmanager.alerts() == []


# ------------------------------------------------------------------ profile ha


@pytest.fixture(scope="module")
def ha_services(tmp_path_factory) -> dict:
    """The services resolved with the HA block of .env.example filled in."""
    path = tmp_path_factory.mktemp("compose-ha") / ".env"
    text = ENV_EXAMPLE.read_text()
    for name, value in HA_ENV.items():
        text, n = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert n == 1, f"{name} is not in .env.example"
    path.write_text(text)
    result = compose("--profile", "ha", "config", env_file=path)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def flag(svc: dict, name: str) -> list[str]:
    return [arg.split("=", 1)[1] for arg in svc["command"] if arg.startswith(f"{name}=")]


def test_prometheus_ha_config_is_rendered_from_prometheus_yml():
    from prometheus.render import HA_CONFIG, render_compose_ha

    assert HA_CONFIG.read_text() == render_compose_ha(), (
        "prometheus/prometheus-ha.yml is stale: python -m prometheus.render > "
        "prometheus/prometheus-ha.yml"
    )


def test_prometheus_ha_config_passes_promtool_with_the_rules(tmp_path):
    """As mounted in the containers: the file next to rules/."""
    (tmp_path / "prometheus-ha.yml").write_text(
        (ROOT / "prometheus" / "prometheus-ha.yml").read_text()
    )
    (tmp_path / "rules").symlink_to(ROOT / "rules")
    check = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus-ha.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout and "rules" in check.stdout


def test_both_prometheus_replicas_run_the_ha_config_with_their_own_replica_label(ha_services):
    replicas = {}
    for name in ("prometheus", "prometheus-b"):
        svc = ha_services[name]
        assert flag(svc, "--config.file") == ["/etc/prometheus/prometheus-ha.yml"], name
        assert "--enable-feature=expand-external-labels" in svc["command"]
        replicas[name] = svc["environment"]["PROMETHEUS_REPLICA"]
        assert (ROOT / "prometheus", "/etc/prometheus", True) in bind_mounts(svc)
        assert (ROOT / "rules", "/etc/prometheus/rules", True) in bind_mounts(svc)
    assert len(set(replicas.values())) == 2, replicas
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus-ha.yml").read_text())
    assert config["global"]["external_labels"] == {"replica": "${PROMETHEUS_REPLICA}"}


def test_ha_addresses_agree_with_the_compose_services(ha_services):
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus-ha.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    [am] = config["alerting"]["alertmanagers"]
    alertmanagers = set(am["static_configs"][0]["targets"])
    assert alertmanagers == {"alertmanager:9093", "alertmanager-b:9093"}
    [remote] = config["remote_write"]
    assert remote["url"] == "http://victoriametrics:8428/api/v1/write"
    for address in targets | alertmanagers | {"victoriametrics:8428"}:
        assert address.split(":")[0] in ha_services, address
    # The replica label stays out of alerts and of the long-term store.
    drop = [{"action": "labeldrop", "regex": "replica"}]
    assert config["alerting"]["alert_relabel_configs"] == drop
    assert remote["write_relabel_configs"] == drop
    # VictoriaMetrics keeps one sample per scrape interval of the pair.
    vm = ha_services["victoriametrics"]
    assert flag(vm, "-dedup.minScrapeInterval") == [config["global"]["scrape_interval"]]
    assert flag(vm, "-httpListenAddr") == [":8428"]
    assert ha_services["grafana"]["environment"]["VICTORIAMETRICS_URL"] == (
        "http://victoriametrics:8428"
    )


def test_the_alertmanagers_form_one_cluster_and_ticketing_posts_to_both(ha_services):
    assert flag(ha_services["alertmanager"], "--cluster.listen-address") == ["0.0.0.0:9094"]
    assert flag(ha_services["alertmanager-b"], "--cluster.listen-address") == ["0.0.0.0:9094"]
    assert flag(ha_services["alertmanager-b"], "--cluster.peer") == ["alertmanager:9094"]
    for name in ("ticketing", "ticketing-b"):
        urls = ha_services[name]["environment"]["ALERTMANAGER_URL"].split(",")
        assert urls == ["http://alertmanager:9093", "http://alertmanager-b:9093"], name
    # One instance migrates; the second starts once the first is healthy.
    assert "db upgrade" not in " ".join(ha_services["ticketing-b"]["command"])
    assert ha_services["ticketing-b"]["depends_on"]["ticketing"]["condition"] == "service_healthy"
    env_a, env_b = (ha_services[n]["environment"] for n in ("ticketing", "ticketing-b"))
    assert env_a["TICKETING_DATABASE_URL"] == env_b["TICKETING_DATABASE_URL"]
    assert env_a["REDIS_URL"] == env_b["REDIS_URL"]


def test_without_the_ha_settings_alertmanager_stays_a_single_node(services):
    assert flag(services["alertmanager"], "--cluster.listen-address") == [""]
    assert flag(services["prometheus"], "--config.file") == ["/etc/prometheus/prometheus.yml"]


@pytest.mark.parametrize(
    "name, receiver",
    [
        ("partner-webhooks", "/internal/alertmanager/partner-alerts"),
        ("status-incidents", "/internal/alertmanager/incidents"),
    ],
)
def test_the_ticket_service_receivers_are_notified_on_every_ticketing_instance(
    ha_services, services, name, receiver
):
    from alertmanager.render import render

    variable = "ALERTMANAGER_EXTRA_WEBHOOKS_" + name.upper().replace("-", "_")
    env = ha_services["alertmanager-config"]["environment"]
    extra = env[variable].split(",")
    assert extra == [f"http://ticketing-b:8000{receiver}"]
    assert services["alertmanager-config"]["environment"][variable] in ("", None)
    rendered = yaml.safe_load(render(extra_webhook_urls={name: extra}))
    [found] = [r for r in rendered["receivers"] if r["name"] == name]
    configs = found["webhook_configs"]
    assert [c["url"] for c in configs] == [
        f"http://ticketing:8000{receiver}",
        f"http://ticketing-b:8000{receiver}",
    ]
    assert all(c["url"].split("//")[1].split(":")[0] in ha_services for c in configs)
    # The same token and settings on each.
    assert configs[0] | {"url": ""} == configs[1] | {"url": ""}

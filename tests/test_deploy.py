"""Deployment files are validated by parsing (no Docker engine runs here)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_compose_has_every_process_and_no_literal_secret() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "migrate", "web", "worker", "connectors", "scheduler"} <= set(services)
    for name in ("web", "worker", "connectors", "scheduler"):
        svc = services[name]
        assert svc["command"][0] == "aduan"
        assert svc["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert "${POSTGRES_PASSWORD}" in svc["environment"]["DATABASE_URL"]
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--appendonly" in services["redis"]["command"]  # the queue survives a Redis restart
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert not re.search(r"(?i)(token|password|secret)\s*:\s*[A-Za-z0-9]{8,}", text)


def test_systemd_units_parse_and_run_aduan_commands() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"aduan-web.service", "aduan-worker@.service", "aduan-connectors.service",
                                       "aduan-scheduler.service"}
    for unit in units:
        cp = configparser.ConfigParser(strict=False, interpolation=None)
        cp.read(unit)
        start = cp["Service"]["ExecStart"]
        assert start.startswith("/opt/aduan/.venv/bin/aduan ")
        assert cp["Service"]["EnvironmentFile"] == "/etc/aduan/aduan.env"
        assert cp["Service"]["Restart"] == "always"
        assert cp["Install"]["WantedBy"] == "multi-user.target"

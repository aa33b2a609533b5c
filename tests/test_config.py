"""config.yaml validation: every problem is named by its key path, secrets come from the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.config import ConfigError, load_config, parse_config
from tests.conftest import ROOT, base_config


def problems(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    return str(err.value)


def test_shipped_config_is_valid_and_has_the_opd_catalogue() -> None:
    cfg = load_config(ROOT / "config.yaml")
    codes = [o.code for o in cfg.opds]
    assert len(codes) == 19 and "DSDABM" in codes and "KEWILAYAHAN" in codes
    assert cfg.sla.opd_response_minutes == 60 and cfg.sla.citizen_feedback_hours == 24
    assert "{ticket}" in cfg.templates["ack"]


def test_wrong_enum_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "y")
    raw = base_config()
    raw["channels"]["telegram"].update(enabled=True, mode="push")
    assert "channels.telegram.mode: must be 'webhook' or 'polling'" in problems(raw)


def test_unknown_key_and_wrong_type_are_named() -> None:
    raw = base_config()
    raw["sla"]["opd_respons_minutes"] = 30
    raw["dedup"]["repeat_window_hours"] = "tiga hari"
    text = problems(raw)
    assert "sla.opd_respons_minutes: unknown key" in text
    assert "dedup.repeat_window_hours:" in text


def test_missing_secret_only_matters_for_an_enabled_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    raw = base_config()
    parse_config(raw)  # disabled: fine without the secret
    raw["channels"]["telegram"]["enabled"] = True
    assert "channels.telegram.token: environment variable TELEGRAM_BOT_TOKEN is not set" in problems(raw)


def test_literal_secret_in_the_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = base_config()
    raw["channels"]["telegram"]["token"] = "123456:real-token-pasted-here"
    assert "channels.telegram.token: secrets must not be written in the file" in problems(raw)


def test_unknown_channel_and_unknown_opd_in_rule() -> None:
    raw = base_config()
    raw["channels"]["fax"] = {"enabled": True}
    raw["classify"]["rules"] = [{"opd": "DINAS_X", "phrases": ["x"]}]
    text = problems(raw)
    assert "channels.fax: unknown channel" in text
    assert "classify.rules.0.opd: unknown OPD code 'DINAS_X'" in text


def test_cli_stops_with_one_clear_message_and_nonzero_exit(tmp_path: Path) -> None:
    raw = base_config()
    raw["hub"]["ticket_prefix"] = "adu-2"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "core.cli", "--config", str(path), "migrate"],
                          capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin",
                                                                         "ADUAN_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert "hub.ticket_prefix:" in proc.stderr and "Traceback" not in proc.stderr

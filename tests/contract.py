"""The contract every connector's tests subclass (after kombu's transport contract tests).

A subclass names its connector class, its fixture folder (tests/fixtures/<name>/*.json, each
{"payload": ..., "expect": {...} | null, "error": bool}), settings that validate, settings that
must be refused with the offending key named, and a connector pointed at a closed port.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Outgoing, ParseError, RetryableError
from core.config import ConfigError, parse_config
from core.message import InboundMessage

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture_files(folder: str) -> list[Path]:
    return sorted((FIXTURES / folder).glob("*.json"))


class ConnectorContract:
    connector: Any
    fixtures: str
    good_settings: dict[str, Any]
    bad_settings: tuple[dict[str, Any], str]
    send_to: str = "1"

    def unreachable_connector(self) -> Any:
        raise NotImplementedError

    def test_fixtures_exist(self) -> None:
        assert len(_fixture_files(self.fixtures)) >= 3, "each connector ships at least three payload fixtures"

    def test_fixtures_parse(self) -> None:
        for path in _fixture_files(self.fixtures):
            case = json.loads(path.read_text(encoding="utf-8"))
            if case.get("error"):
                with pytest.raises(ParseError):
                    self.connector.parse(case["payload"])
                continue
            msg = self.connector.parse(case["payload"])
            if case["expect"] is None:
                assert msg is None, path.name
                continue
            assert isinstance(msg, InboundMessage), path.name
            got = json.loads(msg.to_json())
            for key, want in case["expect"].items():
                assert got[key] == want, f"{path.name}: {key} = {got[key]!r}, expected {want!r}"
            assert InboundMessage.from_json(msg.to_json()) == msg  # exact JSON round trip

    def test_parse_is_pure_and_rejects_garbage(self) -> None:
        for junk in ({}, {"unexpected": True}, [], "text", None, 42):
            try:
                result = self.connector.parse(junk)
            except ParseError:
                continue
            assert result is None

    def test_good_settings_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        cfg = self._parse(self.good_settings, monkeypatch)
        assert cfg.channel(self.connector.name).enabled

    def test_bad_settings_refused_by_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        block, key = self.bad_settings
        with pytest.raises(ConfigError) as err:
            self._parse(block, monkeypatch)
        assert f"channels.{self.connector.name}.{key}" in str(err.value) or \
            f"channels.{self.connector.name}: " in str(err.value) and key in str(err.value)

    def test_network_error_is_retryable(self) -> None:
        conn = self.unreachable_connector()
        with pytest.raises(RetryableError):
            conn.send(Outgoing(to=self.send_to, text="Tes koneksi", idempotency_key="contract"))

    def _parse(self, block: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
        """Secrets go through the environment, as in production."""
        settings_model = self.connector.Settings
        secret_keys = {n for n, f in settings_model.model_fields.items() if "SecretStr" in str(f.annotation)}
        raw_block = {}
        for key, value in block.items():
            if key in secret_keys:
                var = f"CONTRACT_{self.connector.name.upper()}_{key.upper()}"
                monkeypatch.setenv(var, str(value))
                raw_block[key] = "${" + var + "}"
            else:
                raw_block[key] = value
        return parse_config({"channels": {self.connector.name: raw_block}})

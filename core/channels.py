"""Connector instances for the enabled channels, built once per process from the configuration."""

from __future__ import annotations

from connectors import load_connector
from connectors.base import Connector
from core.config import AppConfig

_INSTANCES: dict[tuple[int, str], Connector] = {}


def get_connector(cfg: AppConfig, channel: str) -> Connector:
    """The configured connector for `channel` (KeyError if the channel is not configured)."""
    key = (id(cfg), channel)
    if key not in _INSTANCES:
        _INSTANCES[key] = load_connector(channel)(cfg.channel(channel))
    return _INSTANCES[key]


def enabled_connectors(cfg: AppConfig) -> list[Connector]:
    return [get_connector(cfg, name) for name in cfg.enabled_channels()]

"""Channel connectors. The registry maps a channel name to its class, imported lazily.

Adding a channel = one module here, one line below, one `channels:` block in config.yaml,
its fake provider server in `connectors/fakes/`, and its tests. `core/` never names a channel.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.base import Connector

REGISTRY: dict[str, str] = {
    "telegram": "connectors.telegram:TelegramConnector",
    "sms": "connectors.sms:SmsConnector",
    "whatsapp": "connectors.whatsapp:WhatsAppConnector",
    "twitter": "connectors.twitter:TwitterConnector",
    "instagram": "connectors.instagram:InstagramConnector",
    "open311": "connectors.open311:Open311Connector",
}


@cache
def load_connector(name: str) -> type["Connector"]:
    """The connector class for `name` (KeyError names the known channels)."""
    try:
        path = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown channel {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)

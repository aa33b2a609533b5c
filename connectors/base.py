"""The small base class every channel connector implements.

A connector does three things and nothing else:
- `parse(raw) -> InboundMessage | None`: pure, a provider payload (dict) in, no SDK, no I/O;
- `router()` (push channels) or `run()` (pollers): receive payloads and hand each parsed
  message to `core.intake.accept`, which stores it before the provider is told "OK";
- `send(Outgoing) -> SendResult`: deliver one reply through the provider's client library.
Network trouble is raised as `RetryableError`, a refusal that retrying cannot fix as `PermanentError`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from core.message import InboundMessage


class ChannelSettings(BaseModel):
    """Settings every channel block has; connectors subclass it with their own keys."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    templates: dict[str, str] = {}
    max_text: int = 4000  # longest single outbound text this channel accepts

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        from core.config import known_templates

        return known_templates(v)


class ParseError(ValueError):
    """The payload is not something this provider sends: answer 400, store nothing."""


def strict_parse(fn):  # type: ignore[no-untyped-def]
    """Decorator for `parse`: any malformed field (wrong type, missing key, invalid value) becomes a
    ParseError naming the problem, so webhooks answer 400 and never 500."""
    import functools

    @functools.wraps(fn)
    def wrapper(cls, raw):  # type: ignore[no-untyped-def]
        try:
            return fn(cls, raw)
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            raise ParseError(f"malformed payload: {type(exc).__name__}: {str(exc)[:200]}") from None

    return wrapper


class RetryableError(Exception):
    """Try again later (network error, 5xx, 429). `retry_after` in seconds when the provider says."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The provider refused for good (bad recipient, opted out, blocked). `code` is the provider's."""

    def __init__(self, message: str, code: str | None = None, opt_out: bool = False):
        super().__init__(message)
        self.code = code
        self.opt_out = opt_out


@dataclass
class Outgoing:
    """One reply to deliver: to a contact's address on this channel, optionally as a reply."""

    to: str
    text: str
    reply_to: str | None = None  # provider id of the citizen message being answered
    public: bool = False  # the reply will be visible to everyone (tweet, comment)
    context: dict[str, Any] = field(default_factory=dict)  # the inbound message's raw payload
    idempotency_key: str = ""


@dataclass
class SendResult:
    provider_id: str
    parts: int = 1
    state: str = "sent"


class Connector:
    name: ClassVar[str]
    Settings: ClassVar[type[ChannelSettings]] = ChannelSettings
    polls: ClassVar[bool] = False  # True when `run()` must be started by `aduan up`

    def __init__(self, settings: ChannelSettings):
        self.settings = settings

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> InboundMessage | None:
        """Turn one provider payload into the normalised message (None: nothing for the hub)."""
        raise NotImplementedError

    def router(self) -> Any | None:
        """A FastAPI APIRouter with this channel's webhook routes, or None."""
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll the provider until `stop` is set (only for connectors with polls = True)."""
        await stop.wait()

    def send(self, out: Outgoing) -> SendResult:
        raise NotImplementedError

    def limits(self, out: Outgoing) -> list[tuple[str, int, float]]:
        """Provider rate limits that apply to this message: (key, count, per seconds), shared in Redis."""
        return []

    def check(self) -> str:
        """'Test connection': a short human-readable result, raising on failure."""
        return "ok"

    def split(self, text: str) -> list[str]:
        """Split a long reply at whitespace into parts of at most `max_text` characters."""
        return split_text(text, self.settings.max_text)


def split_text(text: str, limit: int) -> list[str]:
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit + 1)
        cut = cut if cut > limit // 2 else limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts

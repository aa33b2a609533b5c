"""Hostile and broken input: property-based tests on the Telegram parser and webhook, floods, blocks.

Only clean 4xx answers, never a 500, never a partial write."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlmodel import select

from connectors.base import ParseError
from connectors.fakes import serve
from connectors.telegram import TelegramConnector
from core.message import InboundMessage
from core.models import Contact, Message, Ticket

SECRET = "bad-input-secret"
NASTY_TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", "\u200b\u200b\u200b", "\u202eosla\u202c", "😡😡😡", "'; DROP TABLE message; --",
                     "<script>alert(1)</script>", "\x00\x01\x02", "a" * 25_000, "ﷺ" * 50]),
)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | NASTY_TEXT,
                       lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=5),
                       max_leaves=20)


def _update(text: object, chat: object = 123, date: object = 1764384000, mid: object = 1) -> dict:
    return {"update_id": 1, "message": {"message_id": mid, "date": date, "text": text,
                                        "chat": {"id": chat, "type": "private"}, "from": {"id": 5, "first_name": "X"}}}


@settings(max_examples=300, deadline=None)
@given(payload=JSONISH)
def test_parser_never_crashes_on_arbitrary_json(payload: object) -> None:
    try:
        result = TelegramConnector.parse(payload)  # type: ignore[arg-type]
    except ParseError:
        return
    assert result is None or isinstance(result, InboundMessage)


@settings(max_examples=300, deadline=None)
@given(text=JSONISH, chat=JSONISH, date=JSONISH, mid=JSONISH)
def test_parser_on_wrong_types_in_known_fields(text: object, chat: object, date: object, mid: object) -> None:
    try:
        result = TelegramConnector.parse(_update(text, chat, date, mid))
    except ParseError:
        return
    assert result is None or InboundMessage.from_json(result.to_json()) == result


@pytest.fixture
def web(sqlite_hub):  # type: ignore[no-untyped-def]
    from core.web import create_app

    sqlite_hub.mp.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    sqlite_hub.mp.setenv("TELEGRAM_SECRET_TOKEN", SECRET)
    sqlite_hub.configure(telegram={"enabled": True, "mode": "webhook", "api_base": "http://127.0.0.1:9"})
    running = serve(create_app(sqlite_hub.cfg))
    yield sqlite_hub, running.url
    running.stop()


def test_webhook_answers_only_clean_statuses_and_writes_nothing_on_rejects(web) -> None:  # type: ignore[no-untyped-def]
    hub, url = web
    statuses: list[int] = []

    def stored() -> int:
        with hub.session() as s:
            return len(s.exec(select(Message)).all())

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=st.one_of(JSONISH.map(lambda v: json.dumps(v).encode()), st.binary(max_size=300)),
           text=NASTY_TEXT)
    def check(body: bytes, text: str) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        before = stored()
        r = httpx.post(f"{url}/webhooks/telegram", content=body, headers=headers, timeout=30)
        statuses.append(r.status_code)
        assert r.status_code in (200, 400), r.text
        if r.status_code == 400:
            assert stored() == before  # a refused body writes nothing
        ok = httpx.post(f"{url}/webhooks/telegram", json=_update(text, chat=77, mid=len(statuses)), headers=headers,
                        timeout=30)
        assert ok.status_code in (200, 400)

    check()
    assert 400 in statuses


def test_a_flooding_sender_is_throttled_and_flagged_not_acknowledged(sqlite_hub) -> None:  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.intake import store
    from core.pipeline import process

    hub = sqlite_hub
    t0 = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)
    outcomes = []
    for i in range(30):
        msg = InboundMessage(channel="telegram", external_id=f"f{i}", sender="flood", text=f"jalan rusak parah {i}",
                             received_at=t0 + timedelta(seconds=i))
        with session_scope() as s:
            row, _ = store(s, msg)
            outcomes.append(process(s, hub.cfg, row.id))
    throttled = [o for o in outcomes if o.status == "throttled"]
    assert len(throttled) == 10  # the 21st message in a minute onwards
    assert sum(len(o.outbound) for o in outcomes) <= 2  # no acknowledgement per message
    with hub.session() as s:
        assert s.exec(select(Contact).where(Contact.address == "flood")).one().flagged_at is not None


def test_a_blocked_sender_gets_no_ticket_and_no_reply(sqlite_hub) -> None:  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.intake import store
    from core.pipeline import process

    msg = InboundMessage(channel="telegram", external_id="b1", sender="blocked", text="jalan berlubang di Jl. Mawar",
                         received_at=datetime.now(timezone.utc))
    with session_scope() as s:
        row, _ = store(s, msg)
        s.exec(select(Contact).where(Contact.address == "blocked")).one().blocked = True
        s.flush()
        out = process(s, sqlite_hub.cfg, row.id)
    assert out.status == "blocked" and out.outbound == []
    with sqlite_hub.session() as s:
        assert s.exec(select(Ticket)).all() == []


@pytest.mark.parametrize("channel", sorted(__import__("connectors").REGISTRY))
def test_every_connector_parser_survives_arbitrary_payloads(channel: str) -> None:
    """Any JSON-like payload: a normalised message, None, or a ParseError; never another exception."""
    from connectors import load_connector

    parse = load_connector(channel).parse

    @settings(max_examples=200, deadline=None)
    @given(payload=JSONISH)
    def check(payload: object) -> None:
        try:
            result = parse(payload)  # type: ignore[arg-type]
        except ParseError:
            return
        assert result is None or InboundMessage.from_json(result.to_json()) == result

    check()


@pytest.mark.parametrize("channel", sorted(__import__("connectors").REGISTRY))
def test_every_connector_parser_survives_broken_versions_of_its_own_fixtures(channel: str) -> None:
    """Each documented payload with fields removed or replaced by wrong types or nasty text."""
    from pathlib import Path

    from connectors import load_connector

    parse = load_connector(channel).parse
    fixtures = [json.loads(p.read_text(encoding="utf-8"))["payload"]
                for p in sorted((Path(__file__).parent / "fixtures" / channel).glob("*.json"))]
    assert fixtures, f"{channel} has no payload fixtures"

    def mutate(node: object, draw) -> object:  # type: ignore[no-untyped-def]
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node, key=str)))
            choice = draw(st.integers(0, 2))
            out = dict(node)
            if choice == 0:
                out.pop(key)
            elif choice == 1:
                out[key] = draw(JSONISH)
            else:
                out[key] = mutate(out[key], draw)
            return out
        if isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            return [mutate(v, draw) if j == i else v for j, v in enumerate(node)]
        return draw(JSONISH)

    @settings(max_examples=200, deadline=None)
    @given(data=st.data(), base=st.sampled_from(fixtures))
    def check(data, base) -> None:  # type: ignore[no-untyped-def]
        payload = mutate(base, data.draw)
        try:
            result = parse(payload)
        except ParseError:
            return
        assert result is None or InboundMessage.from_json(result.to_json()) == result

    check()

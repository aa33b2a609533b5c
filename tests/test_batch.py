"""Batched processing: many messages per job behave exactly as one at a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlmodel import select

from core.intake import accept_many
from core.message import InboundMessage
from core.models import Message, Ticket

FLOOD = ["Banjir setinggi lutut di Jl. Dharmahusada depan RS, saluran got tersumbat sampah",
         "jl dharmahusada banjir lagi min, got depan rumah sakit buntu",
         "Dharmahusada kebanjiran, air dari got meluber ke jalan depan RS",
         "banjir di jalan dharmahusada dekat rumah sakit, gorong2 mampet",
         "Tolong got di Jl. Dharmahusada depan RS dibersihkan, banjir terus"]
OTHERS = ["Lampu PJU mati di gang 3 Jl. Kalijudan sudah seminggu",
          "Sampah menumpuk di TPS Keputih belum diangkut tiga hari",
          "Air PDAM mati sejak pagi di Kelurahan Ketintang",
          "Pohon tumbang menutup Jl. Diponegoro, mohon dipotong",
          "Ada ular kobra masuk rumah warga di Rungkut, tolong damkar"]


def test_one_batch_with_five_reports_of_one_flood_makes_one_case(hub) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
    msgs = [InboundMessage(channel="telegram", external_id=f"b{i}", sender=f"citizen-{i}", text=text,
                           received_at=t0 + timedelta(minutes=i)) for i, text in enumerate(FLOOD + OTHERS)]
    results = accept_many(msgs)
    assert all(r.created and r.queued for r in results)
    again = accept_many(msgs[:3])  # a poller handing over the same page again
    assert not any(r.created for r in again)
    hub.run_worker()  # one drain job takes the whole batch
    with hub.session() as s:
        tickets = s.exec(select(Ticket)).all()
        states = {m.state for m in s.exec(select(Message).where(Message.direction == "in")).all()}
        acks = s.exec(select(Message).where(Message.direction == "out")).all()
    flood = [t for t in tickets if t.reporters > 1]
    assert states == {"processed"}
    assert len(flood) == 1 and flood[0].reporters == 5 and flood[0].opd_code == "DSDABM"
    assert len(tickets) == 1 + len(OTHERS)
    assert len(acks) == 10 and len({a.reply_to_id for a in acks}) == 10  # every reporter answered once

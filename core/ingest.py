"""`aduan ingest`: feed normalised messages (JSONL) through the same intake and pipeline.

With --inline each message is stored and processed here, in received_at order, on the
configured database without Redis, and no replies are queued (an imported history must not
message citizens again). Without --inline messages are stored and queued for the workers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from core.config import AppConfig
from core.message import InboundMessage

EMPTY = {"ticket": None, "opd": None, "duplicate_of": None}


def _read(path: Path) -> list[tuple[int, InboundMessage | None, str | None, dict]]:
    rows = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            ident: dict = {}
            try:
                obj = json.loads(line)
                if isinstance(obj, dict):
                    ident = {"channel": obj.get("channel"), "external_id": obj.get("external_id")}
                rows.append((n, InboundMessage.model_validate(obj), None, ident))
            except (ValueError, UnicodeDecodeError) as exc:
                rows.append((n, None, f"line {n}: {_why(exc)}", ident))
    return rows


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}"
    return f"not valid JSON ({exc})"


def run_ingest(cfg: AppConfig, path: Path, inline: bool, as_json: bool) -> int:
    from core.db import migrate

    migrate()
    rows = _read(path)
    results: dict[int, dict] = {}
    errors = 0
    for n, msg, err, ident in rows:
        if err is not None:
            errors += 1
            print(f"aduan ingest: {err}", file=sys.stderr)
            results[n] = {"channel": ident.get("channel"), "external_id": ident.get("external_id"),
                          **EMPTY, "status": "error", "error": err}
    good = [(n, m) for n, m, e, _ in rows if m is not None]
    good.sort(key=lambda r: (r[1].received_at, r[0]))  # windows are measured on received_at
    handle = _inline if inline else _queued
    for n, result in _progress(handle(cfg, good), len(good), quiet=as_json and not sys.stderr.isatty()):
        results[n] = result
    for n in sorted(results):
        r = results[n]
        if as_json:
            print(json.dumps(r, ensure_ascii=False))
        elif r.get("status") != "error":
            print(f"{r['channel']}:{r['external_id']} -> {r['ticket'] or '-'} {r['opd'] or '-'} {r['status']}"
                  + (f" (duplicate of {r['duplicate_of']})" if r.get("duplicate_of") else ""))
    if errors:
        print(f"aduan ingest: {errors} line(s) skipped, {len(good)} processed; fix the lines named above "
              f"and ingest them again (already stored messages are recognised and skipped)", file=sys.stderr)
    return 1 if errors and not good else 0


def _inline(cfg: AppConfig, good: list[tuple[int, InboundMessage]]):  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.intake import store
    from core.pipeline import process

    for n, msg in good:
        with session_scope() as session:
            row, created = store(session, msg)
            outcome = process(session, cfg, row.id, notify=False) if row.state == "stored" else None
            if outcome is None:  # already stored and processed earlier: report what it became
                outcome = _existing(session, cfg, row)
        yield n, outcome.public()


def _existing(session, cfg: AppConfig, row):  # type: ignore[no-untyped-def]
    from core.models import Ticket
    from core.pipeline import Outcome

    ticket = session.get(Ticket, row.ticket_id) if row.ticket_id else None
    dup = (row.dedup or {}).get("ticket") if row.kind in ("repeat", "case") else None
    return Outcome(message_id=row.id, channel=row.channel, external_id=row.external_id,
                   ticket=ticket.number if ticket else None, opd=ticket.opd_code if ticket else None,
                   status=ticket.status if ticket else (row.kind or row.state), duplicate_of=dup)


def _queued(cfg: AppConfig, good: list[tuple[int, InboundMessage]]):  # type: ignore[no-untyped-def]
    from core.intake import accept

    for n, msg in good:
        res = accept(msg)
        yield n, {"channel": msg.channel, "external_id": msg.external_id, **EMPTY,
                  "status": "queued" if res.queued else ("stored" if res.created else "already stored")}


def _progress(items, total: int, quiet: bool):  # type: ignore[no-untyped-def]
    if quiet or total < 50:
        yield from items
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("ingesting", total=total)
        for item in items:
            bar.advance(task)
            yield item


def _stderr_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True)

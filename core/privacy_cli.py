"""The `aduan citizen export|erase` and `aduan privacy anonymise` commands (logic in core.privacy).

Kept apart so core.privacy stays about the data; these add confirmation, files and audit actors.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from core.config import AppConfig
from core.models import Event, utcnow
from core.privacy import NotFound, anonymise_expired, erase_person, export_person, find_person


def _os_user() -> str:
    import getpass

    try:
        return f"os:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return f"os:uid{os.getuid()}"


def cli_export(cfg: AppConfig, query: str, out: Any, fail: Callable[..., None]) -> int:
    """`aduan citizen export`: the JSON document on stdout or in --out (mode 600: it is personal data)."""
    import json
    import sys

    from core.db import session_scope

    try:
        with session_scope() as s:
            doc = export_person(s, cfg, query)
            s.add(Event(at=utcnow(), actor=_os_user()[:64], action="privacy.exported",
                        data={"contacts": len(doc["contacts"]), "messages": len(doc["messages"])}))
    except NotFound as exc:
        fail(str(exc))
    text = json.dumps(doc, ensure_ascii=False, indent=2, default=str)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(f"{len(doc['messages'])} message(s), {len(doc['tickets'])} ticket(s) of "
              f"{len(doc['contacts'])} contact(s) written to {out}", file=sys.stderr)
    return 0


def cli_erase(query: str, reason: str, yes: bool, fail: Callable[..., None]) -> int:
    """`aduan citizen erase`: show who will be anonymised, confirm, anonymise, audit."""
    import typer

    from core.db import session_scope

    if not reason.strip():
        fail("--reason must not be empty (e.g. the request's reference number)")
    try:
        with session_scope() as s:
            contacts = find_person(s, query)
            listing = ", ".join(f"{c.channel}:{c.address}" for c in contacts)
    except NotFound as exc:
        fail(str(exc))
    if not yes and not typer.confirm(f"Anonymise {len(contacts)} identity(ies) ({listing}) permanently?"):
        fail("cancelled; nothing changed", 1)
    with session_scope() as s:
        counts = erase_person(s, query, reason, _os_user())
    typer.echo(f"erased: {counts.contacts} contact(s), {counts.messages} message(s) anonymised; "
               f"{counts.tickets} ticket(s) kept for the OPD without the reporter's identity")
    return 0


def cli_anonymise(cfg: AppConfig, dry_run: bool) -> int:
    """`aduan privacy anonymise`: the nightly retention run, by hand."""
    import typer

    from core.db import session_scope

    with session_scope() as s:
        counts = anonymise_expired(s, cfg, dry_run=dry_run, actor=_os_user())
        if dry_run:
            s.rollback()
    months = cfg.privacy.anonymise_after_months
    if dry_run:
        typer.echo(f"{counts.contacts} identity(ies) would be anonymised (inactive for {months} months, no open ticket)")
    else:
        typer.echo(f"{counts.contacts} identity(ies) anonymised ({counts.messages} messages, {counts.tickets} tickets "
                   f"kept for statistics)")
    return 0

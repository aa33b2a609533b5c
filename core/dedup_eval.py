"""`aduan eval dedup` (quality on a labelled stream) and `aduan bench dedup` (lookup cost as history grows).

The evaluation runs every line through the real pipeline (store, then process without replies,
as `aduan ingest --inline` does) on a fresh temporary SQLite database and data dir, so it never
touches the configured hub. A message's predicted cluster is its ticket (non-complaints are
their own cluster); the truth is the line's `case` field. It prints pairwise precision/recall
and B-cubed precision/recall/F1, and counts tickets that mix OPDs (when lines carry `opd`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from core.config import AppConfig

FIELDS = ("channel", "external_id", "sender", "sender_display", "text", "received_at", "attachments",
          "location", "in_reply_to", "public", "raw")


@contextmanager
def fresh_hub() -> Iterator[str]:
    """A temporary data dir and SQLite database for this process; the configured ones stay untouched."""
    from core import db, dedup
    from core.classify import newest_model_path

    model = newest_model_path()
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "ADUAN_DATA_DIR", "REDIS_URL")}
    tmp = tempfile.mkdtemp(prefix="aduan-eval-")
    try:
        if model is not None and model.parent.name == "models":  # keep the hub's current router
            (Path(tmp) / "models").mkdir()
            shutil.copy2(model, Path(tmp) / "models" / model.name)
        os.environ["ADUAN_DATA_DIR"] = tmp
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/eval.db"
        os.environ.pop("REDIS_URL", None)
        dedup._FORCE_MEMORY = True
        dedup.reset_memory()
        db.migrate()
        yield tmp
    finally:
        dedup._FORCE_MEMORY = False
        dedup.reset_memory()
        db._engine_for.cache_clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)


def read_stream(path: Path) -> tuple[list[tuple[int, Any, str, str | None]], list[str]]:
    """(line number, InboundMessage, case, opd) for each good line, and one error per bad line."""
    from pydantic import ValidationError

    from core.message import InboundMessage

    rows, errors = [], []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
                if obj.get("case") in (None, ""):
                    raise ValueError("no ground-truth `case` field")
                msg = InboundMessage.model_validate({k: v for k, v in obj.items() if k in FIELDS})
                rows.append((n, msg, str(obj["case"]), obj.get("opd")))
            except (ValueError, ValidationError) as exc:
                errors.append(f"line {n}: {exc}".splitlines()[0])
    rows.sort(key=lambda r: (r[1].received_at, r[0]))
    return rows, errors


def predict(cfg: AppConfig, rows: list[tuple[int, Any, str, str | None]]) -> dict[int, str]:
    """Line number -> predicted cluster (ticket number, or the message itself)."""
    from core.db import session_scope
    from core.intake import store
    from core.models import Ticket
    from core.pipeline import process

    out: dict[int, str] = {}
    for n, msg, _, _ in rows:
        with session_scope() as session:
            row, _created = store(session, msg)
            if row.state == "stored":
                process(session, cfg, row.id, notify=False)
            ticket = session.get(Ticket, row.ticket_id) if row.ticket_id else None
            out[n] = ticket.number if ticket is not None and ticket.number else f"msg:{row.id}"
    return out


def scores(truth: dict[int, str], pred: dict[int, str]) -> dict[str, float]:
    """Pairwise precision/recall/F1 and B-cubed precision/recall/F1 over the same items."""
    items = list(truth)
    by_t, by_p = defaultdict(set), defaultdict(set)
    for i in items:
        by_t[truth[i]].add(i)
        by_p[pred[i]].add(i)
    bp = sum(len(by_p[pred[i]] & by_t[truth[i]]) / len(by_p[pred[i]]) for i in items) / len(items)
    br = sum(len(by_p[pred[i]] & by_t[truth[i]]) / len(by_t[truth[i]]) for i in items) / len(items)
    pairs_p = sum(len(c) * (len(c) - 1) // 2 for c in by_p.values())
    pairs_t = sum(len(c) * (len(c) - 1) // 2 for c in by_t.values())
    both = sum(n * (n - 1) // 2 for n in Counter((truth[i], pred[i]) for i in items).values())
    pp = both / pairs_p if pairs_p else 1.0
    pr = both / pairs_t if pairs_t else 1.0
    f = lambda p, r: 2 * p * r / (p + r) if p + r else 0.0  # noqa: E731
    return {"pairwise_precision": pp, "pairwise_recall": pr, "pairwise_f1": f(pp, pr),
            "bcubed_precision": bp, "bcubed_recall": br, "bcubed_f1": f(bp, br)}


def evaluate(cfg: AppConfig, path: Path) -> dict[str, Any]:
    rows, errors = read_stream(path)
    if not rows:
        return {"errors": errors, "messages": 0}
    t0 = time.perf_counter()
    with fresh_hub():
        pred = predict(cfg, rows)
    truth = {n: case for n, _, case, _ in rows}
    opd_of = {n: opd for n, _, _, opd in rows}
    mixed = defaultdict(set)
    for n, cluster in pred.items():
        if opd_of[n]:
            mixed[cluster].add(opd_of[n])
    report: dict[str, Any] = {"messages": len(rows), "cases": len(set(truth.values())),
                              "tickets": len({p for p in pred.values() if not p.startswith("msg:")}),
                              **{k: round(v, 4) for k, v in scores(truth, pred).items()},
                              "cross_opd_merges": sum(1 for s in mixed.values() if len(s) > 1),
                              "seconds": round(time.perf_counter() - t0, 2), "errors": errors}
    return report


def cli_eval(cfg: AppConfig, path: Path, as_json: bool) -> int:
    report = evaluate(cfg, path)
    for e in report.get("errors", []):
        print(f"aduan eval dedup: {e}", file=sys.stderr)
    if not report["messages"]:
        print("aduan eval dedup: no usable lines (each needs an InboundMessage and a `case` field)", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Deduplication on {path.name}: {report['messages']} messages, {report['cases']} cases, "
                        f"{report['tickets']} tickets")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_precision", "bcubed_recall",
                "bcubed_f1"):
        table.add_row(key.replace("_", " "), f"{report[key]:.4f}")
    table.add_row("cross-OPD merges", str(report["cross_opd_merges"]))
    Console(width=120).print(table)
    return 0




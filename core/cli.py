"""The `aduan` command line. Every command has --help; errors say what to do next."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Aduan: the Media Center's complaint hub.", no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]}, pretty_exceptions_enable=False)
eval_app = typer.Typer(help="Measure routing and deduplication quality on a labelled file.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
bench_app = typer.Typer(help="Benchmarks that print their figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"aduan: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def config():  # type: ignore[no-untyped-def]
    """The validated configuration, or a clear exit naming every bad key."""
    from core.config import ConfigError, get_config

    try:
        return get_config()
    except ConfigError as exc:
        fail("configuration problem:\n  " + "\n  ".join(exc.problems))


@app.callback()
def main_options(
    config_path: Optional[Path] = typer.Option(None, "--config", "-c", help="Configuration file (default ./config.yaml, or $ADUAN_CONFIG)."),
) -> None:
    if config_path is not None:
        os.environ["ADUAN_CONFIG"] = str(config_path.resolve())  # children of `up` inherit it


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (SQLite in the data dir, or DATABASE_URL)."""
    from core.db import database_url, migrate as run

    config()
    head = run()
    url = database_url()
    typer.echo(f"database at revision {head} ({url.split('@')[-1] if '@' in url else url})")


@app.command()
def worker(burst: bool = typer.Option(False, help="Exit when the queues are empty."),
           name: Optional[str] = typer.Option(None, help="Worker name shown in monitoring.")) -> None:
    """Run one worker on the inbound and outbound queues (start more, on any machine, to scale out)."""
    from workers.main import run_worker

    config()
    run_worker(burst=burst, name=name)


@app.command()
def web(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        port: int = typer.Option(8000, help="Port to listen on.")) -> None:
    """Serve webhooks, the console and the APIs."""
    import uvicorn

    from core.web import create_app

    uvicorn.run(create_app(config()), host=host, port=port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips="127.0.0.1")


@app.command()
def connectors() -> None:
    """Run the polling connectors (Telegram in polling mode, X, Instagram) until stopped."""
    from core.pollers import run_pollers

    run_pollers(config())


@app.command()
def scheduler() -> None:
    """Enqueue the periodic jobs: SLA sweep and reconciliation every minute, retraining nightly."""
    from core.scheduler import run_scheduler

    run_scheduler(config())


@app.command()
def up(workers: int = typer.Option(2, "--workers", "-w", min=1, max=64, help="Worker processes."),
       host: str = typer.Option("127.0.0.1", help="Address for the console and webhooks."),
       port: int = typer.Option(8000, help="Port for the console and webhooks.")) -> None:
    """Run everything: web, connectors and N workers, supervised; Ctrl-C stops them cleanly."""
    from core.supervisor import run_hub

    config()
    raise typer.Exit(run_hub(workers=workers, host=host, port=port))


@app.command()
def ingest(file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False,
                                     help="JSONL of normalised messages, one per line."),
           inline: bool = typer.Option(False, help="Process synchronously here, on the configured database (no Redis)."),
           as_json: bool = typer.Option(False, "--json", help="Print one JSON result line per input line.")) -> None:
    """Run messages through the pipeline (also how a city imports its complaint history)."""
    from core.ingest import run_ingest

    raise typer.Exit(run_ingest(config(), file, inline=inline, as_json=as_json))


@app.command()
def classify() -> None:
    """Read {"id","text"[,"channel"]} lines on stdin; write {"id","opd","confidence"} lines."""
    from core.train import cli_classify

    raise typer.Exit(cli_classify(sys.stdin, sys.stdout, config()) or 0)


@app.command()
def train() -> None:
    """Retrain the router from the seed corpus and operators' labels; swap it in only if not worse."""
    from core.train import cli_train

    raise typer.Exit(cli_train(config()) or 0)


@eval_app.command("classify")
def eval_classify(file: Path = typer.Argument(..., exists=True, dir_okay=False, help='JSONL lines {"id","text","opd"}.'),
                  as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Accuracy, macro-F1, per-OPD scores, confused pairs and triage share."""
    from core.train import cli_eval

    raise typer.Exit(cli_eval(file, config(), as_json) or 0)


sla_app = typer.Typer(help="SLA compliance: the OPD responds within 60 minutes, the citizen hears back within 24 hours.",
                      no_args_is_help=True)
app.add_typer(sla_app, name="sla")


@sla_app.command("report")
def sla_report(since: Optional[str] = typer.Option(None, help="Only tickets created on or after this date (YYYY-MM-DD, WIB)."),
               opd: Optional[str] = typer.Option(None, help="Only this OPD code."),
               as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table.")) -> None:
    """Per OPD: share answered within time, median and p90 response and feedback times, open breaches."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from core.db import session_scope
    from core.sla import report

    cfg = config()
    start = None
    if since:
        try:
            start = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=ZoneInfo(cfg.hub.timezone))
        except ValueError:
            fail(f"--since {since!r}: use the form YYYY-MM-DD, e.g. --since 2026-11-01")
    if opd and cfg.opd(opd) is None:
        fail(f"--opd {opd!r}: unknown OPD code; known: {', '.join(o.code for o in cfg.opds)}")
    with session_scope() as s:
        rows = report(s, cfg, since=start, opd=opd)
    if as_json:
        from dataclasses import asdict

        for r in rows:
            typer.echo(_json_line(asdict(r)))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Kepatuhan SLA per OPD")
    for col in ("OPD", "tiket", "tepat waktu", "median respons (mnt)", "p90 respons (mnt)",
                "median umpan balik (jam)", "p90 umpan balik (jam)", "pelanggaran terbuka"):
        table.add_column(col, justify="right" if col != "OPD" else "left")
    fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for r in rows:
        table.add_row(r.opd, str(r.tickets), f"{r.within:.0%}", fmt(r.median_response_min), fmt(r.p90_response_min),
                      fmt(r.median_feedback_h), fmt(r.p90_feedback_h), str(r.open_breaches))
    Console().print(table)


jobs_app = typer.Typer(help="Messages that could not be processed: list them, replay them after a fix.",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("failed")
def jobs_failed(as_json: bool = typer.Option(False, "--json", help="Print JSON lines.")) -> None:
    """List parked messages with their last error."""
    from sqlmodel import select

    from core.db import session_scope
    from core.models import Message

    config()
    with session_scope() as s:
        rows = s.exec(select(Message).where(Message.direction == "in", Message.state == "failed")).all()
        items = [{"id": m.id, "channel": m.channel, "external_id": m.external_id, "attempts": m.attempts,
                  "error": m.error} for m in rows]
    for item in items:
        typer.echo(_json_line(item) if as_json else
                   f"{item['id']:>8}  {item['channel']}:{item['external_id']}  x{item['attempts']}  {item['error']}")
    if not items and not as_json:
        typer.echo("no failed messages")


@jobs_app.command("replay")
def jobs_replay(ids: Optional[list[int]] = typer.Argument(None, help="Message ids (default: every failed message)."),
                all_: bool = typer.Option(False, "--all", help="Replay every failed message.")) -> None:
    """Queue parked messages again (after fixing what made them fail)."""
    from workers.jobs import replay_failed

    config()
    if not ids and not all_:
        fail("name message ids (see `aduan jobs failed`) or pass --all")
    n = replay_failed(list(ids) if ids else None)
    typer.echo(f"{n} message(s) queued again")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


def _json_line(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


if __name__ == "__main__":
    main()

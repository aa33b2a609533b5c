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
    from core.logs import setup

    setup()


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
           name: Optional[str] = typer.Option(None, help="Worker name shown in monitoring."),
           queues: Optional[str] = typer.Option(None, help="Comma-separated queues, served in this order (default: outbound,inbound,maintenance).")) -> None:
    """Run one worker on the hub's queues (start more, on any machine, to scale out)."""
    from workers.main import run_worker

    config()
    run_worker(burst=burst, name=name, queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None)


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
       port: int = typer.Option(8000, help="Port for the console and webhooks."),
       sandbox: bool = typer.Option(False, "--sandbox", help="Use local fake providers (no accounts needed); citizen phone at /sandbox."),
       seed_demo: bool = typer.Option(False, "--seed-demo", help="With --sandbox: play in a day of demo complaints on every channel.")) -> None:
    """Run everything: web, connectors and N workers, supervised; Ctrl-C stops them cleanly."""
    from core.supervisor import run_hub

    config()
    if seed_demo and not sandbox:
        fail("--seed-demo needs --sandbox (the demo complaints travel through the fake providers)")
    raise typer.Exit(run_hub(workers=workers, host=host, port=port, sandbox=sandbox, seed_demo=seed_demo))


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


@eval_app.command("dedup")
def eval_dedup(file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                           help='Time-ordered JSONL: normalised messages, each with a "case" field.'),
               as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Pairwise and B-cubed precision/recall/F1 of deduplication, on a fresh temporary database."""
    from core.dedup_eval import cli_eval as dedup_eval

    raise typer.Exit(dedup_eval(config(), file, as_json))


@bench_app.command("dedup")
def bench_dedup(sizes: str = typer.Option("10000,100000,1000000", help="Stored complaints per run, e.g. 10000,100000."),
                queries: int = typer.Option(500, min=10, help="Lookups timed per size."),
                as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON.")) -> None:
    """p50/p99 near-duplicate lookup time and index memory as history grows, beside brute force."""
    from core.dedup_bench import cli_bench

    try:
        counts = [int(x.replace("_", "")) for x in sizes.split(",") if x.strip()]
    except ValueError:
        fail(f"--sizes {sizes!r}: give whole numbers separated by commas, e.g. --sizes 10000,100000")
    if not counts or min(counts) < 100:
        fail("--sizes: each size must be at least 100")
    raise typer.Exit(cli_bench(config(), counts, queries, as_json))


@bench_app.command("pipeline")
def bench_pipeline(messages: int = typer.Option(5000, min=100, help="Messages per run."),
                   workers: str = typer.Option("1,2,4", help="Worker counts to run, e.g. 1,2,4."),
                   steady_rate: int = typer.Option(200, help="Arrival rate for the latency run (messages/s)."),
                   steady_seconds: int = typer.Option(10, help="Length of the latency run."),
                   steady_workers: int = typer.Option(0, min=0, help="Workers for the latency run "
                                                      "(0: one per CPU core, at most the largest of --workers)."),
                   as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON.")) -> None:
    """End-to-end throughput with 1, 2, 4 workers, p50/p99 latency, memory, and plain RQ beside it."""
    from rich.progress import Progress

    from core.bench import bench

    try:
        counts = [int(w) for w in workers.split(",")]
    except ValueError:
        fail(f"--workers {workers!r}: give numbers separated by commas, e.g. 1,2,4")
    with Progress(transient=True, console=_stderr()) as bar:
        task = bar.add_task("benchmark", total=None)
        res = bench(messages, counts, steady_rate, steady_seconds, steady_workers=steady_workers,
                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    typer.echo(f"backend: redis={res['backend']['redis']} database={res['backend']['database']}")
    typer.echo(f"{'workers':>7} {'messages':>8} {'msg/s':>9} {'rq no-op/s':>11} {'ratio':>6} {'peak MB/worker':>15}")
    for run, noop in zip(res["runs"], res["rq_noop"]):
        typer.echo(f"{run['workers']:>7} {run['messages']:>8} {run['per_second']:>9.0f} {noop['per_second']:>11.0f} "
                   f"{run['ratio_vs_rq_noop']:>6.2f} {max(run['peak_rss_mb'] or [0]):>15.0f}")
    st = res["steady"]
    typer.echo(f"latency intake -> acknowledgement queued at {st['rate']} msg/s, {st['workers']} worker(s): "
               f"p50 {st['p50_ms']:.0f} ms, p99 {st['p99_ms']:.0f} ms")


@bench_app.command("burst")
def bench_burst(messages: int = typer.Option(10_000, min=10, help="Webhook messages to send."),
                seconds: float = typer.Option(60.0, min=1, help="Spread them over this many seconds."),
                workers: int = typer.Option(2, min=1, help="Worker processes of the hub under test.")) -> None:
    """A flood-day burst of Telegram webhooks against a real `aduan up` on loopback: nothing lost or doubled."""
    from rich.progress import Progress

    from core.loadgen import run_burst

    config()
    with Progress(transient=True, console=_stderr()) as bar:
        task = bar.add_task("burst", total=messages * 2)
        res = run_burst(messages, seconds, workers, progress=lambda d, t: bar.update(task, completed=d, total=t))
    typer.echo(json.dumps(res, indent=2))


def _stderr():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True)


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


user_app = typer.Typer(help="Console accounts: create the first admin, reset passwords, disable.", no_args_is_help=True)
app.add_typer(user_app, name="user")
_PW = dict(prompt=True, hide_input=True, envvar="ADUAN_USER_PASSWORD", help="At least 10 characters (prompted when omitted; or $ADUAN_USER_PASSWORD).")


def _user_op(username: str, op):  # type: ignore[no-untyped-def]
    from core import auth
    from core.db import session_scope

    cfg = config()
    try:
        with session_scope() as s:
            user = auth.get_user(s, username)
            if user is None:
                fail(f"no user {username!r} (create it with `aduan user add`)")
            op(s, auth, user, cfg)
    except auth.AuthError as exc:
        fail(str(exc))


@user_app.command("add")
def user_add(username: str = typer.Argument(..., help="Lowercase login name."),
             role: str = typer.Option(..., "--role", "-r", help="admin | operator | opd | viewer"),
             opd: Optional[str] = typer.Option(None, "--opd", help="OPD code, for OPD officers (role opd)."),
             name: str = typer.Option("", "--name", help="Display name."),
             password: str = typer.Option(..., "--password", confirmation_prompt=True, **_PW)) -> None:
    """Create a console account (e.g. the first admin)."""
    from core import auth
    from core.db import session_scope

    cfg = config()
    try:
        with session_scope() as s:
            auth.create_user(s, username, password, role, opd, display_name=name, actor="cli",
                             known_opds=[o.code for o in cfg.opds])
    except auth.AuthError as exc:
        fail(str(exc))
    typer.echo(f"user {username.lower()} created ({role}{' ' + opd if opd else ''})")


@user_app.command("passwd")
def user_passwd(username: str = typer.Argument(...),
                password: str = typer.Option(..., "--password", confirmation_prompt=True, **_PW)) -> None:
    """Set a new password (ends the user's open sessions)."""
    _user_op(username, lambda s, auth, u, cfg: auth.set_password(s, u, password, "cli"))
    typer.echo(f"password of {username.lower()} changed")


@user_app.command("disable")
def user_disable(username: str = typer.Argument(...),
                 enable: bool = typer.Option(False, "--enable", help="Re-enable instead.")) -> None:
    """Disable an account (it can no longer sign in; open sessions end at once)."""
    _user_op(username, lambda s, auth, u, cfg: auth.set_active(s, u, enable, "cli"))
    typer.echo(f"user {username.lower()} {'enabled' if enable else 'disabled'}")


apikey_app = typer.Typer(help="API keys for Open311 GeoReport clients (only the key's hash is stored).",
                         no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")


@apikey_app.command("add")
def apikey_add(name: str = typer.Argument(..., help="Who the key is for, e.g. 'dashboard-bappeda'.")) -> None:
    """Issue a key for POST /open311/v2/requests; it is printed once, store it safely."""
    from core.db import session_scope
    from core.open311 import issue_key

    config()
    if not name.strip():
        fail("NAME must not be empty")
    with session_scope() as s:
        key = issue_key(s, name, actor="cli")
    typer.echo(key)


@apikey_app.command("revoke")
def apikey_revoke(name: str = typer.Argument(..., help="The client name the key was issued to.")) -> None:
    """Revoke every key issued to NAME (its clients get 403 from then on)."""
    from sqlmodel import select

    from core.civic_models import ApiKey
    from core.db import session_scope
    from core.models import utcnow

    config()
    with session_scope() as s:
        keys = s.exec(select(ApiKey).where(ApiKey.name == name.strip(), ApiKey.revoked_at.is_(None))).all()  # type: ignore[union-attr]
        for k in keys:
            k.revoked_at = utcnow()
    if not keys:
        fail(f"no active key named {name!r}")
    typer.echo(f"{len(keys)} key(s) of {name} revoked")


report_app = typer.Typer(help="Reports for policy makers.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("monthly")
def report_monthly(month: str = typer.Option(..., help="The month, YYYY-MM (WIB), e.g. 2026-11."),
                   opd: Optional[str] = typer.Option(None, help="Only this OPD code (default: every OPD)."),
                   out: Optional[Path] = typer.Option(None, help="Write the HTML here (default: stdout).")) -> None:
    """The monthly report per OPD as printable HTML (print it to PDF from the browser)."""
    from core.report import cli_monthly

    raise typer.Exit(cli_monthly(config(), month, opd, out, fail))


citizen_app = typer.Typer(help="Data-subject requests (UU 27/2022 PDP): export or erase one citizen's data.",
                          no_args_is_help=True)
app.add_typer(citizen_app, name="citizen")
privacy_app = typer.Typer(help="Personal-data retention (UU 27/2022 PDP).", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")
_WHO = typer.Argument(..., help="Phone number (0812…, +62812…) or CHANNEL:ADDRESS, e.g. telegram:123456789.")


@citizen_app.command("export")
def citizen_export(who: str = _WHO, out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the JSON here (default: stdout).")) -> None:
    """Every stored record about the person (all their linked contacts) as JSON, times in WIB."""
    from core.privacy_cli import cli_export

    raise typer.Exit(cli_export(config(), who, out, fail))


@citizen_app.command("erase")
def citizen_erase(who: str = _WHO, reason: str = typer.Option(..., "--reason", help="Why (e.g. the request's reference); audited."),
                  yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Anonymise the person now; their open tickets keep going, nothing more is sent to them."""
    from core.privacy_cli import cli_erase

    config()
    raise typer.Exit(cli_erase(who, reason, yes, fail))


@privacy_app.command("anonymise")
def privacy_anonymise(dry_run: bool = typer.Option(False, "--dry-run", help="Only count who would be anonymised.")) -> None:
    """Anonymise identities whose finished tickets are older than privacy.anonymise_after_months."""
    from core.privacy_cli import cli_anonymise

    raise typer.Exit(cli_anonymise(config(), dry_run))


@app.command("backup")
def backup_cmd(out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for the archive (default: DATA_DIR/backups).")) -> None:
    """Consistent .tar.gz of the embedded SQLite, Redis and config while the hub runs (PostgreSQL: docs/backup.md)."""
    from core.backup import cli_backup

    config()
    raise typer.Exit(cli_backup(out, fail))


@app.command("restore")
def restore_cmd(archive: Path = typer.Argument(..., exists=True, dir_okay=False, help="An archive from `aduan backup`."),
                yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Verify the archive's checksums and put its files back (the hub must be stopped)."""
    from core.backup import cli_restore

    config()
    raise typer.Exit(cli_restore(archive, yes, fail))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


def _json_line(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


if __name__ == "__main__":
    main()

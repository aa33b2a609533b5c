"""`aduan backup` / `aduan restore` for the embedded defaults: SQLite and the embedded Redis.

A backup must be consistent while the hub keeps taking complaints, so nothing is copied
file-by-file from under a writer: SQLite goes through its online backup API (one read
snapshot; WAL writers are not blocked) and Redis writes its own snapshot (BGSAVE, then we wait
for LASTSAVE to move) before its RDB and AOF files are copied. Everything lands in one
timestamped .tar.gz with a manifest of versions and SHA-256 sums; restore refuses an archive
whose files do not match, and refuses while the hub is running (its Redis socket answers).

PostgreSQL and an external Redis have better tools of their own (pg_dump, PITR, Redis
persistence); for them this module refuses and points to docs/backup.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import tarfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

from core.config import config_path, data_dir

FORMAT = 1
_MEDIA_NAME = re.compile(r"[0-9a-f]{16,64}\.[a-z0-9]{1,5}")


def _safe_name(name: str) -> bool:
    """Top-level files, or one evidence photo under media/: never a path that climbs out of the data dir."""
    return "/" not in name or (name.startswith("media/") and bool(_MEDIA_NAME.fullmatch(name[6:])))
DOCS = "docs/backup.md"
Step = Callable[[str], None]


class BackupError(Exception):
    """A refusal or failure, phrased for the admin running the command."""


def _noop(_: str) -> None:
    pass


def sqlite_path() -> Path:
    """The embedded database file, or a refusal for PostgreSQL / an external Redis."""
    from core.db import database_url

    url = database_url()
    if not url.startswith("sqlite:///"):
        raise BackupError(f"DATABASE_URL points at {url.split('://')[0].split('+')[0]}: `aduan backup` only covers the "
                          f"embedded SQLite database. Use pg_dump / pg_restore (and WAL archiving for point-in-time "
                          f"recovery) as described in {DOCS}.")
    if os.environ.get("REDIS_URL"):
        raise BackupError(f"REDIS_URL is set: `aduan backup` only covers the embedded Redis. Back up the external "
                          f"Redis with its own persistence (RDB/AOF copies), see {DOCS}; "
                          f"or unset REDIS_URL for an embedded deployment.")
    return Path(url[len("sqlite:///"):]).resolve()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _redis_client(ddir: Path) -> redis.Redis | None:
    from core.redisconn import _alive, _socket_path

    sock = _socket_path(ddir)
    return redis.Redis(unix_socket_path=str(sock), socket_timeout=30) if _alive(sock) else None


def hub_running(ddir: Path | None = None) -> bool:
    """The embedded Redis answering on the data dir's socket means some hub process is up."""
    return _redis_client(ddir or data_dir()) is not None


def _redis_snapshot(ddir: Path, timeout: float = 120.0) -> tuple[list[Path], str | None]:
    """Make the embedded Redis write a fresh RDB; return its persistence files and its version."""
    client = _redis_client(ddir)
    if client is None:  # stopped: its files are at rest and consistent as they are
        return [p for p in (ddir / "redis.rdb", ddir / "appendonly.aof") if p.exists()], None
    cfg = {k: v for k, v in client.config_get("*").items() if k in ("dir", "dbfilename", "appendfilename")}
    before = client.lastsave()
    while int(time.time()) <= int(before.timestamp()):  # LASTSAVE has one-second resolution
        time.sleep(0.05)
    try:
        client.bgsave()
    except redis.ResponseError as exc:  # an AOF rewrite is running: let Redis schedule the save
        if "progress" not in str(exc):
            raise
        client.bgsave(schedule=True)
    deadline = time.monotonic() + timeout
    while client.lastsave() == before or client.info("persistence").get("rdb_bgsave_in_progress"):
        if time.monotonic() > deadline:
            raise BackupError(f"embedded Redis did not finish BGSAVE within {timeout:.0f}s; see {ddir / 'redis.log'}")
        time.sleep(0.05)
    if client.info("persistence").get("rdb_last_bgsave_status") != "ok":
        raise BackupError(f"embedded Redis failed to write its snapshot; see {ddir / 'redis.log'}")
    rdir = Path(cfg.get("dir") or ddir)
    files = [rdir / cfg.get("dbfilename", "redis.rdb"), rdir / cfg.get("appendfilename", "appendonly.aof")]
    return [p for p in files if p.exists()], client.info("server").get("redis_version")


def _alembic_revision(db: Path) -> str | None:
    with sqlite3.connect(db) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
    return row[0] if row else None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aduan")
    except PackageNotFoundError:
        return "unknown"


def backup(out_dir: Path | None = None, step: Step = _noop) -> Path:
    """Write a consistent archive of the embedded database, Redis and config; returns its path."""
    db = sqlite_path()
    ddir = data_dir()
    if not db.exists():
        raise BackupError(f"no database at {db}: run `aduan migrate` first (nothing to back up)")
    out = (out_dir or ddir / "backups").resolve()
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stage = out / f".staging-{stamp}-{os.getpid()}"
    stage.mkdir()
    try:
        step("SQLite: online backup")
        src, dst = sqlite3.connect(db, timeout=30), sqlite3.connect(stage / "aduan.db")
        try:
            src.backup(dst)  # one read snapshot of every page; concurrent writers keep going (WAL)
            if dst.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError("the database copy failed its integrity check; nothing was written")
        finally:
            dst.close()
            src.close()
        step("Redis: BGSAVE")
        files, redis_version = _redis_snapshot(ddir)
        for f in files:
            step(f"Redis: copying {f.name}")
            shutil.copyfile(f, stage / f.name)
        cfg = config_path()
        if cfg.exists():
            shutil.copyfile(cfg, stage / "config.yaml")
        step("writing the manifest")
        sources = {p.name: p for p in stage.iterdir()}
        # Evidence photos are named by their SHA-256 and never rewritten: copied straight from the data dir.
        sources |= {f"media/{p.name}": p for p in sorted((ddir / "media").glob("*"))
                    if p.is_file() and _MEDIA_NAME.fullmatch(p.name)}
        names = sorted(sources)
        manifest = {
            "format": FORMAT, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(), "aduan": _version(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "redis": redis_version,
            "alembic_revision": _alembic_revision(stage / "aduan.db"),
            "files": {n: {"sha256": _sha256(sources[n]), "bytes": sources[n].stat().st_size} for n in names},
        }
        archive = out / f"aduan-backup-{stamp}.tar.gz"
        part = archive.with_name(archive.name + ".part")
        step(f"compressing into {archive.name}")
        with tarfile.open(part, "w:gz") as tar:
            blob = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(blob), int(time.time())
            tar.addfile(info, io.BytesIO(blob))
            for n in names:
                tar.add(sources[n], arcname=f"files/{n}")
        os.replace(part, archive)  # an interrupted backup never leaves a half archive under the final name
        return archive
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def verify(archive: Path) -> dict[str, Any]:
    """Check every file against the manifest; raise BackupError naming the first mismatch."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            try:
                manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            except (KeyError, json.JSONDecodeError, TypeError):
                raise BackupError(f"{archive}: no readable manifest.json; not an aduan backup") from None
            expected = dict(manifest.get("files") or {})
            for member in tar.getmembers():
                if member.name == "manifest.json":
                    continue
                name = member.name.removeprefix("files/")
                if not member.isfile() or name not in expected or not _safe_name(name):
                    raise BackupError(f"{archive}: unexpected entry {member.name!r}; the archive was altered")
                h = hashlib.sha256()
                fobj = tar.extractfile(member)
                for chunk in iter(lambda: fobj.read(1 << 20), b""):  # type: ignore[union-attr]
                    h.update(chunk)
                if h.hexdigest() != expected.pop(name)["sha256"]:
                    raise BackupError(f"{archive}: {name} does not match its checksum in the manifest; "
                                      f"the archive is damaged or was altered. Nothing was restored.")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"{archive}: not a readable .tar.gz ({exc})") from None
    if expected:
        raise BackupError(f"{archive}: missing {', '.join(sorted(expected))} listed in the manifest")
    if "aduan.db" not in manifest["files"]:
        raise BackupError(f"{archive}: holds no aduan.db")
    return manifest


def restore(archive: Path, step: Step = _noop) -> dict[str, Any]:
    """Put the archive's files back in place; the replaced files are kept in backups/pre-restore-*/."""
    db = sqlite_path()
    ddir = data_dir()
    if hub_running(ddir):
        raise BackupError("the hub is running (its embedded Redis answers on the data dir's socket): stop it "
                          "(Ctrl-C on `aduan up`, or stop the service) and run the restore again")
    step("verifying checksums")
    manifest = verify(archive)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stage = ddir / f".restore-{stamp}-{os.getpid()}"
    stage.mkdir()
    try:
        step("unpacking")
        with tarfile.open(archive, "r:gz") as tar:
            for name in manifest["files"]:
                src = tar.extractfile(f"files/{name}")
                (stage / name).parent.mkdir(exist_ok=True)
                with open(stage / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)  # type: ignore[arg-type]
                if _sha256(stage / name) != manifest["files"][name]["sha256"]:
                    raise BackupError(f"{name} changed while unpacking; nothing was restored")
        targets = {"aduan.db": db, "redis.rdb": ddir / "redis.rdb", "appendonly.aof": ddir / "appendonly.aof",
                   "config.yaml": config_path().resolve()}
        keep = ddir / "backups" / f"pre-restore-{stamp}"
        keep.mkdir(parents=True, exist_ok=True)
        # Stale WAL/SHM files of the current database would be replayed onto the restored one.
        for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if extra.exists():
                os.replace(extra, keep / extra.name)
        if "appendonly.aof" not in manifest["files"] and targets["appendonly.aof"].exists():
            os.replace(targets["appendonly.aof"], keep / "appendonly.aof")  # else Redis would load it, not the RDB
        for name in manifest["files"]:
            target = ddir / name if name.startswith("media/") else targets.get(name)
            if target is None:
                continue
            step(f"restoring {name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                (keep / name).parent.mkdir(exist_ok=True)
                shutil.copy2(target, keep / name)
            tmp = target.with_name(f".{target.name}.restoring")  # same filesystem as the target
            shutil.copyfile(stage / name, tmp)
            os.replace(tmp, target)  # atomic per file: a crash leaves the old or the new, never half
        return {**manifest, "kept": str(keep)}
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# ---------------------------------------------------------------- command line (core/cli.py wires these)


def _with_progress(fn: Callable[[Step], Any]) -> Any:
    """Run `fn` showing each step on stderr (rich), so a long SQLite copy or BGSAVE is visibly alive."""
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting") as status:
        def step(text: str) -> None:
            console.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {text}")
            status.update(text)
        return fn(step)


def cli_backup(out: Path | None, fail: Callable[..., None]) -> int:
    try:
        archive = _with_progress(lambda step: backup(out, step))
    except BackupError as exc:
        fail(str(exc))
    print(f"backup written: {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    return 0


def cli_restore(archive: Path, yes: bool, fail: Callable[..., None]) -> int:
    import typer

    try:
        sqlite_path()
        if hub_running():
            raise BackupError("the hub is running (its embedded Redis answers on the data dir's socket): stop it "
                              "(Ctrl-C on `aduan up`, or stop the service) and run the restore again")
        manifest = verify(archive)
    except BackupError as exc:
        fail(str(exc))
    if not yes and not typer.confirm(f"Replace the database, Redis files and config in {data_dir()} with the backup "
                                     f"of {manifest['created_at']}?"):
        fail("cancelled; nothing changed", 1)
    try:
        result = _with_progress(lambda step: restore(archive, step))
    except BackupError as exc:
        fail(str(exc))
    print(f"restored the backup of {result['created_at']} (schema {result['alembic_revision']}); "
          f"the replaced files are in {result['kept']}. Run `aduan migrate` (if this code is newer), then `aduan up`.")
    return 0

"""Settings admins change in the console: stored in the `setting` table, winning over config.yaml.

`config.yaml` is read at start-up; an override is a dotted path into it (``sla.opd_response_minutes``,
``sla.per_opd.DLH.opd_response_minutes``, ``templates.ack``, ``opds.DLH.keywords``) with its new
value. Overrides are validated with the same pydantic models as the file, so a value the file
would refuse is refused here too, with the same message. `effective_config` gives the merged
configuration; the console uses it on every request (cached until a setting changes).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, func, select

from core.config import DEFAULT_TEMPLATES, AppConfig, ConfigError, _phrase
from core.console.models import Setting
from core.models import Event, utcnow

_lock = threading.Lock()
_cache: dict[int, tuple[tuple, AppConfig]] = {}


@dataclass
class Editable:
    key: str
    kind: str  # int | float | text | list
    value: Any  # effective value
    source: str  # "config.yaml" or "database"
    updated_by: str | None = None
    updated_at: datetime | None = None


def _kind(key: str) -> str:
    if key.endswith(("_minutes", "_hours")):
        return "int"
    if key == "sla.warn_ratio":
        return "float"
    if key.endswith(".keywords"):
        return "list"
    return "text"


def editable_keys(cfg: AppConfig) -> list[str]:
    keys = ["sla.opd_response_minutes", "sla.citizen_feedback_hours", "sla.warn_ratio"]
    keys += [f"sla.per_opd.{o.code}.opd_response_minutes" for o in cfg.opds]
    keys += [f"templates.{name}" for name in DEFAULT_TEMPLATES]
    for o in cfg.opds:
        keys += [f"opds.{o.code}.name", f"opds.{o.code}.keywords"]
    return keys


def parse_value(key: str, raw: str) -> Any:
    """The typed value from a form field; ConfigError naming the key when it does not parse."""
    kind, raw = _kind(key), raw.strip()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw.replace(",", "."))
    except ValueError:
        raise ConfigError([f"{key}: must be a number"]) from None
    if kind == "list":
        return [w.strip() for w in raw.replace("\n", ",").split(",") if w.strip()]
    return raw


def _get(d: dict, key: str) -> Any:
    parts = key.split(".")
    if parts[0] == "opds":
        opd = next((o for o in d["opds"] if o["code"] == parts[1]), None)
        return opd.get(parts[2]) if opd else None
    node: Any = d
    for p in parts:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def _set(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    if parts[0] == "opds":
        opd = next((o for o in d["opds"] if o["code"] == parts[1]), None)
        if opd is None:
            raise ConfigError([f"{key}: unknown OPD code {parts[1]!r}"])
        opd[parts[2]] = value
        return
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def apply(cfg: AppConfig, values: dict[str, Any]) -> AppConfig:
    """The configuration with these overrides, validated like config.yaml (ConfigError if not)."""
    allowed = set(editable_keys(cfg))
    d = copy.deepcopy(cfg.model_dump(mode="python"))
    for key, value in values.items():
        if key not in allowed:
            raise ConfigError([f"{key}: not a setting that can be changed in the console"])
        _set(d, key, value)
    try:
        new = AppConfig.model_validate(d)
    except ValidationError as exc:
        raise ConfigError([_phrase(e) for e in exc.errors()]) from None
    new._channel_settings = cfg._channel_settings
    return new


def effective_config(session: Session, base: AppConfig) -> AppConfig:
    """config.yaml plus the database's overrides (recomputed only when a setting changed)."""
    stamp = tuple(session.exec(select(func.count(), func.max(Setting.updated_at))).one())
    with _lock:
        hit = _cache.get(id(base))
        if hit and hit[0] == stamp:
            return hit[1]
    values = {s.key: s.value for s in session.exec(select(Setting)).all()}
    try:
        cfg = apply(base, values) if values else base
    except ConfigError:
        cfg = base  # a stale override (e.g. its OPD left config.yaml) must not take the console down
    with _lock:
        _cache[id(base)] = (stamp, cfg)
    return cfg


def listing(session: Session, base: AppConfig) -> list[Editable]:
    rows = {s.key: s for s in session.exec(select(Setting)).all()}
    eff = effective_config(session, base).model_dump(mode="python")
    out = []
    for key in editable_keys(base):
        s = rows.get(key)
        out.append(Editable(key, _kind(key), _get(eff, key), "database" if s else "config.yaml",
                            s.updated_by if s else None, s.updated_at if s else None))
    return out


def save(session: Session, base: AppConfig, key: str, raw: str, actor: str) -> None:
    """Validate (with every other override applied) and store one value; audited with before/after."""
    value = parse_value(key, raw)
    current = {s.key: s.value for s in session.exec(select(Setting)).all()}
    before = _get(apply(base, current).model_dump(mode="python"), key)
    apply(base, {**current, key: value})  # raises ConfigError with the file's wording
    row = session.get(Setting, key) or Setting(key=key)
    row.value, row.updated_by, row.updated_at = value, actor, utcnow()
    session.add(row)
    session.add(Event(at=utcnow(), actor=actor, action="settings.save",
                      data={"key": key, "before": before, "after": value}))


def reset(session: Session, key: str, actor: str) -> None:
    """Drop the override: config.yaml's value applies again."""
    row = session.get(Setting, key)
    if row is not None:
        session.delete(row)
        session.add(Event(at=utcnow(), actor=actor, action="settings.reset", data={"key": key, "before": row.value}))

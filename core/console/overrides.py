"""Settings admins change in the console: stored in the `setting` table, winning over config.yaml.

`config.yaml` is read at start-up; an override is a dotted path into it (``sla.opd_response_minutes``,
``sla.per_opd.DLH.opd_response_minutes``, ``templates.ack``, ``opds.DLH.keywords``) with its new
value. Overrides are validated with the same pydantic models as the file, so a value the file
would refuse is refused here too, with the same message. `effective_config` gives the merged
configuration; the console uses it on every request (cached until a setting changes).

The OPD catalogue grows and shrinks here too: ``opds.CODE`` holds a whole OPD an admin added
({code, name, keywords}, validated as `OPDConfig`), ``opds.CODE.active = false`` retires one
(its tickets keep it; the classifier sends what it would route there to triage). Until the
nightly training has learnt an added OPD from operators' re-routes, its keywords route to it
as a `classify.rules` entry (force), placed after the file's own rules.
Channel switches (``channels.NAME.enabled``) live in the same table but are `core.channel_switch`'s.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, func, select

from core.config import DEFAULT_TEMPLATES, AppConfig, ConfigError, OPDConfig, _phrase, catalogue_problems
from core.console.models import Setting
from core.models import Event, utcnow

log = logging.getLogger(__name__)
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
    resettable: bool = True  # False: the value belongs to an OPD added in the console (no file value)


def _kind(key: str) -> str:
    if key.endswith(("_minutes", "_hours")):
        return "int"
    if key == "sla.warn_ratio":
        return "float"
    if key.endswith(".keywords"):
        return "list"
    if key.endswith(".active"):
        return "bool"
    return "text"


def _keys(codes: list[str]) -> list[str]:
    keys = ["sla.opd_response_minutes", "sla.citizen_feedback_hours", "sla.warn_ratio"]
    keys += [f"sla.per_opd.{c}.opd_response_minutes" for c in codes]
    keys += [f"templates.{name}" for name in DEFAULT_TEMPLATES]
    for c in codes:
        keys += [f"opds.{c}.name", f"opds.{c}.keywords"]
    return keys


def editable_keys(cfg: AppConfig) -> list[str]:
    """The keys the settings page offers (OPD retirement has its own page: `opds.CODE.active`)."""
    return _keys([o.code for o in cfg.opds])


def added_code(key: str) -> str | None:
    """`opds.CODE` (an OPD added in the console) -> CODE."""
    parts = key.split(".")
    return parts[1] if len(parts) == 2 and parts[0] == "opds" else None


def _config_values(session: Session) -> dict[str, Any]:
    return {s.key: s.value for s in session.exec(select(Setting)).all() if not s.key.startswith("channels.")}


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
        opd = next((o for o in d["opds"] if isinstance(o, dict) and o.get("code") == parts[1]), None)
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
        opd = next((o for o in d["opds"] if isinstance(o, dict) and o.get("code") == parts[1]), None)
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
    d = copy.deepcopy(cfg.model_dump(mode="python"))
    added = {k: v for k, v in values.items() if added_code(k)}
    for key in sorted(added):
        d["opds"].append(copy.deepcopy(added[key]))
    codes = [o.get("code") if isinstance(o, dict) else None for o in d["opds"]]
    allowed = set(_keys([c for c in codes if isinstance(c, str)])) | {f"opds.{c}.active" for c in codes}
    for key, value in values.items():
        if key in added:
            continue
        if key not in allowed:
            raise ConfigError([f"{key}: not a setting that can be changed in the console"])
        _set(d, key, value)
    _keyword_rules(d, {added_code(k) for k in added})
    try:
        new = AppConfig.model_validate(d)
    except ValidationError as exc:
        raise ConfigError([_phrase(e) for e in exc.errors()]) from None
    problems = catalogue_problems(new)
    if problems:
        raise ConfigError(problems)
    new._channel_settings = cfg._channel_settings
    return new


def _keyword_rules(d: dict, added: set[str | None]) -> None:
    """An added OPD the model has not learnt yet is routed by its keywords: one forced rule each."""
    for o in d["opds"]:
        if isinstance(o, dict) and o.get("code") in added and o.get("active", True) and o.get("keywords"):
            d["classify"]["rules"].append({"opd": o["code"], "phrases": list(o["keywords"]), "force": True})


def _tolerant(base: AppConfig, values: dict[str, Any]) -> AppConfig:
    """Every override that still fits (one may have gone stale, e.g. its OPD left config.yaml);
    the console and the workers must not lose all the others because of it."""
    try:
        return apply(base, values)
    except ConfigError:
        pass
    good: dict[str, Any] = {}
    for key in sorted(values, key=lambda k: (added_code(k) is None, k)):
        try:
            apply(base, {**good, key: values[key]})
            good[key] = values[key]
        except ConfigError as exc:
            log.warning("console setting %s ignored: %s", key, "; ".join(exc.problems))
    return apply(base, good) if good else base


def effective_config(session: Session, base: AppConfig) -> AppConfig:
    """config.yaml plus the database's overrides (recomputed only when a setting changed)."""
    stamp = tuple(session.exec(select(func.count(), func.max(Setting.updated_at))).one())
    with _lock:
        hit = _cache.get(id(base))
        if hit and hit[0] == stamp:
            return hit[1]
    values = _config_values(session)
    cfg = _tolerant(base, values) if values else base
    with _lock:
        _cache[id(base)] = (stamp, cfg)
    return cfg


def listing(session: Session, base: AppConfig) -> list[Editable]:
    rows = {s.key: s for s in session.exec(select(Setting)).all()}
    eff_cfg = effective_config(session, base)
    eff = eff_cfg.model_dump(mode="python")
    out = []
    for key in editable_keys(eff_cfg):
        code = key.split(".")[1] if key.startswith("opds.") else None
        s = rows.get(key) or (rows.get(f"opds.{code}") if code else None)  # an added OPD is all database
        out.append(Editable(key, _kind(key), _get(eff, key), "database" if s else "config.yaml",
                            s.updated_by if s else None, s.updated_at if s else None, key in rows))
    return out


def save(session: Session, base: AppConfig, key: str, raw: str, actor: str) -> None:
    """Validate (with every other override applied) and store one value; audited with before/after."""
    value = parse_value(key, raw)
    _store(session, base, key, value, actor, "settings.save")


def _store(session: Session, base: AppConfig, key: str, value: Any, actor: str, action: str) -> None:
    current = _config_values(session)
    before = _get(_tolerant(base, current).model_dump(mode="python"), key) if not added_code(key) else None
    apply(base, {**current, key: value})  # raises ConfigError with the file's wording
    row = session.get(Setting, key) or Setting(key=key)
    row.value, row.updated_by, row.updated_at = value, actor, utcnow()
    session.add(row)
    session.add(Event(at=utcnow(), actor=actor, action=action, data={"key": key, "before": before, "after": value}))


def reset(session: Session, key: str, actor: str) -> None:
    """Drop the override: config.yaml's value applies again."""
    row = session.get(Setting, key)
    if row is not None:
        session.delete(row)
        session.add(Event(at=utcnow(), actor=actor, action="settings.reset", data={"key": key, "before": row.value}))


# ---------------------------------------------------------------- the OPD catalogue


def add_opd(session: Session, base: AppConfig, code: str, name: str, keywords: str, actor: str) -> OPDConfig:
    """A new OPD, validated as config.yaml's `opds` entries are; routable at once (keywords, re-route)."""
    entry = {"code": code.strip(), "name": name.strip(), "keywords": parse_value("opds.keywords", keywords)}
    try:
        opd = OPDConfig.model_validate(entry)
    except ValidationError as exc:
        raise ConfigError([_phrase(e, "opds") for e in exc.errors()]) from None
    if effective_config(session, base).opd(opd.code) is not None:
        raise ConfigError([f"opds: code {opd.code} appears more than once"])
    _store(session, base, f"opds.{opd.code}", opd.model_dump(include={"code", "name", "keywords"}), actor, "opd.add")
    return opd


def set_opd_active(session: Session, base: AppConfig, code: str, active: bool, actor: str) -> None:
    """Retire an OPD (nothing new is routed to it; its tickets keep it) or bring it back."""
    current = effective_config(session, base).opd(code)
    if current is None:
        raise ConfigError([f"opds.{code}: unknown OPD code {code!r}"])
    key, action = f"opds.{code}.active", "opd.restore" if active else "opd.deactivate"
    in_file = base.opd(code)
    if active != (in_file.active if in_file else True):
        _store(session, base, key, active, actor, action)
        return
    row = session.get(Setting, key)  # back to what config.yaml (or the added entry) says: no override
    if row is not None:
        session.delete(row)
        session.add(Event(at=utcnow(), actor=actor, action=action,
                          data={"key": key, "before": current.active, "after": active}))

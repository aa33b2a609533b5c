"""Typed configuration: `config.yaml` validated once at start-up.

Every section is a pydantic model with its defaults here, in one place. Errors are
reported as ``key.path: what is wrong`` so an admin at a Diskominfo can fix the file
without reading a traceback. Secrets are never literal in the file: they are written
as ``${ENV_VAR}`` and resolved from the environment; a missing secret only matters for
an enabled channel.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
UNSET_PREFIX = "\x00unset:"


class ConfigError(Exception):
    """A configuration problem, already phrased for the person who edits the file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OPDConfig(Strict):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,31}$")
    name: str = Field(min_length=3)
    keywords: list[str] = []
    categories: list[str] = []
    officers: NotifyTarget | None = None  # the OPD's complaint team (TPKPM), e.g. its Telegram group
    head: NotifyTarget | None = None  # the head of the OPD, for escalations
    active: bool = True  # false: retired (its tickets keep it; nothing new is routed to it)


class SLAOverride(Strict):
    opd_response_minutes: int | None = Field(default=None, gt=0)
    citizen_feedback_hours: int | None = Field(default=None, gt=0)


class NotifyTarget(Strict):
    channel: str = "telegram"
    address: str = Field(min_length=1)  # a Telegram group/chat id, a phone number...


class EscalationStep(Strict):
    after_minutes: int = Field(default=0, ge=0)  # minutes after the breach
    target: Literal["opd_officers", "opd_head", "supervisor"]


class BusinessHours(Strict):
    """Optional office-hours calendar: when enabled, SLA clocks only run in these hours."""

    enabled: bool = False
    start: str = Field(default="07:30", pattern=r"^\d{2}:\d{2}$")
    end: str = Field(default="16:00", pattern=r"^\d{2}:\d{2}$")
    days: list[int] = [0, 1, 2, 3, 4]  # Monday=0
    public_holidays: bool = True  # Indonesian national holidays (python-holidays)
    extra_holidays: list[str] = []  # YYYY-MM-DD: cuti bersama, local holidays


class SLAConfig(Strict):
    opd_response_minutes: int = Field(default=60, gt=0)
    citizen_feedback_hours: int = Field(default=24, gt=0)
    warn_ratio: float = Field(default=0.75, gt=0, lt=1)
    per_opd: dict[str, SLAOverride] = {}
    escalation: list[EscalationStep] = [
        EscalationStep(after_minutes=0, target="opd_officers"),
        EscalationStep(after_minutes=30, target="opd_head"),
        EscalationStep(after_minutes=60, target="supervisor"),
    ]
    supervisor: NotifyTarget | None = None  # the media-center supervisor
    business_hours: BusinessHours = BusinessHours()


class DedupConfig(Strict):
    repeat_window_hours: int = Field(default=72, gt=0)
    case_window_days: int = Field(default=14, gt=0)
    per_opd_window_days: dict[str, int] = {}
    lsh_threshold: float = Field(default=0.3, gt=0, lt=1)
    num_perm: int = Field(default=64, ge=16, le=512)
    repeat_similarity: float = Field(default=0.6, gt=0, le=1)
    case_similarity: float = Field(default=0.35, gt=0, le=1)
    geo_distance_m: float = Field(default=200.0, gt=0)
    # Share of the problem words (of the shorter report) two reports must have in common to be one case.
    problem_overlap: float = Field(default=0.5, gt=0, le=1)
    # Word similarity needed when a report names no place at all.
    wording_similarity: float = Field(default=0.6, gt=0, le=1)


class ClassifyRule(Strict):
    opd: str | None = None  # None: the rule marks a non-complaint
    phrases: list[str] = []
    pattern: str | None = None
    weight: float = 1.0
    force: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return v


class ClassifyConfig(Strict):
    threshold: float = Field(default=0.35, ge=0, le=1)
    rules: list[ClassifyRule] = []


class HubConfig(Strict):
    public_url: str = "http://127.0.0.1:8000"
    timezone: str = "Asia/Jakarta"
    ticket_prefix: str = Field(default="ADU", pattern=r"^[A-Z]{2,8}$")
    language: Literal["id", "en"] = "id"
    city: str = "Surabaya"


DEFAULT_TEMPLATES: dict[str, str] = {
    "ack": "Terima kasih, laporan Anda sudah kami terima dengan nomor {ticket} dan diteruskan ke {opd}. "
           "Kami akan menindaklanjuti secepatnya. Cek status: ketik \"cek status {ticket}\".",
    "ack_triage": "Terima kasih, laporan Anda sudah kami terima dengan nomor {ticket}. Petugas Media Center "
                  "sedang menentukan dinas yang menangani. Cek status: ketik \"cek status {ticket}\".",
    "repeat": "Laporan ini sudah kami catat sebagai {ticket} dan sedang ditangani {opd}. Terima kasih atas kesabaran Anda.",
    "duplicate_joined": "Terima kasih, masalah yang sama sudah dilaporkan warga lain dan sedang ditangani {opd} "
                        "dengan nomor {ticket}. Laporan Anda kami gabungkan dan Anda akan mendapat kabar yang sama.",
    "routed": "Laporan {ticket} telah diteruskan ke {opd}.",
    "responded": "Tanggapan {opd} untuk laporan {ticket}: {response}",
    "resolved": "Laporan {ticket} telah selesai ditangani oleh {opd}. {response} Terima kasih atas laporan Anda.",
    "rejected": "Mohon maaf, laporan {ticket} tidak dapat kami tindak lanjuti. Alasan: {reason}",
    "status": "Status laporan {ticket}: {status}. {latest}",
    "status_unknown": "Nomor laporan {ticket} tidak ditemukan untuk akun Anda. Periksa kembali nomornya.",
    "operator_reply": "{text}",
    "question": "Pertanyaan petugas tentang laporan {ticket}: {text} (balas pesan ini untuk menjawab)",
    "sla_warning": "[Peringatan SLA] Laporan {ticket} ({opd}) mendekati batas waktu {clock}: sisa {remaining} menit. {link}",
    "mention": "[Aduan] {author} menyebut Anda dalam catatan internal laporan {ticket} ({opd}). {link}",
    "sla_breach": "[SLA TERLAMPAUI] Laporan {ticket} ({opd}) melewati batas waktu {clock} sejak {overdue} menit lalu. "
                  "Eskalasi ke: {level}. {link}",
    # e-Musrenbang: the guided proposal conversation (core/musrenbang.py) and its decisions.
    "usulan_start": "Usulan pembangunan (e-Musrenbang). Langkah 1 dari 5: tuliskan judul usulan Anda, "
                    "misalnya \"Perbaikan saluran air di RW 03\". Ketik /batal kapan saja untuk membatalkan.",
    "usulan_description": "Langkah 2 dari 5: jelaskan usulan Anda: apa yang dibutuhkan, mengapa, dan siapa yang merasakan manfaatnya.",
    "usulan_photo": "Langkah 3 dari 5: kirimkan foto lokasi yang diusulkan.",
    "usulan_location": "Langkah 4 dari 5: kirimkan titik lokasi usulan (lampirkan \"Lokasi\" di Telegram).",
    "usulan_kelurahan": "Langkah 5 dari 5: ketik nama kelurahan lokasi usulan.{suggestion}",
    "usulan_retry": "Maaf, {problem}",
    "usulan_done": "Terima kasih, usulan Anda tercatat dengan nomor {number}: \"{title}\" (Kelurahan {kelurahan}). "
                   "Usulan akan diverifikasi kelurahan, kecamatan, lalu OPD/Bappeda; setiap keputusan kami kabarkan di sini.",
    "usulan_cancelled": "Usulan dibatalkan. Ketik /usulan untuk memulai lagi.",
    "usulan_decision": "Kabar usulan {number} \"{title}\": {status}. {reason}",
}


class FloodConfig(Strict):
    """A sender writing more than this in a minute is throttled and flagged, not acknowledged each time."""

    max_per_minute: int = Field(default=20, ge=1)


class MediaConfig(Strict):
    """Photos fetched as evidence (core.media): a size cap, and a pixel cap against decompression bombs."""

    max_bytes: int = Field(default=10_000_000, gt=0)
    max_pixels: int = Field(default=50_000_000, gt=0)


class PrivacyConfig(Strict):
    """Retention under UU 27/2022 (PDP): citizens' identities are anonymised this long after the last
    activity on their finished tickets (core.privacy); the complaint itself stays for statistics."""

    anonymise_after_months: int = Field(default=24, ge=1, le=240)
    nightly: bool = True  # run the anonymisation in the scheduler's nightly slot


class QueueConfig(Strict):
    """Retries: a failing inbound job is retried after these delays (seconds), then parked as failed."""

    inbound_retry_delays: list[int] = [2, 10, 30, 120, 600]
    outbound_max_attempts: int = Field(default=6, ge=1, le=50)


def known_templates(v: dict[str, str]) -> dict[str, str]:
    """Refuse a template name the hub never sends (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(v) - set(DEFAULT_TEMPLATES))
    if unknown:
        raise ValueError(f"unknown template {unknown[0]!r}; known: {', '.join(DEFAULT_TEMPLATES)}")
    return v


class AppConfig(Strict):
    hub: HubConfig = HubConfig()
    channels: dict[str, dict[str, Any]] = {}
    opds: list[OPDConfig] = []
    sla: SLAConfig = SLAConfig()
    dedup: DedupConfig = DedupConfig()
    classify: ClassifyConfig = ClassifyConfig()
    queue: QueueConfig = QueueConfig()
    flood: FloodConfig = FloodConfig()
    media: MediaConfig = MediaConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    templates: dict[str, str] = dict(DEFAULT_TEMPLATES)

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, v: dict[str, str]) -> dict[str, str]:
        return {**DEFAULT_TEMPLATES, **known_templates(v)}

    # Validated per-connector settings, filled by load_config (not part of the file schema).
    _channel_settings: dict[str, Any] = {}

    def opd(self, code: str | None) -> OPDConfig | None:
        return next((o for o in self.opds if o.code == code), None)

    def channel(self, name: str) -> Any:
        """The connector's validated settings model for channel `name`."""
        return self._channel_settings[name]

    def enabled_channels(self) -> list[str]:
        return [n for n, s in self._channel_settings.items() if s.enabled]


# ---------------------------------------------------------------- environment


def data_dir() -> Path:
    """Where embedded Redis, SQLite, models and attachments live (ADUAN_DATA_DIR)."""
    path = Path(os.environ.get("ADUAN_DATA_DIR", "./data")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_path() -> Path:
    return Path(os.environ.get("ADUAN_CONFIG", "config.yaml"))


# ---------------------------------------------------------------- loading


def _resolve_env(node: Any) -> Any:
    """Replace ${VAR} references; an unset variable becomes a marker checked later."""
    if isinstance(node, dict):
        return {k: _resolve_env(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v) for v in node]
    if isinstance(node, str) and "${" in node:
        def sub(m: re.Match[str]) -> str:
            val = os.environ.get(m.group(1))
            return val if val is not None else f"{UNSET_PREFIX}{m.group(1)}"
        return _ENV_REF.sub(sub, node)
    return node


def _phrase(err: dict[str, Any], prefix: str = "") -> str:
    path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        msg = "unknown key (check the spelling; see config.yaml in the repository for the keys)"
    elif kind == "missing":
        msg = "required value is missing"
    else:
        msg = re.sub(r"^Input should be", "must be", msg)
        msg = re.sub(r"^Value error, ", "", msg)
    return f"{path or '(top level)'}: {msg}"


def _secret_fields(model: type[BaseModel]) -> set[str]:
    return {n for n, f in model.model_fields.items() if "SecretStr" in str(f.annotation)}


def _check_channel(name: str, block: Any, raw_block: Any) -> tuple[Any, list[str]]:
    from connectors import REGISTRY, load_connector

    if name not in REGISTRY:
        return None, [f"channels.{name}: unknown channel; known channels: {', '.join(sorted(REGISTRY))}"]
    if not isinstance(block, dict):
        return None, [f"channels.{name}: must be a mapping of settings"]
    settings_model = load_connector(name).Settings
    problems: list[str] = []
    enabled = bool(block.get("enabled", False))
    cleaned = dict(block)
    for key in _secret_fields(settings_model):
        raw = (raw_block or {}).get(key)
        if isinstance(raw, str) and raw and not _ENV_REF.fullmatch(raw.strip()):
            problems.append(f"channels.{name}.{key}: secrets must not be written in the file; "
                            f"use an environment reference such as ${{{name.upper()}_{key.upper()}}}")
    unset: dict[str, str] = {}
    for key, val in block.items():
        if isinstance(val, str) and UNSET_PREFIX in val:
            var = val.split(UNSET_PREFIX, 1)[1].split("\x00")[0]
            field = settings_model.model_fields.get(key)
            optional = field is not None and not field.is_required() and field.default is None
            if enabled and not optional:
                problems.append(_unset(name, key, var))
            unset[key] = var  # an optional secret may stay unset; the connector says if it needs it
            cleaned[key] = None
    if problems:
        return None, problems
    try:
        return settings_model.model_validate(cleaned), []
    except ValidationError as exc:
        found = [_phrase(e, f"channels.{name}") for e in exc.errors()]
        hints = [_unset(name, key, var) for key, var in unset.items() if any(key in p for p in found)]
        return None, hints or found


def _unset(channel: str, key: str, var: str) -> str:
    return (f"channels.{channel}.{key}: environment variable {var} is not set "
            f"(export it, or set channels.{channel}.enabled: false)")


def parse_config(raw: Any) -> AppConfig:
    """Validate a loaded YAML tree; raise ConfigError naming every bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): the configuration must be a mapping of sections"])
    resolved = _resolve_env(raw)
    problems: list[str] = []
    try:
        cfg = AppConfig.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError([_phrase(e) for e in exc.errors()]) from None
    for path, val in _walk(resolved):
        if isinstance(val, str) and UNSET_PREFIX in val and not path.startswith("channels."):
            problems.append(f"{path}: environment variable {val.split(UNSET_PREFIX, 1)[1]} is not set")
    problems += catalogue_problems(cfg)
    settings: dict[str, Any] = {}
    for name, block in resolved.get("channels", {}).items():
        model, errs = _check_channel(name, block, raw.get("channels", {}).get(name))
        problems.extend(errs)
        if model is not None:
            settings[name] = model
    if problems:
        raise ConfigError(problems)
    cfg._channel_settings = settings
    return cfg


def catalogue_problems(cfg: AppConfig) -> list[str]:
    """Checks across sections (OPD codes unique and known); also run on the console's changes."""
    problems: list[str] = []
    codes = [o.code for o in cfg.opds]
    for dup in sorted({c for c in codes if codes.count(c) > 1}):
        problems.append(f"opds: code {dup} appears more than once")
    for i, rule in enumerate(cfg.classify.rules):
        if rule.opd is not None and rule.opd not in codes:
            problems.append(f"classify.rules.{i}.opd: unknown OPD code {rule.opd!r}")
        if not rule.phrases and not rule.pattern:
            problems.append(f"classify.rules.{i}: give phrases or a pattern")
    for code in list(cfg.sla.per_opd) + list(cfg.dedup.per_opd_window_days):
        if code not in codes:
            problems.append(f"sla/dedup per_opd: unknown OPD code {code!r}")
    return problems


def _walk(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _walk(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _walk(v, f"{prefix}.{i}")]
    return [(prefix, node)]


def load_config(path: str | Path | None = None) -> AppConfig:
    """Read and validate the configuration file (default: $ADUAN_CONFIG or ./config.yaml)."""
    p = Path(path) if path else config_path()
    if not p.exists():
        raise ConfigError([f"{p}: configuration file not found (pass --config PATH or set ADUAN_CONFIG)"])
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError([f"{p}: not valid YAML ({exc})"]) from None
    return parse_config(raw)


@cache
def get_config() -> AppConfig:
    """The process-wide configuration, loaded once."""
    return load_config()


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""

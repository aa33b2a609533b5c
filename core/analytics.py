"""Numbers for policy makers: every complaint kept as evidence for development policy.

Pure queries over `Ticket` (and `core.sla.report` for the SLA figures), shared by the dashboard
(`core.analytics_web`), the exports and the monthly report (`core.report`). Grouping by day,
week or month happens in WIB, in Python, so SQLite and PostgreSQL give the same answers.
Nothing here returns personal data except `ticket_rows(..., personal=True)`, which only roles
allowed to see reporters ask for.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, func, select

from connectors.twitter_text import redact
from core.config import AppConfig
from core.models import Contact, Ticket, utcnow

OPEN = ("new", "routed", "responded")
DIMENSIONS = ("channel", "opd", "kecamatan", "kelurahan")
AGE_BUCKETS = ((1, "< 1 hari"), (3, "1–3 hari"), (7, "3–7 hari"), (30, "7–30 hari"), (None, "> 30 hari"))
STOPWORDS = set("""yang dan di ke dari ini itu ada sudah belum tidak untuk dengan pada karena sejak sangat sekali
mohon tolong min pak bu kak bapak ibu kami saya kita warga kok ya juga lagi masih bisa akan jadi dalam atau oleh
tapi namun agar supaya hari minggu bulan tahun sudah telah dong nih sih deh jl jln jalan kelurahan kecamatan rt rw
no nomor depan dekat samping sama tersebut banyak segera terima kasih pagi siang sore malam""".split())


@dataclass
class Filters:
    """What the dashboard and the exports are limited to (dates are WIB calendar days, inclusive)."""

    start: date | None = None
    end: date | None = None
    opd: str = ""
    channel: str = ""
    kecamatan: str = ""
    kelurahan: str = ""
    status: str = ""  # "", "open", or one ticket status

    def bounds(self, cfg: AppConfig) -> tuple[datetime | None, datetime | None]:
        tz = ZoneInfo(cfg.hub.timezone)
        lo = datetime.combine(self.start, time(0), tz) if self.start else None
        hi = datetime.combine(self.end + timedelta(days=1), time(0), tz) if self.end else None
        return lo, hi

    def where(self, cfg: AppConfig) -> list[Any]:
        conds: list[Any] = [col(Ticket.number).is_not(None), Ticket.status != "spam"]
        lo, hi = self.bounds(cfg)
        if lo:
            conds.append(Ticket.created_at >= lo)
        if hi:
            conds.append(Ticket.created_at < hi)
        if self.opd == "-":
            conds.append(col(Ticket.opd_code).is_(None))
        elif self.opd:
            conds.append(Ticket.opd_code == self.opd)
        for name in ("channel", "kecamatan", "kelurahan"):
            if getattr(self, name):
                conds.append(getattr(Ticket, name) == getattr(self, name))
        if self.status == "open":
            conds.append(col(Ticket.status).in_(OPEN))
        elif self.status:
            conds.append(Ticket.status == self.status)
        return conds

    def query(self, cfg: AppConfig) -> Any:
        return select(Ticket).where(*self.where(cfg))


def tickets(session: Session, cfg: AppConfig, f: Filters) -> list[Ticket]:
    return list(session.exec(f.query(cfg).order_by(col(Ticket.created_at))).all())


def _key(t: Ticket, by: str) -> str:
    value = t.opd_code if by == "opd" else getattr(t, by)
    return value or "(tidak diketahui)" if by != "opd" else value or "(triase)"


def _bucket(cfg: AppConfig, when: datetime, size: str) -> str:
    d = when.astimezone(ZoneInfo(cfg.hub.timezone)).date()
    if size == "month":
        return d.strftime("%Y-%m")
    if size == "week":
        monday = d - timedelta(days=d.weekday())
        return monday.isoformat()
    return d.isoformat()


def volume(rows: list[Ticket], cfg: AppConfig, by: str, size: str = "day") -> dict[str, Any]:
    """Complaints per period, one series per channel/OPD/kecamatan/kelurahan (periods with none included)."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}")
    counts: dict[str, Counter] = defaultdict(Counter)
    for t in rows:
        if t.created_at:
            counts[_key(t, by)][_bucket(cfg, t.created_at, size)] += 1
    labels = _periods(cfg, [t.created_at for t in rows if t.created_at], size)
    series = {k: [c.get(p, 0) for p in labels] for k, c in sorted(counts.items(), key=lambda kv: -sum(kv[1].values()))}
    return {"labels": labels, "series": series}


def _periods(cfg: AppConfig, times: list[datetime], size: str) -> list[str]:
    if not times:
        return []
    tz = ZoneInfo(cfg.hub.timezone)
    d, last = min(times).astimezone(tz).date(), max(times).astimezone(tz).date()
    out: list[str] = []
    while d <= last:
        label = _bucket(cfg, datetime.combine(d, time(12), tz), size)
        if not out or out[-1] != label:
            out.append(label)
        d += timedelta(days=1)
    return out


def totals(rows: list[Ticket], by: str) -> list[tuple[str, int]]:
    return Counter(_key(t, by) for t in rows).most_common()


def top_clusters(rows: list[Ticket], n: int = 10) -> list[dict[str, Any]]:
    """Problems many citizens reported (cluster size = reporters folded into one ticket by deduplication)."""
    best = sorted((t for t in rows if t.reporters > 1), key=lambda t: (-t.reporters, t.id or 0))[:n]
    return [{"number": t.number, "reporters": t.reporters, "opd": t.opd_code, "kelurahan": t.kelurahan,
             "subject": redact(t.subject or "")[:160], "status": t.status} for t in best]


def top_places(rows: list[Ticket], n: int = 10) -> list[dict[str, Any]]:
    """Places with the most reports (by reporters), with the OPD that gets most of them."""
    by_place: dict[str, list[Ticket]] = defaultdict(list)
    for t in rows:
        place = t.street and f"{t.street}, {t.kelurahan or t.kecamatan or '?'}" or t.kelurahan or t.kecamatan
        if place:
            by_place[place].append(t)
    out = [{"place": p, "tickets": len(ts), "reporters": sum(t.reporters for t in ts),
            "opd": Counter(t.opd_code or "(triase)" for t in ts).most_common(1)[0][0]} for p, ts in by_place.items()]
    return sorted(out, key=lambda r: (-r["reporters"], -r["tickets"], r["place"]))[:n]


def frequent_terms(rows: list[Ticket], n: int = 20) -> list[tuple[str, int]]:
    """The words citizens use most (in how many complaints each appears), without stop words."""
    c: Counter = Counter()
    for t in rows:
        words = set(re.findall(r"[a-z][a-z-]{2,}", redact(t.subject or "").lower()))
        c.update(w for w in words if w not in STOPWORDS and "disamarkan" not in w)
    return c.most_common(n)


def backlog(rows: list[Ticket], now: datetime | None = None) -> dict[str, Any]:
    """Open tickets per OPD and age bucket (how long they have been waiting)."""
    now = now or utcnow()
    labels = [label for _, label in AGE_BUCKETS]
    table: dict[str, Counter] = defaultdict(Counter)
    for t in rows:
        if t.status not in OPEN or t.created_at is None:
            continue
        days = (now - t.created_at).total_seconds() / 86400
        label = next(lb for limit, lb in AGE_BUCKETS if limit is None or days < limit)
        table[t.opd_code or "(triase)"][label] += 1
    return {"labels": labels, "rows": {k: [v.get(lb, 0) for lb in labels] for k, v in sorted(table.items())},
            "total": sum(sum(v.values()) for v in table.values())}


def month_on_month(session: Session, cfg: AppConfig, month: date, f: Filters | None = None) -> list[dict[str, Any]]:
    """Complaints per OPD in `month` and the month before, with the change."""
    prev = (month.replace(day=1) - timedelta(days=1)).replace(day=1)
    this_f, prev_f = _month_filters(month, f), _month_filters(prev, f)
    now_c, old_c = _opd_counts(session, cfg, this_f), _opd_counts(session, cfg, prev_f)
    out = []
    for code in sorted(set(now_c) | set(old_c), key=lambda k: (-now_c.get(k, 0), k)):
        a, b = now_c.get(code, 0), old_c.get(code, 0)
        out.append({"opd": code, "this": a, "previous": b, "change": a - b,
                    "change_pct": round((a - b) / b * 100, 1) if b else None})
    return out


def _opd_counts(session: Session, cfg: AppConfig, f: Filters) -> Counter:
    rows = session.exec(select(Ticket.opd_code, func.count()).where(*f.where(cfg)).group_by(Ticket.opd_code)).all()
    return Counter({code or "(triase)": n for code, n in rows})


def _month_filters(month: date, base: Filters | None) -> Filters:
    first = month.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    g = Filters(**{**(base.__dict__ if base else {}), "start": first, "end": last})
    return g


def sla_rows(session: Session, cfg: AppConfig, f: Filters) -> list[dict[str, Any]]:
    """SLA compliance per OPD on the filtered tickets (core.sla.report's figures, which has no end date
    or channel/place filters of its own)."""
    from dataclasses import asdict

    return [asdict(r) for r in _sla_until(tickets(session, cfg, f), cfg)]


def _sla_until(rows: list[Ticket], cfg: AppConfig) -> list[Any]:
    """The same figures as core.sla.report, on exactly the filtered tickets."""
    from core import sla

    now = utcnow()
    by_opd: dict[str, list[Ticket]] = defaultdict(list)
    for t in rows:
        if t.opd_code:
            by_opd[t.opd_code].append(t)
    return sla.compliance(cfg, dict(by_opd), now)


def by_kelurahan_points(rows: list[Ticket]) -> list[dict[str, Any]]:
    """Reports per kelurahan with the kelurahan's centroid, for the offline map."""
    from core.location import gazetteer

    centroids = {(kec["name"], k["name"]): k["centroid"] for kec in gazetteer()["kecamatan"] for k in kec["kelurahan"]}
    counts = Counter((t.kecamatan, t.kelurahan) for t in rows if t.kelurahan)
    return [{"kecamatan": kec, "kelurahan": kel, "count": n, "lat": centroids[(kec, kel)][0],
             "lon": centroids[(kec, kel)][1]} for (kec, kel), n in counts.most_common() if (kec, kel) in centroids]


# ---------------------------------------------------------------- ticket rows for exports


EXPORT_COLUMNS = ("Nomor", "Diterima (WIB)", "Kanal", "OPD", "Status", "Kecamatan", "Kelurahan", "Jalan",
                  "Ringkasan", "Jumlah pelapor", "Diteruskan (WIB)", "Ditanggapi (WIB)", "Selesai (WIB)")
PERSONAL_COLUMNS = ("Nama pelapor", "Kontak pelapor")


def ticket_rows(session: Session, cfg: AppConfig, f: Filters, personal: bool = False) -> list[list[Any]]:
    """One row per ticket for CSV/Excel; the complaint text is redacted and reporters are left out
    unless `personal` (admins and operators)."""
    tz = ZoneInfo(cfg.hub.timezone)

    def w(d: datetime | None) -> str:
        return d.astimezone(tz).strftime("%Y-%m-%d %H:%M") if d else ""

    out = []
    contacts: dict[int, Contact] = {}
    for t in tickets(session, cfg, f):
        row: list[Any] = [t.number, w(t.created_at), t.channel, t.opd_code or "", t.status, t.kecamatan or "",
                          t.kelurahan or "", t.street or "", t.subject if personal else redact(t.subject or ""),
                          t.reporters, w(t.routed_at), w(t.responded_at), w(t.resolved_at or t.closed_at)]
        if personal:
            c = contacts.get(t.contact_id or 0) or (session.get(Contact, t.contact_id) if t.contact_id else None)
            if c is not None:
                contacts[c.id] = c  # type: ignore[index]
            row += [c.display_name or "" if c else "", f"{c.channel}:{c.address}" if c else ""]
        out.append(row)
    return out


@dataclass
class Dashboard:
    filters: Filters
    total: int = 0
    open: int = 0
    volume: dict[str, Any] = field(default_factory=dict)
    totals: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    places: list[dict[str, Any]] = field(default_factory=list)
    terms: list[tuple[str, int]] = field(default_factory=list)
    sla: list[dict[str, Any]] = field(default_factory=list)
    backlog: dict[str, Any] = field(default_factory=dict)
    mom: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)


def dashboard(session: Session, cfg: AppConfig, f: Filters, by: str = "channel", size: str = "day") -> Dashboard:
    from dataclasses import asdict

    rows = tickets(session, cfg, f)
    today = utcnow().astimezone(ZoneInfo(cfg.hub.timezone)).date()
    return Dashboard(filters=f, total=len(rows), open=sum(t.status in OPEN for t in rows),
                     volume=volume(rows, cfg, by, size), totals={d: totals(rows, d) for d in DIMENSIONS},
                     clusters=top_clusters(rows), places=top_places(rows), terms=frequent_terms(rows),
                     sla=[asdict(r) for r in _sla_until(rows, cfg)], backlog=backlog(rows),
                     mom=month_on_month(session, cfg, f.end or today, Filters(**{**f.__dict__, "start": None, "end": None})),
                     points=by_kelurahan_points(rows))

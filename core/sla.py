"""SLA clocks and escalation: the OPD responds within 60 minutes, the citizen hears back within 24 hours.

Two clocks per ticket, configured globally and per OPD:
- ``opd_response``: from routing until the OPD's first response;
- ``citizen_feedback``: from receipt until the first real feedback to the citizen (not the automatic ack).
Both pause while the ticket waits on the citizen's answer and, when a business-hours calendar is
enabled, only run in office hours outside Indonesian public holidays.

The sweep (RQ cron, every minute) warns at `warn_ratio` and escalates on breach along the
configured chain. Each warning and escalation is an outbound message whose idempotency key is
(ticket, clock, level), so it is sent exactly once however many sweepers run and restart.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core.config import AppConfig, NotifyTarget
from core.models import Ticket, utcnow

OPEN = ("new", "routed", "responded")
CLOCK_LABEL = {"opd_response": "respons OPD", "citizen_feedback": "umpan balik ke warga"}


@dataclass
class Clock:
    name: str
    started: datetime
    budget: timedelta
    stopped: datetime | None
    elapsed: timedelta

    @property
    def ratio(self) -> float:
        return self.elapsed / self.budget if self.budget else 0.0

    @property
    def breached(self) -> bool:
        return self.elapsed >= self.budget

    @property
    def remaining(self) -> timedelta:
        return self.budget - self.elapsed


def budgets(cfg: AppConfig, opd: str | None) -> tuple[timedelta, timedelta]:
    o = cfg.sla.per_opd.get(opd or "")
    minutes = (o.opd_response_minutes if o and o.opd_response_minutes else cfg.sla.opd_response_minutes)
    hours = (o.citizen_feedback_hours if o and o.citizen_feedback_hours else cfg.sla.citizen_feedback_hours)
    return timedelta(minutes=minutes), timedelta(hours=hours)


@lru_cache(maxsize=16)
def _holidays(years: tuple[int, ...], extra: tuple[str, ...], national: bool) -> frozenset[date]:
    days: set[date] = {date.fromisoformat(d) for d in extra}
    if national:
        import holidays

        days |= set(holidays.Indonesia(years=list(years)))
    return frozenset(days)


def running_time(cfg: AppConfig, start: datetime, end: datetime) -> timedelta:
    """Time the clock runs between start and end: wall time, or office hours when configured."""
    if end <= start:
        return timedelta(0)
    bh = cfg.sla.business_hours
    if not bh.enabled:
        return end - start
    tz = ZoneInfo(cfg.hub.timezone)
    s, e = start.astimezone(tz), end.astimezone(tz)
    off = _holidays(tuple(range(s.year, e.year + 1)), tuple(bh.extra_holidays), bh.public_holidays)
    open_t, close_t = time.fromisoformat(bh.start), time.fromisoformat(bh.end)
    total, day = timedelta(0), s.date()
    while day <= e.date():
        if day.weekday() in bh.days and day not in off:
            lo = max(s, datetime.combine(day, open_t, tz))
            hi = min(e, datetime.combine(day, close_t, tz))
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total


def clocks(cfg: AppConfig, t: Ticket, now: datetime) -> list[Clock]:
    """The ticket's running or stopped clocks (a triage ticket has no OPD clock yet)."""
    opd_budget, feedback_budget = budgets(cfg, t.opd_code)
    paused = timedelta(seconds=t.sla_paused_seconds or 0)
    if t.awaiting_citizen_since:
        paused += max(timedelta(0), now - t.awaiting_citizen_since)
    out = []
    if t.routed_at:
        stop = t.responded_at or t.resolved_at or t.rejected_at
        elapsed = running_time(cfg, t.routed_at, stop or now) - paused
        out.append(Clock("opd_response", t.routed_at, opd_budget, stop, max(elapsed, timedelta(0))))
    if t.created_at:
        stop = t.feedback_at or t.resolved_at or t.rejected_at
        elapsed = running_time(cfg, t.created_at, stop or now) - paused
        out.append(Clock("citizen_feedback", t.created_at, feedback_budget, stop, max(elapsed, timedelta(0))))
    return out


def due_at(cfg: AppConfig, t: Ticket, now: datetime | None = None) -> datetime | None:
    """When the OPD-response clock breaches (wall-clock estimate), for sorting the inbox by urgency."""
    now = now or utcnow()
    for c in clocks(cfg, t, now):
        if c.name == "opd_response" and c.stopped is None:
            return now + c.remaining
    return None


# ---------------------------------------------------------------- the sweep


def _target(cfg: AppConfig, level: str, opd: str | None) -> NotifyTarget | None:
    o = cfg.opd(opd)
    if level == "opd_officers":
        return o.officers if o else None
    if level == "opd_head":
        return o.head if o else None
    return cfg.sla.supervisor


def sweep(session: Session, cfg: AppConfig, now: datetime | None = None) -> list[int]:
    """Warn and escalate every open ticket; returns the ids of the new notification messages."""
    from core.notify import notify_staff

    now = now or utcnow()
    created: list[int] = []
    tickets = session.exec(select(Ticket).where(Ticket.status.in_(OPEN))).all()
    for t in tickets:
        for c in clocks(cfg, t, now):
            if c.stopped is not None:
                continue
            common = dict(ticket=t.number, opd=t.opd_code or "Media Center", clock=CLOCK_LABEL[c.name],
                          link=f"{cfg.hub.public_url.rstrip('/')}/console/tickets/{t.id}")
            steps: list[tuple[str, str, dict]] = []
            if c.ratio >= cfg.sla.warn_ratio and not c.breached:
                remaining = max(1, int(c.remaining.total_seconds() // 60))
                steps.append(("warn", "opd_officers", {"remaining": remaining}))
            if c.breached:
                overdue = int((c.elapsed - c.budget).total_seconds() // 60)
                for step in cfg.sla.escalation:
                    if overdue >= step.after_minutes:
                        steps.append((f"breach-{step.target}", step.target, {"overdue": overdue, "level": step.target}))
            for level, target_name, extra in steps:
                target = _target(cfg, target_name, t.opd_code) or cfg.sla.supervisor
                template = "sla_warning" if level == "warn" else "sla_breach"
                mid = notify_staff(session, cfg, t, target, template, key=f"sla:{t.id}:{c.name}:{level}",
                                   action=f"sla.{level}", values={**common, **extra})
                if mid is not None:
                    created.append(mid)
    return created


# ---------------------------------------------------------------- reporting


@dataclass
class OpdCompliance:
    opd: str
    tickets: int
    within: float  # share of finished OPD clocks within time
    median_response_min: float | None
    p90_response_min: float | None
    median_feedback_h: float | None
    p90_feedback_h: float | None
    open_breaches: int


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def report(session: Session, cfg: AppConfig, since: datetime | None = None, opd: str | None = None,
           now: datetime | None = None) -> list[OpdCompliance]:
    """Compliance per OPD: share within time, median/p90 response and feedback times, open breaches."""
    now = now or utcnow()
    q = select(Ticket).where(Ticket.opd_code.is_not(None))
    if since:
        q = q.where(Ticket.created_at >= since)
    if opd:
        q = q.where(Ticket.opd_code == opd)
    by_opd: dict[str, list[Ticket]] = {}
    for t in session.exec(q).all():
        by_opd.setdefault(t.opd_code or "-", []).append(t)
    return compliance(cfg, by_opd, now)


def compliance(cfg: AppConfig, by_opd: dict[str, list[Ticket]], now: datetime) -> list[OpdCompliance]:
    """The compliance figures for tickets already grouped by OPD (shared by the CLI and the dashboard)."""
    rows = []
    for code, tickets in sorted(by_opd.items()):
        resp, feed, within, finished, breaches = [], [], 0, 0, 0
        for t in tickets:
            for c in clocks(cfg, t, now):
                if c.stopped is None:
                    breaches += int(c.breached and t.status in OPEN)
                    continue
                if c.name == "opd_response":
                    finished += 1
                    within += int(not c.breached)
                    resp.append(c.elapsed.total_seconds() / 60)
                else:
                    feed.append(c.elapsed.total_seconds() / 3600)
        rows.append(OpdCompliance(code, len(tickets), within / finished if finished else 1.0,
                                  _pct(resp, 0.5), _pct(resp, 0.9), _pct(feed, 0.5), _pct(feed, 0.9), breaches))
    return rows

"""The X read budget: how many posts and DM events the city's API tier may read per month.

X caps reads per calendar month (the "post cap" of Basic/Pro, or a pay-per-use bill). A poll
costs one read per post or DM event returned, and at least one per request. To last the
month, the poller waits ``seconds_left_in_month * cost_per_poll / reads_left`` between polls
(never less than ``poll_interval``), and stops until the month turns when the budget is spent.

The state (used, remaining, next poll, 429 until) is kept in the Cursor table, key ``budget``,
so a restarted poller keeps the same pace and admins can see it (`budget_status`).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

CHANNEL, KEY = "twitter", "budget"


def _month(now: float) -> str:
    return datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m")


def seconds_left_in_month(now: float) -> float:
    d = datetime.fromtimestamp(now, tz=timezone.utc)
    nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc)
    return nxt.timestamp() - now


def spread_interval(budget: int | None, used: int, cost_per_poll: float, seconds_left: float,
                    minimum: float) -> float:
    """Seconds between polls so that the reads left last until the end of the month."""
    if not budget:
        return minimum
    remaining = budget - used
    if remaining < cost_per_poll:
        return seconds_left + 1.0  # spent: wait for next month's allowance
    return max(minimum, seconds_left * cost_per_poll / remaining)


class Budget:
    """One poller's view of the month's reads; load, spend during a poll, then `finish_poll`."""

    def __init__(self, settings: Any, now: float | None = None):
        from core.cursors import load_cursor

        self.settings = settings
        self.now = now if now is not None else time.time()
        raw = load_cursor(CHANNEL, KEY)
        state: dict[str, Any] = json.loads(raw) if raw else {}
        if state.get("month") != _month(self.now):
            state = {"month": _month(self.now), "used": 0, "polls": 0, "cost_avg": None,
                     "rate_limited_until": state.get("rate_limited_until"), "next_poll_at": None}
        state["budget"] = settings.monthly_read_budget
        self.state = state
        self.spent_now = 0

    def base_cost(self) -> int:
        return 1 + int(bool(getattr(self.settings, "poll_dms", True)))

    def cost_per_poll(self) -> float:
        avg = self.state.get("cost_avg")
        return max(float(self.base_cost()), float(avg or 0))

    def spend(self, items: int) -> None:
        n = max(1, items)
        self.state["used"] += n
        self.spent_now += n

    def interval(self) -> float:
        return spread_interval(self.settings.monthly_read_budget, self.state["used"], self.cost_per_poll(),
                               seconds_left_in_month(self.now), float(self.settings.poll_interval))

    def delay(self) -> float:
        """Seconds to wait before polling now is allowed (429 reset, budget pacing, spent budget)."""
        waits = [(self.state.get("rate_limited_until") or 0) - self.now,
                 (self.state.get("next_poll_at") or 0) - self.now]
        budget = self.settings.monthly_read_budget
        if budget and budget - self.state["used"] < self.cost_per_poll():
            waits.append(seconds_left_in_month(self.now) + 1.0)
        return max(0.0, *waits)

    def finish_poll(self, failed: bool = False) -> float:
        """Record the poll; returns the seconds until the next one."""
        if not failed:
            self.state["polls"] += 1
            avg = self.state.get("cost_avg")
            self.state["cost_avg"] = self.spent_now if avg is None else 0.8 * avg + 0.2 * self.spent_now
            self.state["rate_limited_until"] = None
        interval = self.interval()
        if not failed:
            self.state["next_poll_at"] = self.now + interval
        self._save()
        return interval

    def rate_limited(self, seconds: float) -> None:
        self.state["rate_limited_until"] = time.time() + seconds
        self._save()

    def _save(self) -> None:
        from core.cursors import save_cursor

        budget = self.settings.monthly_read_budget
        self.state["remaining"] = None if not budget else max(0, budget - self.state["used"])
        save_cursor(CHANNEL, KEY, json.dumps(self.state, sort_keys=True))

    def describe(self) -> str:
        budget = self.settings.monthly_read_budget
        if not budget:
            return f"{self.state['used']} reads this month (no budget set)"
        return (f"{self.state['used']} of {budget} reads used this month, "
                f"{max(0, budget - self.state['used'])} left, one poll every {self.interval():.0f} s")


def budget_status() -> dict[str, Any] | None:
    """For the admin view: the stored budget state (None before the first poll)."""
    from core.cursors import load_cursor

    raw = load_cursor(CHANNEL, KEY)
    if not raw:
        return None
    state = json.loads(raw)
    for key in ("next_poll_at", "rate_limited_until"):
        if state.get(key):
            state[key] = datetime.fromtimestamp(state[key], tz=timezone.utc).isoformat()
    return state


def budget_view(settings: Any, now: float | None = None) -> dict[str, Any]:
    """The month's reads as admins see them (JSON endpoint and the console's channels page)."""
    budget = settings.monthly_read_budget
    state = budget_status() or {"month": _month(now or time.time()), "used": 0, "polls": 0}
    if state.get("month") != _month(now or time.time()):  # nothing read yet this month
        state = {"month": _month(now or time.time()), "used": 0, "polls": 0}
    state["budget"] = budget
    state["remaining"] = None if not budget else max(0, budget - state.get("used", 0))
    return state


def mount(app: Any, cfg: Any) -> None:
    """Admins see the month's X reads at /console/admin/x-budget (JSON; registered in core.web)."""
    from fastapi import APIRouter, Depends
    from fastapi.responses import JSONResponse

    from core.console import deps

    if "twitter" not in cfg.enabled_channels():
        return
    router = APIRouter(include_in_schema=False)

    @router.get("/console/admin/x-budget")
    def x_budget(ctx: deps.Ctx = Depends(deps.require("admin"))) -> JSONResponse:
        return JSONResponse(budget_view(cfg.channel("twitter")))

    app.include_router(router)

"""Console accounts, sessions, CSRF and login throttling.

- Passwords: argon2id (argon2-cffi), at least 10 characters, never the username.
- Sessions live server-side in Redis (`aduan:sess:<token>`), so logging out, disabling a user
  or resetting a password ends them at once; the cookie only carries a random token.
  A session expires after 8 hours idle and 12 hours in total (one working shift).
- CSRF: each session has its own token, sent back in every POST form (`csrf_token`) or in the
  `X-CSRF-Token` header (HTMX). Before login a random pre-session cookie plays that role.
- Throttling: 5 failed logins per username+IP within 15 minutes lock that pair for the rest
  of the window (counted in Redis, shared by every web process).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session, select

from core.console.models import ROLES, User
from core.models import Event, utcnow

SESSION_COOKIE = "aduan_session"
PRE_COOKIE = "aduan_pre"
IDLE_SECONDS = 8 * 3600
ABSOLUTE_SECONDS = 12 * 3600
MIN_PASSWORD = 10
MAX_FAILURES = 5
FAIL_WINDOW = 15 * 60
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")

_hasher = PasswordHasher()


class AuthError(ValueError):
    """A user-facing refusal (bad password policy, unknown role...)."""


# ---------------------------------------------------------------- passwords and users


def check_password_policy(password: str, username: str = "") -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise AuthError("password must be at most 256 characters")
    if username and username.lower() in password.lower():
        raise AuthError("password must not contain the username")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _validate(username: str, role: str, opd_code: str | None, known_opds: list[str] | None) -> None:
    if not USERNAME.match(username):
        raise AuthError("username: 3-32 lowercase letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    if role == "opd" and not opd_code:
        raise AuthError("an OPD officer needs an OPD code (--opd)")
    if role != "opd" and opd_code:
        raise AuthError("only OPD officers (role opd) have an OPD code")
    if opd_code and known_opds is not None and opd_code not in known_opds:
        raise AuthError(f"unknown OPD code {opd_code!r}")


def create_user(session: Session, username: str, password: str, role: str, opd_code: str | None = None,
                display_name: str = "", actor: str = "cli", known_opds: list[str] | None = None) -> User:
    """Create an account (validated, audited); raises AuthError with a message for the person."""
    username = username.strip().lower()
    _validate(username, role, opd_code, known_opds)
    check_password_policy(password, username)
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise AuthError(f"user {username!r} already exists")
    now = utcnow()
    user = User(username=username, display_name=display_name or username, role=role, opd_code=opd_code,
                password_hash=hash_password(password), created_at=now, password_changed_at=now)
    session.add(user)
    session.flush()
    session.add(Event(at=now, actor=actor, action="user.create",
                      data={"after": {"username": username, "role": role, "opd": opd_code}}))
    return user


def get_user(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username.strip().lower())).first()


def set_password(session: Session, user: User, password: str, actor: str) -> None:
    check_password_policy(password, user.username)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    session.add(user)
    session.add(Event(at=utcnow(), actor=actor, action="user.password", data={"username": user.username}))
    end_sessions(user.id)


def set_active(session: Session, user: User, active: bool, actor: str) -> None:
    before = user.active
    user.active = active
    session.add(user)
    session.add(Event(at=utcnow(), actor=actor, action="user.enable" if active else "user.disable",
                      data={"username": user.username, "before": {"active": before}, "after": {"active": active}}))
    if not active:
        end_sessions(user.id)


def set_role(session: Session, user: User, role: str, opd_code: str | None, actor: str,
             known_opds: list[str] | None = None) -> None:
    _validate(user.username, role, opd_code, known_opds)
    before = {"role": user.role, "opd": user.opd_code}
    user.role, user.opd_code = role, opd_code
    session.add(user)
    session.add(Event(at=utcnow(), actor=actor, action="user.role",
                      data={"username": user.username, "before": before, "after": {"role": role, "opd": opd_code}}))
    end_sessions(user.id)


def set_notify(session: Session, user: User, channel: str, address: str, actor: str,
               known_channels: list[str] | None = None) -> None:
    """Where the user's @mentions are also sent (validated as config.yaml's notify targets); an empty
    address clears it (console only)."""
    from pydantic import ValidationError

    from core.config import NotifyTarget, _phrase

    target = None
    if address.strip():
        try:
            target = NotifyTarget(channel=channel.strip() or "telegram", address=address.strip()).model_dump()
        except ValidationError as exc:
            raise AuthError("; ".join(_phrase(e, "notify") for e in exc.errors())) from None
        if known_channels is not None and target["channel"] not in known_channels:
            raise AuthError(f"notify.channel: unknown channel {target['channel']!r}; known: {', '.join(known_channels)}")
    before, user.notify = user.notify, target
    session.add(user)
    session.add(Event(at=utcnow(), actor=actor, action="user.notify",
                      data={"username": user.username, "before": before, "after": target}))


# ---------------------------------------------------------------- sessions (Redis)


@dataclass
class SessionData:
    token: str
    user_id: int
    csrf: str
    created: float


def _redis():  # type: ignore[no-untyped-def]
    from core.redisconn import get_redis

    return get_redis()


def _key(token: str) -> str:
    return f"aduan:sess:{token}"


def start_session(user_id: int) -> SessionData:
    data = SessionData(token=secrets.token_urlsafe(32), user_id=user_id, csrf=secrets.token_urlsafe(32),
                       created=time.time())
    r = _redis()
    r.setex(_key(data.token), IDLE_SECONDS, json.dumps(data.__dict__))
    r.sadd(f"aduan:user-sess:{user_id}", data.token)
    r.expire(f"aduan:user-sess:{user_id}", ABSOLUTE_SECONDS)
    return data


def load_session(token: str | None) -> SessionData | None:
    """The live session for a cookie token (refreshing its idle timer), or None."""
    if not token or len(token) > 100:
        return None
    r = _redis()
    raw = r.get(_key(token))
    if raw is None:
        return None
    data = SessionData(**json.loads(raw))
    if time.time() - data.created > ABSOLUTE_SECONDS:
        r.delete(_key(token))
        return None
    r.expire(_key(token), IDLE_SECONDS)
    return data


def end_session(token: str | None) -> None:
    if token:
        _redis().delete(_key(token))


def end_sessions(user_id: int | None) -> None:
    """Log a user out everywhere (disabled, password reset, role changed)."""
    if user_id is None:
        return
    r = _redis()
    tokens = r.smembers(f"aduan:user-sess:{user_id}")
    for t in tokens:
        r.delete(_key(t.decode() if isinstance(t, bytes) else t))
    r.delete(f"aduan:user-sess:{user_id}")


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


# ---------------------------------------------------------------- login throttling


def _fail_key(username: str, ip: str) -> str:
    return f"aduan:login-fail:{username.strip().lower()[:64]}:{ip}"


def throttled(username: str, ip: str) -> int:
    """Seconds until this username+IP may try again (0: not throttled)."""
    r = _redis()
    key = _fail_key(username, ip)
    count = int(r.get(key) or 0)
    if count < MAX_FAILURES:
        return 0
    return max(1, int(r.ttl(key)))


def record_failure(username: str, ip: str) -> int:
    r = _redis()
    key = _fail_key(username, ip)
    count = int(r.incr(key))
    if count == 1:
        r.expire(key, FAIL_WINDOW)
    return count


def clear_failures(username: str, ip: str) -> None:
    _redis().delete(_fail_key(username, ip))


def authenticate(session: Session, username: str, password: str, ip: str) -> User | None:
    """The active user for these credentials, recording failures; None on any mismatch.

    A missing user still costs one argon2 verification, so timing does not reveal which
    usernames exist.
    """
    user = get_user(session, username) if username else None
    ok = verify_password(user.password_hash if user else _dummy_hash(), password)
    if user is None or not ok or not user.active:
        record_failure(username, ip)
        session.add(Event(at=utcnow(), actor=(username or "?")[:64], action="auth.failed", data={"ip": ip}))
        return None
    clear_failures(username, ip)
    user.last_login_at = utcnow()
    session.add(user)
    session.add(Event(at=utcnow(), actor=user.username, action="auth.login", data={"ip": ip}))
    return user


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Made at the first login, not at import: every process that imports the console (workers
    too, for the admins' settings) would otherwise pay an argon2 hash and its 64 MiB."""
    return _hasher.hash("not-a-real-password-" + secrets.token_hex(8))

"""Who may use the console, and the headers every console response carries.

- Sign-in asks for the admin token once and keeps a random session id in an
  ``HttpOnly; SameSite=Strict`` cookie. The server keeps only the id's SHA-256 and the
  session's CSRF token, never the admin token; sessions end with the process.
- With the fixture's demo admin token, on a server bound to loopback, a page request
  signs in by itself, but only when its ``Host`` names loopback (``localhost``,
  ``127.x.x.x``, ``[::1]``) and it comes from a loopback peer: a page that rebinds its
  own DNS name to 127.0.0.1 sends its own name as ``Host`` and is asked for the token.
- Every request that changes something carries the session's CSRF token (the
  ``X-CSRF-Token`` header htmx sends from ``hx-headers``, or a ``csrf_token`` form field),
  and a cross-site ``Origin`` or ``Sec-Fetch-Site`` is refused outright.
- A strict Content-Security-Policy: scripts, styles and connections from the console's
  own origin only, no inline code, no eval.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "Session",
    "Sessions",
    "console_allowed",
    "cross_site",
    "demo_sign_in_allowed",
    "is_loopback_host",
    "is_loopback_peer",
    "safe_next",
]

SESSION_COOKIE = "opsim_console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: under it a form POST says `Origin: null`, which the CSRF check refuses.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _host_name(host: str) -> str:
    """The name or address of a ``Host`` header, without its port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    name, _, port = host.rpartition(":")
    if name and port.isdigit():
        return name
    return host


def is_loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names loopback: ``localhost``, ``127.x.x.x`` or ``::1``."""
    if not host:
        return False
    name = _host_name(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_peer(remote: str | None, *, unix_socket: bool) -> bool:
    """Whether the connection comes from this machine (a Unix socket always does)."""
    if unix_socket:
        return True
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def console_allowed(*, admin_is_demo: bool, server_loopback: bool) -> bool:
    """The console serves only where the admin API accepts its token: the demo token on
    loopback, a real one anywhere (the server refuses to start otherwise; this holds the
    console to it on its own)."""
    return server_loopback or not admin_is_demo


def demo_sign_in_allowed(
    *, admin_is_demo: bool, server_loopback: bool, host: str | None, peer_loopback: bool
) -> bool:
    """Whether a request may sign in without the token (see the module docstring)."""
    return admin_is_demo and server_loopback and peer_loopback and is_loopback_host(host)


def cross_site(*, origin: str | None, fetch_site: str | None, scheme: str, host: str) -> bool:
    """Whether the browser says the request comes from another site."""
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    if origin is None:
        return False
    return origin != f"{scheme}://{host}"


def safe_next(target: str | None) -> str:
    """A place inside the console to go after signing in; anything else is the overview."""
    if target and target.startswith("/ui/") and "\\" not in target and "//" not in target:
        return target
    return "/ui/"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its CSRF token, and whether the demo token signed it in."""

    csrf: str
    demo: bool


class Sessions:
    """Signed-in browsers, by the SHA-256 of their cookie; the oldest go beyond ``cap``."""

    def __init__(self, *, cap: int = 1024) -> None:
        self._cap = cap
        self._by_digest: OrderedDict[str, Session] = OrderedDict()

    @staticmethod
    def _digest(cookie: str) -> str:
        return hashlib.sha256(cookie.encode()).hexdigest()

    def create(self, *, demo: bool) -> tuple[str, Session]:
        """A new session: the cookie value to hand to the browser, and the session."""
        cookie = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), demo=demo)
        self._by_digest[self._digest(cookie)] = session
        while len(self._by_digest) > self._cap:
            self._by_digest.popitem(last=False)
        return cookie, session

    def find(self, cookie: str | None) -> Session | None:
        """The session of a cookie, if it is one of ours."""
        if not cookie:
            return None
        return self._by_digest.get(self._digest(cookie))

    def end(self, cookie: str | None) -> None:
        """Forget a session (sign-out)."""
        if cookie:
            self._by_digest.pop(self._digest(cookie), None)

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        """Whether ``given`` is the session's CSRF token (compared in constant time)."""
        return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())

    def __len__(self) -> int:
        return len(self._by_digest)

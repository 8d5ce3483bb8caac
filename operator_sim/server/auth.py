"""Authentication: messenger API keys and the admin token, compared in constant time.

Keys are looked up by hash and cached in memory. A rotated-out key may keep working for a
grace period of wall-clock time: the cache keeps when it ends and checks it on every
call, so the key stops at that moment without a restart. A rotation empties the cache.

When the server asks TLS clients for a certificate (``serve --tls-client-ca``), a
messenger call must also come over a connection whose client presented one that the
handshake verified against that authority.
"""

from __future__ import annotations

import hmac
import ssl

from aiohttp import web

from operator_sim.clock import wall_time
from operator_sim.errors import Unauthorized
from operator_sim.store import Database, messengers
from operator_sim.store.messengers import MessengerAuth, hash_secret


def bearer_token(request: web.Request) -> str:
    """The token of ``Authorization: Bearer <key>``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <key>")
    if not (token.isascii() and token.isprintable()):
        # Keys and tokens are printable ASCII; anything else (bytes that are not UTF-8
        # arrive as surrogates) can match no key.
        raise Unauthorized("the key must be printable ASCII")
    return token


def require_client_certificate(request: web.Request) -> None:
    """``Unauthorized`` unless a connection whose server asks for client certificates
    carries one (verified by the handshake against the configured authority)."""
    transport = request.transport
    tls = None if transport is None else transport.get_extra_info("ssl_object")
    if not isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
        return
    if tls.context.verify_mode == ssl.CERT_NONE:
        return
    if not tls.getpeercert():
        raise Unauthorized("messenger calls need a client certificate issued by the server's CA")


class Authenticator:
    """Checks credentials. Messenger keys are looked up by hash and cached in memory."""

    def __init__(
        self, db: Database, *, admin_token: str, admin_is_demo: bool, demo_allowed: bool
    ) -> None:
        self._db = db
        self._admin_hash = hash_secret(admin_token)
        self._admin_is_demo = admin_is_demo
        self._demo_allowed = demo_allowed
        self._messengers: dict[str, MessengerAuth] = {}
        # Bumped by forget(): a lookup that started before a rotation committed must not
        # put what it read into the emptied cache.
        self._generation = 0

    @property
    def admin_is_demo(self) -> bool:
        """Whether the admin token is the fixture's documented demo token."""
        return self._admin_is_demo

    def forget(self) -> None:
        """Drop cached keys (after messengers or their keys change)."""
        self._messengers.clear()
        self._generation += 1

    def admin_token_matches(self, token: str) -> bool:
        """Whether ``token`` is the admin token (compared in constant time, by hash)."""
        return hmac.compare_digest(hash_secret(token), self._admin_hash)

    def check_admin(self, request: web.Request) -> None:
        """Accept only the admin token."""
        if not self.admin_token_matches(bearer_token(request)):
            raise Unauthorized("wrong admin token")

    async def messenger(self, request: web.Request) -> str:
        """The id of the messenger whose API key the request carries."""
        require_client_certificate(request)
        key_hash = hash_secret(bearer_token(request))
        found = self._messengers.get(key_hash)
        if found is None:
            generation = self._generation
            found = await self._db.read(
                lambda conn: messengers.messenger_by_key_hash(conn, key_hash)
            )
            if found is None or not hmac.compare_digest(found.api_key_hash, key_hash):
                raise Unauthorized("unknown API key")
            if generation == self._generation:
                self._messengers[key_hash] = found
        if found.valid_until_ms is not None and wall_time() * 1000 >= found.valid_until_ms:
            self._messengers.pop(key_hash, None)
            raise Unauthorized("this API key was rotated out and its grace period is over")
        if found.demo and not self._demo_allowed:
            raise Unauthorized(
                "demo credentials are accepted only when the server binds to loopback"
            )
        return found.id

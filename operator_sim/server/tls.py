"""TLS contexts from PEM files: the server's (HTTPS, optionally asking for client
certificates) and the webhook client's (trusting an extra authority)."""

from __future__ import annotations

import ssl
from pathlib import Path

from operator_sim.errors import StartupError

__all__ = ["server_context", "webhook_context"]


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The context ``serve`` listens with; ``StartupError`` naming the file that is wrong.

    With ``client_ca`` the handshake asks clients for a certificate but lets them in
    without one (``CERT_OPTIONAL``): the admin API and the service endpoints need none,
    and messenger calls without one are refused with ``401`` (``server.auth``). A
    certificate that the authority did not issue fails the handshake itself.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(
            f"--tls-cert {cert} / --tls-key {key}: cannot load the certificate and key: {exc}"
        ) from exc
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(
                f"--tls-client-ca {client_ca}: cannot load the authority: {exc}"
            ) from exc
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def webhook_context(ca: Path) -> ssl.SSLContext:
    """The context webhooks are posted with: the system's authorities plus ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"--webhook-ca {ca}: cannot load the authority: {exc}") from exc
    return context

"""One Settings object: command-line flags over ``OPERATOR_SIM_*`` environment variables."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from operator_sim.clock import ClockMode, parse_clock_spec
from operator_sim.domain.limits import parse_rate_limits
from operator_sim.domain.sms import Throttle, parse_throttle
from operator_sim.domain.webhook_targets import parse_networks
from operator_sim.wire import Duration

_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")


class Settings(BaseSettings):
    """Everything ``operator-sim serve`` can be told; each field is also an environment variable."""

    model_config = SettingsConfigDict(env_prefix="OPERATOR_SIM_", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8080, description="TCP port; 0 picks a free one (printed on start)."
    )
    db: Path = Field(default=Path("operator-sim.db"), description="SQLite database file.")
    fixture: Path | None = Field(default=None, description="Fixture file (default: built-in).")
    clock: str = Field(default="real", description="real, scaled:N or manual.")
    admin_token: SecretStr | None = Field(
        default=None,
        description="Admin API token (default: the fixture's demo token, loopback only).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a terminal, JSON lines otherwise."
    )
    synchronous: Literal["off", "normal", "full"] = Field(
        default="normal",
        description="SQLite synchronous mode: normal survives a process crash, "
        "full also a power loss.",
    )
    webhook_timeout: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0, description="Seconds one webhook POST may take."
    )
    webhook_concurrency: Annotated[int, Field(ge=1, le=64)] = Field(
        default=4, description="Webhook POSTs in flight at once per messenger."
    )
    webhook_allowed_hosts: str = Field(
        default="",
        description="Comma-separated hosts (* globs) webhooks may target; empty allows any.",
    )
    webhook_allow_net: str = Field(
        default="",
        description="Comma-separated CIDRs webhooks may target although they are refused "
        "otherwise (link-local addresses, e.g. 169.254.0.0/16).",
    )
    max_wait: Annotated[int, Field(ge=0, le=60)] = Field(
        default=60, description="Longest Prefer: wait honoured, in seconds (0 turns it off)."
    )
    shutdown_timeout: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="Seconds SIGTERM waits for in-flight requests."
    )
    unix: Path | None = Field(
        default=None,
        description="Listen on this Unix socket instead of TCP (host and port are ignored).",
    )
    retention: Duration = Field(
        default="P7D",
        validate_default=True,
        description="How long (simulation time; ISO 8601 or seconds) finished requests, "
        "their idempotency keys and events done with delivery are kept; 0 keeps everything.",
    )
    journal_cap: Annotated[int, Field(ge=1)] = Field(
        default=100_000,
        description="The request journal keeps about this many entries (at most 1% more); "
        "older ones are dropped.",
    )
    seed: int | None = Field(
        default=None,
        description="Seed of the fault rules' random draws (default: the fixture's, else 1801).",
    )
    rate_limits: str = Field(
        default="",
        description="Per-messenger rate limits, e.g. 'demo=50/s,*=1000/m' "
        "(* = every other messenger); empty: no limit.",
    )
    max_long_polls: Annotated[int, Field(ge=1)] = Field(
        default=100, description="Long polls (Prefer: wait) one messenger may hold at once."
    )
    enumeration_quota: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Distinct numbers of one 100-number block a messenger may ask about "
        "within enumeration_window; 0 turns the check off.",
    )
    enumeration_window: Annotated[float, Field(gt=0)] = Field(
        default=3600.0, description="Seconds (real time) the enumeration quota counts over."
    )
    client_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0,
        description="Seconds a client has to send a request's headers, and then its body; "
        "also how long an idle keep-alive connection stays open.",
    )
    max_header_size: Annotated[int, Field(ge=1024, le=65536)] = Field(
        default=8190, description="Longest request line or header field, in bytes."
    )

    sms_throttle: str = Field(
        default="5/PT10M",
        description="At most COUNT SMS messages from one messenger to one number within "
        "WINDOW (simulation time), as COUNT/WINDOW (an ISO 8601 duration or seconds); "
        "0 turns it off.",
    )

    tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) to serve HTTPS with; needs tls_key.",
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert.")
    tls_client_ca: Path | None = Field(
        default=None,
        description="PEM authority for client certificates (mTLS): messenger calls without "
        "a certificate it issued are refused; the admin API needs none. Needs tls_cert.",
    )
    webhook_ca: Path | None = Field(
        default=None,
        description="PEM authority trusted for https webhook receivers, besides the system's own.",
    )

    @model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (HTTPS)")
        return self

    @field_validator("clock")
    @classmethod
    def _valid_clock(cls, value: str) -> str:
        parse_clock_spec(value)
        return value

    @field_validator("retention", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        # From the command line and the environment every value is a string: a number of
        # seconds is one as well as in JSON.
        if isinstance(value, str) and _SECONDS.match(value):
            return float(value)
        return value

    @field_validator("webhook_allow_net")
    @classmethod
    def _valid_allow_net(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("rate_limits")
    @classmethod
    def _valid_rate_limits(cls, value: str) -> str:
        parse_rate_limits(value)
        return value

    @field_validator("sms_throttle")
    @classmethod
    def _valid_sms_throttle(cls, value: str) -> str:
        parse_throttle(value)
        return value

    @property
    def throttle(self) -> Throttle | None:
        """The parsed ``sms_throttle`` setting (None: off)."""
        return parse_throttle(self.sms_throttle)

    @property
    def clock_mode(self) -> tuple[ClockMode, float]:
        """The parsed ``clock`` setting."""
        return parse_clock_spec(self.clock)

    @property
    def loopback(self) -> bool:
        """Whether the server binds to loopback only (demo credentials are accepted there).

        A Unix socket is local too.
        """
        if self.unix is not None or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

"""The messenger-side library: an operator API client and the decree's identification flow.

``Messenger`` is what a backend embeds; ``OperatorClient`` is the typed client under it.
This package imports the wire models and its own parts, never the server.
"""

from operator_sim.messenger.checks import Reason, verdict
from operator_sim.messenger.client import OperatorClient, RetryPolicy
from operator_sim.messenger.errors import (
    ApiError,
    Conflict,
    FeedStalled,
    InvalidPhone,
    InvalidResponse,
    NotFound,
    OperatorClientError,
    OperatorUnavailable,
    RateLimited,
    Rejected,
    ResponseTooLarge,
    TransportError,
    Unauthorized,
)
from operator_sim.messenger.identification import Outcome
from operator_sim.messenger.messenger import LeasePolicy, Messenger, Step
from operator_sim.messenger.phone import normalise_phone
from operator_sim.messenger.privacy import redact_code
from operator_sim.messenger.store import HistoryEntry, PendingDeletion, UserRecord
from operator_sim.messenger.webhooks import WebhookReceiver

__all__ = [
    "ApiError",
    "Conflict",
    "FeedStalled",
    "HistoryEntry",
    "InvalidPhone",
    "InvalidResponse",
    "LeasePolicy",
    "Messenger",
    "NotFound",
    "OperatorClient",
    "OperatorClientError",
    "OperatorUnavailable",
    "Outcome",
    "PendingDeletion",
    "RateLimited",
    "Reason",
    "Rejected",
    "ResponseTooLarge",
    "RetryPolicy",
    "Step",
    "TransportError",
    "Unauthorized",
    "UserRecord",
    "WebhookReceiver",
    "normalise_phone",
    "redact_code",
    "verdict",
]

"""The messenger-side library: an operator API client, proof of possession by SMS, and the
decree's identification flow.

``Messenger`` is what an async backend embeds, ``SyncMessenger`` the same for synchronous
code; ``OperatorClient`` is the typed client under them. This package imports the wire
models, the log masker and its own parts, never the server.
"""

from operator_sim.messenger.checks import Reason, UnknownEvent, verdict
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
from operator_sim.messenger.messenger import LeasePolicy, Messenger, MessengerOptions, Step
from operator_sim.messenger.otp import Confirmation
from operator_sim.messenger.phone import normalise_phone
from operator_sim.messenger.possession import PossessionPolicy, Verification
from operator_sim.messenger.privacy import redact_code
from operator_sim.messenger.store import (
    HistoryEntry,
    PendingDeletion,
    UserRecord,
    VerificationRecord,
)
from operator_sim.messenger.sync import SyncMessenger
from operator_sim.messenger.webhooks import WebhookReceiver, WebhookReply

__all__ = [
    "ApiError",
    "Confirmation",
    "Conflict",
    "FeedStalled",
    "HistoryEntry",
    "InvalidPhone",
    "InvalidResponse",
    "LeasePolicy",
    "Messenger",
    "MessengerOptions",
    "NotFound",
    "OperatorClient",
    "OperatorClientError",
    "OperatorUnavailable",
    "Outcome",
    "PendingDeletion",
    "PossessionPolicy",
    "RateLimited",
    "Reason",
    "Rejected",
    "ResponseTooLarge",
    "RetryPolicy",
    "Step",
    "SyncMessenger",
    "TransportError",
    "Unauthorized",
    "UnknownEvent",
    "UserRecord",
    "Verification",
    "VerificationRecord",
    "WebhookReceiver",
    "WebhookReply",
    "normalise_phone",
    "redact_code",
    "verdict",
]

"""A messenger's flow through a client generated from /openapi.json, type-checked strictly.

No casts and no hand-written types: responses are narrowed with isinstance only. Run as
``python flow.py BASE_URL``; it exits non-zero when the server answers otherwise.
"""

from __future__ import annotations

import sys

from operator_sim_client import AuthenticatedClient
from operator_sim_client.api.admin import advance_clock, port, terminate
from operator_sim_client.api.events import list_events
from operator_sim_client.api.identification import (
    create_identification_request,
    get_identification_request,
    register_code,
)
from operator_sim_client.api.routing import get_routing
from operator_sim_client.models import (
    ClockAdvance,
    ClockAdvanced,
    ContractTerminatedEvent,
    EventPage,
    IdentificationAnsweredEvent,
    IdentificationCode,
    IdentificationCodeCreate,
    IdentificationRequest,
    IdentificationRequestCreate,
    IdentificationRequestResultType0,
    IdentificationRequestStatus,
    LifecycleResult,
    PortRequest,
    Problem,
    ProblemCode,
    Routing,
)


def identify(client: AuthenticatedClient, admin: AuthenticatedClient, msisdn: str) -> str:
    """Route the number, ask its operator, wait for the answer; the request id of a present."""
    routing = get_routing.sync(msisdn, client=client)
    assert isinstance(routing, Routing), routing
    operator_id: str = routing.operator_id  # any operator, not one fixture's list
    created = create_identification_request.sync(
        operator_id, client=client, body=IdentificationRequestCreate(msisdn=msisdn)
    )
    assert isinstance(created, IdentificationRequest), created
    advanced = advance_clock.sync(client=admin, body=ClockAdvance(by="PT1M"))
    assert isinstance(advanced, ClockAdvanced), advanced
    read = get_identification_request.sync(operator_id, created.id, client=client)
    assert isinstance(read, IdentificationRequest), read
    assert read.status is IdentificationRequestStatus.ANSWERED
    assert read.result is IdentificationRequestResultType0.PRESENT
    return read.id


def main(base_url: str) -> None:
    """The flow: identify, register a code, see it end, branch on a problem's code."""
    client = AuthenticatedClient(base_url=base_url, token="demo-messenger-key-not-secret")
    admin = AuthenticatedClient(base_url=base_url, token="demo-admin-token-not-secret")
    request_id = identify(client, admin, "+79000000001")
    code = register_code.sync(
        "alfa",
        client=client,
        body=IdentificationCodeCreate(request_id=request_id, code="typed-client-0001"),
    )
    assert isinstance(code, IdentificationCode), code
    ended = terminate.sync("+79000000001", client=admin)
    assert isinstance(ended, LifecycleResult), ended
    page = list_events.sync("alfa", client=client)
    assert isinstance(page, EventPage), page
    ends = [e.data.code for e in page.events if isinstance(e, ContractTerminatedEvent)]
    answers = [e.data.id for e in page.events if isinstance(e, IdentificationAnsweredEvent)]
    assert ends == ["typed-client-0001"], ends
    assert request_id in answers
    refused = create_identification_request.sync(
        "alfa", client=client, body=IdentificationRequestCreate(msisdn="8 900")
    )
    assert isinstance(refused, Problem), refused
    assert refused.code is ProblemCode.INVALID_MSISDN
    moved = port.sync("+79000000003", client=admin, body=PortRequest(to_operator_id="gamma"))
    assert isinstance(moved, LifecycleResult), moved
    assert moved.operator_id == "gamma"
    print("typed flow: ok")


if __name__ == "__main__":
    main(sys.argv[1])

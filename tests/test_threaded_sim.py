"""ThreadedOperatorSim: the in-process server on its own thread, driven by blocking calls.

These tests are plain sync functions: nothing here runs on an asyncio loop of the test's.
"""

from __future__ import annotations

import http.server
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from operator_sim.errors import StartupError
from operator_sim.testing import OperatorSim, SimCallError, ThreadedOperatorSim
from operator_sim.wire import (
    ClockAdvanced,
    IdentificationRequest,
    RuleSpec,
    SubscriberIn,
)

PRESENT = "+79161110001"
IR_PATH = "/operators/{operator}/v1/identification-requests"
CODES_PATH = "/operators/{operator}/v1/identification-codes"
HTTP_TIMEOUT = 10.0


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout:g} s")
        time.sleep(0.01)


@pytest.fixture
def client() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_a_blocking_client_runs_a_whole_identification(
    opsim_server: ThreadedOperatorSim, client: requests.Session
) -> None:
    # +79000000009 is answered `present` five simulated minutes after receipt.
    url = opsim_server.base_url + IR_PATH.format(operator="alfa")
    headers = opsim_server.messenger_headers()
    created = client.post(
        url, json={"msisdn": "+79000000009"}, headers=headers, timeout=HTTP_TIMEOUT
    )
    assert created.status_code == 201, created.text
    request = IdentificationRequest.model_validate_json(created.content)
    assert (request.status, request.result) == ("pending", None)

    advanced = opsim_server.advance("PT5M")
    assert advanced.now - request.received_at == timedelta(minutes=5)

    fetched = client.get(f"{url}/{request.id}", headers=headers, timeout=HTTP_TIMEOUT)
    assert fetched.status_code == 200, fetched.text
    assert (fetched.json()["status"], fetched.json()["result"]) == ("answered", "present")

    code = client.post(
        opsim_server.base_url + CODES_PATH.format(operator="alfa"),
        json={"request_id": request.id, "code": "code-0000000001"},
        headers=headers,
        timeout=HTTP_TIMEOUT,
    )
    assert code.status_code == 201, code.text
    assert code.json()["request_id"] == request.id
    [entry] = opsim_server.requests(messenger_id=opsim_server.messenger_id)
    assert (entry.id, entry.status, entry.result) == (request.id, "answered", "present")


def test_every_async_helper_has_a_blocking_face_with_its_signature() -> None:
    helpers = {
        name: method
        for name, method in inspect.getmembers(OperatorSim, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in {"start", "stop"}
    }
    assert {"advance", "identify", "set_webhook_url", "count_requests"} <= set(helpers)
    sim = ThreadedOperatorSim()  # never started: the faces exist on the instance anyway
    for name, method in helpers.items():
        face = getattr(sim, name)
        assert not inspect.iscoroutinefunction(face), name
        async_params = list(inspect.signature(method).parameters.values())[1:]
        assert list(inspect.signature(face).parameters.values()) == async_params, name
        assert face.__doc__ == method.__doc__, name


def test_a_fresh_server_per_test_on_loopback(opsim_server: ThreadedOperatorSim) -> None:
    assert opsim_server.base_url.startswith("http://127.0.0.1:")
    assert opsim_server.db_path.exists()
    assert opsim_server.messenger_key
    assert opsim_server.webhook_secret.startswith("whsec_")
    assert opsim_server.admin_token.startswith("osim-admin-")
    assert opsim_server.count_requests() == 0
    clock = opsim_server.clock()
    assert clock.mode == "manual"


def test_clock_and_rules_helpers(opsim_server: ThreadedOperatorSim) -> None:
    opsim_server.add_subscriber(PRESENT, "beta")
    spec = {"id": "slow", "match": {"msisdn": PRESENT}, "action": {"type": "answer", "delay": 60}}
    rule = opsim_server.add_rule(RuleSpec.model_validate(spec))
    assert (rule.id, rule.source) == ("slow", "runtime")
    before = opsim_server.clock().now

    pending = opsim_server.identify(PRESENT, "beta")
    assert pending.status == "pending"
    advanced = opsim_server.advance(timedelta(minutes=1))
    assert isinstance(advanced, ClockAdvanced)
    # `fired` is not asserted: the server's own scheduler may fire the answer first.
    assert advanced.now - before == timedelta(minutes=1)
    assert opsim_server.clock().now == advanced.now

    [entry] = opsim_server.requests(msisdn=PRESENT)
    assert (entry.status, entry.result, entry.rule_id) == ("answered", "present", "slow")
    assert [r.hits for r in opsim_server.rules() if r.id == "slow"] == [1]
    opsim_server.delete_rule("slow")
    assert "slow" not in {r.id for r in opsim_server.rules()}


def test_subscriber_helpers_decide_the_answers(opsim_server: ThreadedOperatorSim) -> None:
    upserted = opsim_server.add_subscribers(
        SubscriberIn.model_validate(
            {"msisdn": "+79161110002", "operator_id": "beta", "data_complete": False}
        ),
        {"msisdn": "+79161110003", "operator_id": "beta", "status": "terminated"},
    )
    assert (upserted.upserted, upserted.created) == (2, 2)
    assert opsim_server.add_subscriber(PRESENT, "beta").created == 1
    answers = {
        msisdn: opsim_server.identify(msisdn, "beta").result
        for msisdn in (PRESENT, "+79161110002", "+79161110003")
    }
    assert answers == {PRESENT: "present", "+79161110002": "absent", "+79161110003": "absent"}
    assert opsim_server.count_requests(msisdn=PRESENT) == 1
    assert opsim_server.count_requests(operator_id="beta") == 3


def test_terminate_and_port_helpers(opsim_server: ThreadedOperatorSim) -> None:
    opsim_server.add_subscriber(PRESENT, "beta")
    ported = opsim_server.port(PRESENT, "gamma")
    assert ported.operator_id == "gamma"
    assert opsim_server.identify(PRESENT, "gamma").result == "present"
    terminated = opsim_server.terminate(PRESENT)
    assert (terminated.msisdn, terminated.status) == (PRESENT, "terminated")
    assert opsim_server.identify(PRESENT, "gamma").result == "absent"


def test_messengers_are_separate_and_reset_separately(opsim_server: ThreadedOperatorSim) -> None:
    other = opsim_server.register_messenger("other-suite")
    assert other.api_key != opsim_server.messenger_key
    opsim_server.identify(PRESENT, "beta")
    opsim_server.identify(PRESENT, "beta", key=other.api_key)
    opsim_server.reset_messenger()
    assert opsim_server.count_requests(messenger_id=opsim_server.messenger_id) == 0
    assert opsim_server.count_requests(messenger_id="other-suite") == 1
    opsim_server.reset()
    assert opsim_server.count_requests() == 0


def test_an_unexpected_status_raises_in_the_calling_thread(
    opsim_server: ThreadedOperatorSim,
) -> None:
    with pytest.raises(SimCallError) as caught:
        opsim_server.delete_rule("no-such-rule")
    assert caught.value.status == 404
    assert "not_found" in caught.value.body
    with pytest.raises(SimCallError) as refused:
        opsim_server.identify(PRESENT, "beta", key="not-a-key")
    assert refused.value.status == 401
    # The server keeps serving after a failed call.
    assert opsim_server.count_requests() == 0


def test_calls_from_several_threads_at_once(opsim_server: ThreadedOperatorSim) -> None:
    errors: list[BaseException] = []

    def identify_five() -> None:
        try:
            for _ in range(5):
                opsim_server.identify("+79000000001", "alfa")
        except BaseException as exc:  # noqa: BLE001  # reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=identify_five) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert errors == []
    assert opsim_server.count_requests() == 20


def test_start_and_stop_leave_no_thread_and_no_temporary_database() -> None:
    before = set(threading.enumerate())
    with ThreadedOperatorSim() as sim:
        started = set(threading.enumerate()) - before
        names = " ".join(t.name for t in started)
        assert "operator-sim-server" in names
        assert "_connection_worker_thread" in names  # the database it must close
        db_path = sim.db_path
        assert db_path.exists()
    # The database's own thread ends just after its close is acknowledged.
    _wait_for(lambda: set(threading.enumerate()) <= before, "the server's threads to end")
    assert not db_path.parent.exists()


def test_stop_twice_does_nothing_and_a_stopped_server_refuses_calls(tmp_path: Path) -> None:
    sim = ThreadedOperatorSim(db_path=tmp_path / "kept.db")
    with pytest.raises(RuntimeError, match="not started"):
        sim.count_requests()
    sim.start()
    sim.stop()
    sim.stop()
    assert (tmp_path / "kept.db").exists()  # a database the caller chose is kept
    with pytest.raises(RuntimeError, match="not started"):
        sim.count_requests()
    with pytest.raises(RuntimeError, match="starts only once"):
        sim.start()


def test_a_failed_start_raises_in_the_caller_and_leaves_no_thread(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[operators]]\nid = 5\n", encoding="utf-8")
    before = set(threading.enumerate())
    sim = ThreadedOperatorSim(fixture=broken)
    with pytest.raises(StartupError):
        sim.start()
    _wait_for(lambda: set(threading.enumerate()) <= before, "the server's threads to end")


def test_a_call_that_outlasts_its_timeout_raises_instead_of_hanging() -> None:
    release = threading.Event()

    class Stuck(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            release.wait(30)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stuck)
    serving = threading.Thread(target=receiver.serve_forever)
    serving.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        with ThreadedOperatorSim(webhook_url=url) as sim:
            sim.identify("+79000000001", "alfa")  # answered at once: one webhook, held
            # advance() waits for due webhooks, and the receiver holds this one. (Lowered
            # only now: a busy machine may take longer than that to start the server.)
            sim.call_timeout = 0.5
            with pytest.raises(TimeoutError, match="advance"):
                sim.advance(0)
            release.set()
            sim.call_timeout = 60.0
            assert sim.count_requests() == 1  # and the server still serves
    finally:
        release.set()
        receiver.shutdown()
        receiver.server_close()
        serving.join(10)

"""What the messenger keeps and says stays private: its database, its steps, its codes."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from operator_sim.logs import mask_text
from operator_sim.messenger import Messenger, OperatorClient, Reason, TransportError, redact_code
from tests.conftest import Sim
from tests.messenger_support import (
    FakeOperator,
    FakeTime,
    Recorder,
    code_body,
    fake_operator,
    identify_on,
    json_reply,
    make_messenger,
    problem_reply,
    request_body,
)

__all__ = ["fake_operator"]  # the fixture, imported for pytest

NUMBER = "+79000000001"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _database_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("m.db*"))


def _library_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    # The library's own lines: the test servers' access logs are not the library's.
    return [r.getMessage() for r in caplog.records if r.name.startswith("operator_sim.messenger")]


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (a bounded poll of a fake's call log)
            await asyncio.sleep(0.01)


@pytest.fixture
def open_umask() -> object:
    """The usual umask of a service (022): files are world-readable unless made otherwise."""
    previous = os.umask(0o022)
    yield None
    os.umask(previous)


async def test_the_database_and_its_wal_and_shm_are_created_private(
    sim: Sim, tmp_path: Path, open_umask: object
) -> None:
    db = tmp_path / "m.db"
    async with make_messenger(sim, db) as messenger:
        assert (await messenger.identify("ann", NUMBER)).identified
        files = [db, tmp_path / "m.db-wal", tmp_path / "m.db-shm"]
        assert all(path.exists() for path in files)
        assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}


async def test_an_existing_world_readable_database_is_made_private(
    sim: Sim, tmp_path: Path, open_umask: object
) -> None:
    db = tmp_path / "m.db"
    async with make_messenger(sim, db) as messenger:
        await messenger.identify("ben", NUMBER)
    loose = _database_files(tmp_path)
    assert len(loose) >= 1
    for path in loose:
        path.chmod(0o644)
    async with make_messenger(sim, db) as messenger:
        assert await messenger.can_send("ben")
        for path in _database_files(tmp_path):
            assert _mode(path) == 0o600, path.name


# --- steps and log lines mask phone numbers and what users typed -------------------------


async def test_steps_and_log_lines_mask_numbers_and_what_the_user_typed(
    sim: Sim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    with caplog.at_level(logging.DEBUG, logger="operator_sim.messenger"):
        async with make_messenger(sim, tmp_path / "m.db", recorder=recorder) as messenger:
            assert (await messenger.identify("ann", "8 (900) 000-00-01")).identified
            assert not (await messenger.identify("bob", "+7 900 000 00 02")).identified
    said = [s.message for s in recorder.steps]
    logged = _library_lines(caplog)
    assert len(said) > 4
    for text in said + logged:
        assert mask_text(text) == text  # nothing left that the server's masker would mask
        assert "9000000001" not in text
        assert "000-00-01" not in text
        assert "000 00 02" not in text
    assert any("+7900*****01" in text for text in said)  # masked as the server's logs are
    assert len(logged) >= len(said)  # every step is logged, masked the same way


async def test_the_caller_can_opt_in_to_full_numbers_in_steps(sim: Sim, tmp_path: Path) -> None:
    recorder = Recorder()
    messenger = make_messenger(sim, tmp_path / "m.db", recorder=recorder, reveal_numbers=True)
    async with messenger:
        assert (await messenger.identify("ann", "8 (900) 000-00-01")).identified
    said = " ".join(s.message for s in recorder.steps)
    assert "'8 (900) 000-00-01'" in said
    assert "+79000000001" in said


def test_the_library_does_not_import_the_server() -> None:
    probe = (
        "import sys, operator_sim.messenger\n"
        "loaded = [m for m in sys.modules if m.startswith(('operator_sim.server', "
        "'operator_sim.store', 'operator_sim.domain'))]\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# --- codes are credentials: only the field that returns them shows them -------------------


async def test_a_retried_delete_does_not_name_the_code(
    fake_operator: FakeOperator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder, time = Recorder(), FakeTime()
    messenger = Messenger(
        fake_operator.url, "key", db_path=tmp_path / "m.db", retry=time.policy(), observer=recorder
    )
    with caplog.at_level(logging.DEBUG, logger="operator_sim.messenger"):
        async with messenger:
            code = await identify_on(fake_operator, messenger, "ann")
            # The user moves to a number that fails: the old code is deleted at the operator.
            absent = request_body(msisdn="+79000000002", id_="ir_fake2", result="absent")
            fake_operator.create.append(json_reply(absent))
            fake_operator.deletes = [
                problem_reply(503, "operator_unavailable", f"cannot delete {code} now"),
                problem_reply(429, "rate_limited", f"slow down with {quote(code, safe='')}"),
                web.Response(status=204),
            ]
            assert not (await messenger.identify("ann", "+79000000002")).identified
            await recorder.wait("retry", count=2)
            await _until(lambda: len(fake_operator.calls("DELETE", code)) == 3)
    retries = [s.message for s in recorder.steps if s.kind == "retry"]
    assert all("DELETE" in message for message in retries)
    texts = [s.message for s in recorder.steps] + _library_lines(caplog)
    assert code not in " ".join(texts)
    assert quote(code, safe="") not in " ".join(texts)
    assert all(redact_code(code) in message for message in retries)


async def test_a_delete_that_cannot_connect_does_not_name_the_code(
    unused_tcp_port: int,
) -> None:
    code = "a-code/with?characters=to+quote"
    seen: list[str] = []
    client = OperatorClient(
        f"http://127.0.0.1:{unused_tcp_port}",
        "key",
        retry=FakeTime().policy(attempts=2),
        on_retry=lambda method, path, exc, pause: seen.append(f"{method} {path}: {exc}"),
    )
    async with client:
        with pytest.raises(TransportError) as raised:
            await client.delete_code("alfa", code)
    assert len(seen) == 1
    for text in (str(raised.value), *seen):
        assert code not in text
        assert quote(code, safe="") not in text
        assert redact_code(code) in text


async def test_an_echoed_code_is_not_quoted_in_the_outcome(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    def conflict(sent: dict[str, Any]) -> web.Response:
        return problem_reply(409, "conflict", f"code {sent['code']} is held for another number")

    fake_operator.create = [json_reply(request_body())]
    fake_operator.codes = [conflict]
    recorder = Recorder()
    messenger = Messenger(
        fake_operator.url,
        "key",
        db_path=tmp_path / "m.db",
        retry=FakeTime().policy(),
        observer=recorder,
    )
    async with messenger:
        outcome = await messenger.identify("ann", NUMBER)
        codes = await messenger.store.codes("ann")
    assert outcome.reason is Reason.CODE_REJECTED
    assert len(codes) == 1
    assert outcome.detail is not None
    assert codes[0].code not in outcome.detail
    assert redact_code(codes[0].code) in outcome.detail
    assert all(codes[0].code not in s.message for s in recorder.steps)


async def test_a_code_the_operator_swapped_is_quoted_in_no_detail(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    def swapped(sent: dict[str, Any]) -> web.Response:
        return json_reply(code_body(sent["request_id"], "another-users-code-0123456789"), 201)

    fake_operator.create = [json_reply(request_body())]
    fake_operator.codes = [swapped]
    messenger = Messenger(
        fake_operator.url, "key", db_path=tmp_path / "m.db", retry=FakeTime().policy()
    )
    async with messenger:
        outcome = await messenger.identify("ann", NUMBER)
        ours = (await messenger.store.codes("ann"))[0].code
    assert outcome.reason is Reason.INVALID_RESPONSE
    assert outcome.detail is not None
    assert "another-users-code" not in outcome.detail
    assert ours not in outcome.detail


async def test_reprs_show_no_code_but_the_fields_return_it(sim: Sim, tmp_path: Path) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        outcome = await messenger.identify("ann", NUMBER)
        user = await messenger.user("ann")
        history = await messenger.history("ann")
        codes = await messenger.store.codes("ann")
    assert outcome.code is not None
    assert user is not None
    assert user.code == history[-1].code == codes[0].code == outcome.code  # the fields
    for shown in (repr(outcome), repr(user), repr(history[-1]), repr(codes[0]), str(outcome)):
        assert outcome.code not in shown
        assert redact_code(outcome.code) in shown
        assert "+79000000001" not in shown  # numbers masked as in logs

"""Where log lines go and when: a loop's lines are written out once it has run what is
ready, every other line at once, and none is held back by a loop that stopped."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from operator_sim.logs import configure_logging


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The JSON log going to a real, buffered file; the configuration restored after."""
    path = tmp_path / "server.log"
    with path.open("w", encoding="utf-8") as stream:
        configure_logging("info", "json", stream)
        try:
            yield path
        finally:
            configure_logging("info", "json", io.StringIO())
            structlog.reset_defaults()


def _events(path: Path) -> list[str]:
    return [line.split('"event": "')[1].split('"')[0] for line in path.read_text().splitlines()]


def test_a_loops_lines_are_written_out_once_it_has_run_what_is_ready(log_file: Path) -> None:
    log = structlog.get_logger("test")

    async def requests() -> list[str]:
        log.info("first")
        log.info("second")
        await asyncio.sleep(0)  # the loop turns
        await asyncio.sleep(0)
        return _events(log_file)

    assert asyncio.run(requests()) == ["first", "second"]


def test_a_line_outside_any_loop_is_written_at_once(log_file: Path) -> None:
    structlog.get_logger("test").info("at_once")
    assert _events(log_file) == ["at_once"]


def _stopped_loop_owing_a_flush(log: structlog.typing.FilteringBoundLogger) -> None:
    """A loop that writes a line and stops before the turn that would flush it."""
    loop = asyncio.new_event_loop()

    def last_words() -> None:
        log.info("last_words")
        loop.stop()  # this turn is its last: the flush it scheduled never runs

    loop.call_soon(last_words)
    loop.run_forever()
    loop.close()


def test_a_loop_that_stopped_before_flushing_holds_back_no_later_line(log_file: Path) -> None:
    log = structlog.get_logger("test")
    _stopped_loop_owing_a_flush(log)
    assert _events(log_file) == []  # still in the buffer
    done = threading.Event()

    def elsewhere() -> None:  # a thread with no loop writes at once, the line before too
        log.info("elsewhere")
        done.set()

    threading.Thread(target=elsewhere).start()
    assert done.wait(10)
    assert _events(log_file) == ["last_words", "elsewhere"]


def test_another_loop_does_not_wait_for_one_that_stopped(log_file: Path) -> None:
    log = structlog.get_logger("test")
    _stopped_loop_owing_a_flush(log)

    async def later() -> list[str]:
        log.info("in_new_loop")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return _events(log_file)

    assert asyncio.run(later()) == ["last_words", "in_new_loop"]


def test_lines_left_in_the_buffer_are_written_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "exit.log"
    script = (
        "import asyncio, sys, structlog\n"
        "from operator_sim.logs import configure_logging\n"
        f"configure_logging('info', 'json', open({str(path)!r}, 'w'))\n"
        "loop = asyncio.new_event_loop()\n"
        "def last():\n"
        "    structlog.get_logger().info('last_words')\n"
        "    loop.stop()\n"
        "loop.call_soon(last)\n"
        "loop.run_forever()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert _events(path) == ["last_words"]


def test_standard_error_gets_a_loops_lines_in_one_write_and_stdlib_lines_in_order(
    tmp_path: Path,
) -> None:
    # As the server runs with its log redirected to a file: standard error's text layer
    # writes straight to the file, so without a buffer of their own every line would
    # cost a system call.
    path = tmp_path / "stderr.log"
    script = (
        "import asyncio, logging, os, structlog\n"
        "from operator_sim.logs import configure_logging\n"
        "configure_logging('info', 'auto')\n"
        "log = structlog.get_logger()\n"
        "async def main():\n"
        "    log.info('first')\n"
        "    log.info('second')\n"
        "    held = os.fstat(2).st_size\n"
        "    await asyncio.sleep(0)\n"
        "    await asyncio.sleep(0)\n"
        "    turned = os.fstat(2).st_size\n"
        "    log.info('third')\n"
        "    logging.getLogger('aiohttp.server').warning('fourth')\n"
        "    print(held, turned)\n"
        "asyncio.run(main())\n"
    )
    with path.open("wb") as stderr:
        done = subprocess.run(
            [sys.executable, "-c", script],
            stderr=stderr,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
            timeout=60,
        )
    held, turned = map(int, done.stdout.split())
    assert held == 0  # both lines still in the buffer while the loop runs what is ready
    assert turned > 0  # written once it had
    assert _events(path) == ["first", "second", "third", "fourth"]

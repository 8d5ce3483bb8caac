"""Where log lines go and when: every line is written out before the logging call
returns, on an event loop or not, and on standard error below its text layer, with
stdlib logging's lines in order among structlog's."""

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


def test_a_line_on_an_event_loop_is_written_before_the_loop_turns(log_file: Path) -> None:
    # A server killed right after answering has the request's line: nothing waits for
    # a later turn of the loop.
    log = structlog.get_logger("test")

    async def request() -> list[str]:
        log.info("answered")
        return _events(log_file)

    assert asyncio.run(request()) == ["answered"]


def test_lines_from_another_thread_are_written_at_once_and_in_order(log_file: Path) -> None:
    log = structlog.get_logger("test")
    log.info("first")
    done = threading.Event()

    def elsewhere() -> None:
        log.info("elsewhere")
        done.set()

    threading.Thread(target=elsewhere).start()
    assert done.wait(10)
    assert _events(log_file) == ["first", "elsewhere"]


def test_standard_error_gets_each_line_at_once_and_stdlib_lines_in_order(
    tmp_path: Path,
) -> None:
    # As the server runs with its log redirected to a file: the lines are written below
    # standard error's text layer, each before the call returns, and aiohttp's lines
    # (stdlib logging) take their place among them.
    path = tmp_path / "stderr.log"
    script = (
        "import asyncio, logging, os, structlog\n"
        "from operator_sim.logs import configure_logging\n"
        "configure_logging('info', 'auto')\n"
        "log = structlog.get_logger()\n"
        "async def main():\n"
        "    log.info('first')\n"
        "    after_first = os.fstat(2).st_size\n"
        "    logging.getLogger('aiohttp.server').warning('second')\n"
        "    log.info('third')\n"
        "    print(after_first, os.fstat(2).st_size)\n"
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
    after_first, after_third = map(int, done.stdout.split())
    assert after_first > 0  # on disk while the loop was still in the same callback
    assert after_third == path.stat().st_size  # nothing was left to write at exit
    assert _events(path) == ["first", "second", "third"]

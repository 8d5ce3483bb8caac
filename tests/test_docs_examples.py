"""Every command and example in README.md and docs/ runs, and says what it prints.

A fenced block is run when an HTML comment on the line before it (other comments may sit
in between) says how:

- ``<!-- run: sh -->``: a ``sh`` block, run by ``bash -euo pipefail`` against the page's
  server, with ``OPSIM`` (its root URL) and ``ADMIN`` (its admin token) set.
- ``<!-- run: python -->``: a ``python`` block, run as a script, with the same variables.
- ``<!-- run: pytest -->``: a ``python`` block, run as a test file by pytest in a
  directory of its own (so only the installed plugin applies); it must pass.
- ``<!-- run: console -->`` (optionally ``status=N``, default 0): a ``console`` block;
  each ``$ `` line is a command run by bash, and the lines after it are what it prints.
- ``<!-- run: by tests/test_x.py -->``: a block a named test runs itself (for a library
  snippet that needs a harness around it); that file must exist and name the page.
- ``<!-- file: NAME -->``: the block is written to ``NAME`` in the page's working
  directory before the blocks after it run (a fixture file a later command uses).
- ``<!-- norun: reason -->``: not runnable here (installs, a server that runs until
  stopped, benchmark figures); the reason is required.

Every ``sh``, ``bash``, ``python`` and ``console`` block carries one of these markers.

Each page gets one fresh server (a temporary database, the default fixture, a manual
clock) and one working directory; its blocks run in order, so a later block sees what an
earlier one did. Shown output is checked: in ``sh``, comment lines ``# {...}`` or
``# [...]`` right after a command are the JSON it prints (a comment line starting with
``#  `` continues the one above), and ``# => text`` is a line of plain output; in
``python``, ``# => text`` at the end of a line is a line the script prints, in order; in
``console``, every line after a command. ``...`` stands for any text within a line.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MUST_BE_MARKED = {"sh", "bash", "shell", "python", "py", "console"}
TIMEOUT = 90.0

_FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")
_COMMENT_RE = re.compile(r"^\s*<!--(?P<body>.*?)-->\s*$")
_MARKER_RE = re.compile(r"^\s*(?P<verb>run|norun|file):\s*(?P<arg>.*?)\s*$")
_STEP = "@@operator-sim-docs-step@@"


def pages() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def rel(path: Path) -> str:
    """A path relative to the repository, for messages."""
    return path.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page and the marker before it, if any."""

    page: Path
    line: int
    lang: str
    code: str
    verb: str | None
    arg: str

    @property
    def where(self) -> str:
        """``page:line`` of the opening fence."""
        return f"{rel(self.page)}:{self.line}"


def _marker(lines: list[str], fence_index: int) -> tuple[str | None, str]:
    """The run/norun/file marker among the comment lines right above a fence."""
    i = fence_index - 1
    while i >= 0 and lines[i].strip():
        comment = _COMMENT_RE.match(lines[i])
        if comment is None:
            break
        marker = _MARKER_RE.match(comment.group("body"))
        if marker is not None:
            return marker.group("verb"), marker.group("arg")
        i -= 1
    return None, ""


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE_RE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        verb, arg = _marker(lines, i)
        code = "\n".join(body) + "\n"
        found.append(Block(page, i + 1, opening.group("lang").lower(), code, verb, arg))
        i = j + 1
    return found


def all_blocks() -> Iterator[Block]:
    """The blocks of every page."""
    for page in pages():
        yield from blocks(page)


def find_block(page: str, verb: str, arg: str) -> str:
    """The code of the one block of ``page`` (relative to the repository) with this marker."""
    matching = [b for b in blocks(ROOT / page) if b.verb == verb and b.arg == arg]
    assert len(matching) == 1, f"{page}: expected one block marked {verb}: {arg}"
    return matching[0].code


# --- expected output -------------------------------------------------------------------------


def _pattern(expected: str) -> re.Pattern[str]:
    """A line as shown in the docs, ``...`` matching any text within the line."""
    parts = [re.escape(p) for p in expected.strip().split("...")]
    return re.compile("[^\n]*?".join(parts))


def _matches(expected: str, actual: str) -> bool:
    return _pattern(expected).fullmatch(actual.strip()) is not None


@dataclass
class _ShStep:
    code: list[str]
    shown: list[str]


def _sh_steps(code: str) -> list[_ShStep]:
    """Cut a sh block after each command whose output is shown in comments."""
    steps = [_ShStep([], [])]
    last_shown = False
    for line in code.splitlines():
        stripped = line.strip()
        if re.match(r"^# [\[{]", stripped) or stripped.startswith("# => "):
            text = stripped[5:] if stripped.startswith("# => ") else stripped[2:]
            steps[-1].shown.append(text)
            last_shown = True
        elif last_shown and stripped.startswith("#  "):
            steps[-1].shown[-1] += stripped[3:]
        else:
            if steps[-1].shown:
                steps.append(_ShStep([], []))
            steps[-1].code.append(line)
            last_shown = False
    return steps


def sh_script(code: str) -> tuple[str, list[list[str]]]:
    """The block with a step marker printed after each command whose output is shown."""
    out: list[str] = []
    shown: list[list[str]] = []
    for step in _sh_steps(code):
        out.extend(step.code)
        if step.shown:
            out.append(f"printf '\\n%s\\n' '{_STEP}'")
            shown.append(step.shown)
    return "\n".join(out) + "\n", shown


def check_sh_output(block: Block, stdout: str, shown: list[list[str]]) -> None:
    """Each step's last printed lines are what the block shows."""
    chunks = stdout.split(f"\n{_STEP}\n")
    for expected, chunk in zip(shown, chunks, strict=False):
        printed = [x for x in chunk.splitlines() if x.strip()]
        tail = printed[-len(expected) :] if printed else []
        message = f"{block.where}: shown {expected}, printed {printed}"
        assert len(tail) == len(expected), message
        assert all(_matches(e, a) for e, a in zip(expected, tail, strict=True)), message


def check_python_output(block: Block, stdout: str) -> None:
    """Every ``# => text`` of the block is printed, in order."""
    expected = re.findall(r"#\s*=>\s*(.+?)\s*$", block.code, re.M)
    printed = [x for x in stdout.splitlines() if x.strip()]
    position = 0
    for line in expected:
        while position < len(printed) and not _matches(line, printed[position]):
            position += 1
        assert position < len(printed), f"{block.where}: {line!r} not printed in order:\n{stdout}"
        position += 1


def console_commands(code: str) -> list[tuple[str, list[str]]]:
    """(command, the lines it prints) for each ``$ `` line of a console block."""
    commands: list[tuple[str, list[str]]] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            raise AssertionError(f"console line outside a command's output: {line!r}")
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + "\n" + lines[i]
        i += 1
        output: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        commands.append((command, output))
    return commands


# --- running ---------------------------------------------------------------------------------


async def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=cwd,
        env=env,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{' '.join(argv)[:200]} did not finish in {TIMEOUT:g} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _environment(base_url: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # the venv's operator-sim and python
    return {
        **os.environ,
        "OPSIM": base_url,
        "ADMIN": ADMIN_TOKEN,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
    }


async def run_block(block: Block, cwd: Path, env: dict[str, str]) -> None:
    """Run one marked block and check what it printed."""
    kind, _, option = block.arg.partition(" ")
    if block.verb == "file":
        (cwd / block.arg).write_text(block.code, encoding="utf-8")
        return
    if kind == "sh":
        script, steps = sh_script(block.code)
        status, out, err = await _run(["bash", "-euo", "pipefail", "-c", script], cwd, env)
        assert status == 0, f"{block.where}: exit {status}\n{out}\n{err}"
        check_sh_output(block, out, steps)
    elif kind == "python":
        (cwd / "example.py").write_text(block.code, encoding="utf-8")
        status, out, err = await _run([sys.executable, "example.py"], cwd, env)
        assert status == 0, f"{block.where}: exit {status}\n{out}\n{err}"
        check_python_output(block, out)
    elif kind == "pytest":
        where = cwd / f"pytest-{block.line}"
        where.mkdir()
        (where / "test_example.py").write_text(block.code, encoding="utf-8")
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"]
        status, out, err = await _run(argv, where, env)
        assert status == 0, f"{block.where}: pytest exit {status}\n{out}\n{err}"
        assert re.search(r"\b\d+ passed\b", out), out
        assert " failed" not in out, out
    elif kind == "console":
        wanted = int(option.removeprefix("status=")) if option else 0
        for command, shown in console_commands(block.code):
            status, out, err = await _run(["bash", "-c", command], cwd, env)
            printed = [x for x in (out + err).splitlines() if x.strip()]
            expected = [x for x in shown if x.strip()]
            assert status == wanted, f"{block.where}: {command}: exit {status}\n{out}\n{err}"
            message = f"{block.where}: {command}: shown {expected}, printed {printed}"
            assert len(printed) == len(expected), message
            assert all(_matches(e, a) for e, a in zip(expected, printed, strict=True)), message
    elif kind == "by":
        pass  # checked by the named test (see test_every_run_by_names_an_existing_test)
    else:
        raise AssertionError(f"{block.where}: unknown marker run: {block.arg}")


def runnable_pages() -> list[Path]:
    """Pages with at least one block to run."""
    return [p for p in pages() if any(b.verb in ("run", "file") for b in blocks(p))]


@pytest.mark.parametrize("page", runnable_pages(), ids=rel)
async def test_every_marked_block_of_the_page_runs(page: Path, tmp_path: Path) -> None:
    app = create_app(Settings(db=tmp_path / "docs.db", clock="manual"))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    work = tmp_path / "work"
    work.mkdir()
    try:
        env = _environment(str(server.make_url("")).rstrip("/"))
        for block in blocks(page):
            if block.verb in ("run", "file"):
                await run_block(block, work, env)
    finally:
        await server.close()


# --- markers ---------------------------------------------------------------------------------


def test_every_command_block_is_marked_run_or_norun() -> None:
    unmarked = [b.where for b in all_blocks() if b.lang in MUST_BE_MARKED and b.verb is None]
    assert unmarked == [], f"mark these blocks <!-- run: ... --> or <!-- norun: why -->: {unmarked}"


def test_markers_are_well_formed() -> None:
    problems: list[str] = []
    for b in all_blocks():
        kind = b.arg.split(" ")[0]
        if b.verb == "norun" and len(b.arg) < 10:
            problems.append(f"{b.where}: norun needs a reason")
        if b.verb == "run":
            expected_lang = {
                "sh": {"sh", "bash", "shell"},
                "python": {"python", "py"},
                "pytest": {"python", "py"},
                "console": {"console"},
                "by": {b.lang},
            }.get(kind)
            if expected_lang is None or b.lang not in expected_lang:
                problems.append(f"{b.where}: run: {b.arg} on a {b.lang or 'plain'} block")
        if b.verb == "file" and not re.fullmatch(r"[\w.-]+", b.arg):
            problems.append(f"{b.where}: file: needs a plain file name")
    assert problems == []


def test_every_run_by_names_an_existing_test() -> None:
    for b in all_blocks():
        if b.verb == "run" and b.arg.startswith("by "):
            test_file = ROOT / b.arg[3:].strip()
            assert test_file.is_file(), f"{b.where}: {test_file} does not exist"
            assert rel(b.page) in test_file.read_text(encoding="utf-8"), (
                f"{b.where}: {rel(test_file)} never names {rel(b.page)}"
            )


def test_no_marker_is_left_without_a_block() -> None:
    for page in pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            comment = _COMMENT_RE.match(line)
            if comment is None or _MARKER_RE.match(comment.group("body")) is None:
                continue
            following = next(
                (x for x in lines[number:] if x.strip() and not _COMMENT_RE.match(x)), ""
            )
            assert _FENCE_RE.match(following), f"{rel(page)}:{number}: marker without a block"


# --- the harness itself ----------------------------------------------------------------------


def _block(code: str, arg: str = "sh") -> Block:
    return Block(ROOT / "README.md", 1, "sh", code, "run", arg)


def test_sh_output_is_checked_step_by_step() -> None:
    code = 'echo \'{"a":1,"b":"x"}\'\n# {"a":1,...}\necho hello\n# => hello\n'
    script, shown = sh_script(code)
    assert shown == [['{"a":1,...}'], ["hello"]]
    assert script.count(_STEP) == 2
    check_sh_output(_block(code), f'{{"a":1,"b":"x"}}\n{_STEP}\nhello\n{_STEP}\n', shown)
    with pytest.raises(AssertionError):
        check_sh_output(_block(code), f'{{"a":2}}\n{_STEP}\nhello\n{_STEP}\n', shown)


def test_continued_comment_lines_join_the_shown_json() -> None:
    _, shown = sh_script('curl x\n# {"a":1,\n#  "b":2}\n# plain prose\n')
    assert shown == [['{"a":1,"b":2}']]


def test_python_output_is_checked_in_order() -> None:
    block = _block("print(1)  # => 1\nprint(2)  # => 2\n", "python")
    check_python_output(block, "1\n2\n")
    with pytest.raises(AssertionError):
        check_python_output(block, "2\n1\n")


def test_console_blocks_split_into_commands_and_output() -> None:
    code = "$ echo a \\\n  b\na b\n$ true\n"
    assert console_commands(code) == [("echo a \n  b", ["a b"]), ("true", [])]


def test_markers_are_found_above_other_comments(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "<!-- run: sh -->\n<!-- walkthrough:start -->\n```sh\necho\n```\n\n```python\nx\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.lang, b.verb, b.arg) for b in found] == [("sh", "run", "sh"), ("python", None, "")]


def test_find_block_returns_the_marked_code() -> None:
    found: Any = find_block("README.md", "run", "sh")
    assert "identification-requests" in found

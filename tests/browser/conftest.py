"""Browser tests: the console in Debian's Chromium, driven by Playwright (sync API).

The server runs on its own thread (``opsim_server``: a ThreadedOperatorSim on a manual
clock, with a random admin token). Playwright's own browser downloads are not used: the
browser is the system's Chromium, from ``OPERATOR_SIM_CHROMIUM`` or the ``PATH``. Without
one these tests skip, saying why, unless ``OPERATOR_SIM_REQUIRE_BROWSER`` is set (CI),
where a missing browser fails them.

The fixtures are this directory's own rather than pytest-playwright's: that plugin
parametrizes every test of the session that takes an argument called ``page`` (the docs
tests do), regroups the session around it, and keeps its sync Playwright, whose event
loop counts as running on the main thread, until the session ends, so no asyncio test
could run after a browser test. Here Playwright lives for one module.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from operator_sim.testing import ThreadedOperatorSim

# Playwright's assertions retry until this many milliseconds pass: a bound, not a delay.
expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The system's Chromium; a skip that says why when there is none (a failure in CI)."""
    exe = os.environ.get("OPERATOR_SIM_CHROMIUM") or shutil.which("chromium")
    if not exe:
        if os.environ.get("OPERATOR_SIM_REQUIRE_BROWSER"):
            pytest.fail("no chromium, and browser tests are required here")
        pytest.skip("no system chromium (apt-get install chromium, or set OPERATOR_SIM_CHROMIUM)")
    return exe


@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Browser]:
    """Headless Chromium for one test module."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) and a page in it."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


class Problems:
    """Console errors and uncaught exceptions a page reported."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        """Keep errors (a CSP violation is one)."""
        if message.type == "error":
            self.seen.append(f"console: {message.text}")

    def exception(self, error: Any) -> None:
        """Keep uncaught exceptions."""
        self.seen.append(f"exception: {error}")


@pytest.fixture
def problems(page: Page) -> Problems:
    """What went wrong in the page, collected as the test runs."""
    found = Problems()
    page.on("console", found.console)
    page.on("pageerror", found.exception)
    return found


@pytest.fixture
def console(page: Page, opsim_server: ThreadedOperatorSim) -> Page:
    """A page signed in to the console with the server's admin token, on the overview."""
    page.goto(f"{opsim_server.base_url}/ui/")
    page.get_by_label("Admin token").fill(opsim_server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # Confirmation dialogs (terminate, delete) are accepted, as a person would.
    page.on("dialog", lambda dialog: dialog.accept())
    return page

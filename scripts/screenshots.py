"""Take a screenshot of each console page for the documentation (opt-in, never in tests).

Starts a server on a manual clock, gives it something to show (identification requests
of several kinds, a registered code and a termination, a runtime rule, SMS with one-time
codes), signs in, and
writes ``docs/images/console-<page>.png`` with the system's Chromium (the browser tests'
one: ``OPERATOR_SIM_CHROMIUM`` or ``chromium`` on the PATH).

    python scripts/screenshots.py [--out docs/images] [--width 1280]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import requests
from playwright.sync_api import Page, expect, sync_playwright

from operator_sim.testing import ThreadedOperatorSim

ROOT = Path(__file__).resolve().parent.parent
PHONE = "+79000000011"


def _populate(sim: ThreadedOperatorSim) -> str:
    """Some history to show; returns the id of a request still pending."""
    answered = sim.identify("+79000000001", "alfa")
    requests.post(
        f"{sim.base_url}/operators/alfa/v1/identification-codes",
        json={"request_id": answered.id, "code": "screenshot-code-0001"},
        headers=sim.messenger_headers(),
        timeout=10,
    ).raise_for_status()
    for msisdn in ("+79000000002", "+79000000003", "+79000000008"):
        requests.post(
            f"{sim.base_url}/operators/alfa/v1/identification-requests",
            json={"msisdn": msisdn},
            headers=sim.messenger_headers(),
            timeout=10,
        )
    sim.add_rule({"id": "slow-beta", "match": {"operator_id": "beta"}, "action": {"type": "never"}})
    sim.terminate("+79000000001")
    for text in ("Your code is 482913", "Your code is 730615. Do not share it."):
        sim.send_sms(PHONE, text)
        sim.advance("PT1M")
    sim.send_sms("+79000000013", "Your code is 112358")  # a phone that is off: in flight
    sim.advance("PT3M")
    return sim.identify("+79000000009", "alfa").id


def _sign_in(page: Page, sim: ThreadedOperatorSim) -> None:
    page.goto(f"{sim.base_url}/ui/")
    page.get_by_label("Admin token").fill(sim.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def main() -> None:
    """Write one PNG per page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    exe = os.environ.get("OPERATOR_SIM_CHROMIUM") or shutil.which("chromium")
    if not exe:
        raise SystemExit("no chromium: apt-get install chromium, or set OPERATOR_SIM_CHROMIUM")
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadedOperatorSim() as sim, sync_playwright() as playwright:
        pending = _populate(sim)
        browser = playwright.chromium.launch(executable_path=exe, headless=True)
        page = browser.new_page(viewport={"width": args.width, "height": 800})
        _sign_in(page, sim)
        shots = {
            "overview": "/ui/",
            "journal": "/ui/journal",
            "request": f"/ui/requests/{pending}",
            "subscribers": "/ui/subscribers",
            "subscriber": "/ui/subscribers/+79000000001",
            "phone": f"/ui/phones/{PHONE}",
            "messengers": "/ui/messengers",
            "deliveries": "/ui/deliveries",
            "rules": "/ui/rules",
        }
        for name, path in shots.items():
            page.goto(sim.base_url + path)
            expect(page.locator("#live-status")).to_have_attribute("data-live", "open")
            target = args.out / f"console-{name}.png"
            page.screenshot(path=str(target), full_page=True)
            print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
        browser.close()


if __name__ == "__main__":
    main()

"""Fuzz the server's own contract: schemathesis against /openapi.json on a live server.

Starts `operator-sim serve` on a fresh database (manual clock, long polls capped at 1 s)
on loopback, runs schemathesis with its default checks twice (messenger API with the demo
messenger key, admin API with the demo admin token), a bounded number of examples per
operation, then checks the server's log for tracebacks. Exits non-zero on any failure.

With --canary it first seeds canary subscribers (personal data that must never leave the
admin API), runs the identification flow on them (request, code, termination) and sends
each a one-time code by SMS (a secret that only the phone's inbox may show), fuzzes, then
greps the server log for their personal data, the codes and unmasked numbers in any
formatting, and the messenger pass's responses (a HAR report) for their personal data
and the codes: any hit fails.

    python scripts/fuzz.py [--examples 50] [--canary]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from crash_loop import CANARIES, PII, digits_variants

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "fuzz" / "schemathesis.toml"
OTP_CANARY = "58301749"
OTP_TEXT = f"{OTP_CANARY} is your code. Снегирь-канарейка"
SECRETS = [*PII, OTP_CANARY, "Снегирь-канарейка"]
RUNS = (
    ("messenger API", "demo-messenger-key-not-secret", ["--exclude-path-regex", "^/admin"]),
    ("admin API", "demo-admin-token-not-secret", ["--include-path-regex", "^/admin"]),
)


def _schemathesis() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(found).exists():
        raise SystemExit("schemathesis is not installed: pip install '.[test]'")
    return found


def _call(url: str, method: str, token: str, body: object = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (our own server on loopback)
        url, data=data, method=method, headers={"Authorization": f"Bearer {token}"}
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (loopback)
        return resp.status, resp.read().decode()


def seed_canaries(url: str) -> list[str]:
    """Seed the canaries and run the flow on them; returns the messenger responses."""
    admin, key = RUNS[1][1], RUNS[0][1]
    _call(f"{url}/admin/v1/subscribers", "POST", admin, {"subscribers": CANARIES})
    bodies = []
    for canary in CANARIES[:4]:
        msisdn = canary["msisdn"]
        bodies.append(_call(f"{url}/v1/routing/{msisdn}", "GET", key)[1])
        _status, body = _call(
            f"{url}/operators/alfa/v1/identification-requests", "POST", key, {"msisdn": msisdn}
        )
        bodies.append(body)
        request_id = json.loads(body)["id"]
        code = {"request_id": request_id, "code": f"canary-code-{msisdn[1:]}"}
        bodies.append(_call(f"{url}/operators/alfa/v1/identification-codes", "POST", key, code)[1])
        sms = {"to": msisdn, "text": OTP_TEXT}
        bodies.append(_call(f"{url}/sms/v1/messages", "POST", key, sms)[1])
    _call(f"{url}/admin/v1/clock/advance", "POST", admin, {"by": "PT1M"})  # the codes arrive
    for canary in CANARIES[:4]:
        _call(f"{url}/admin/v1/subscribers/{canary['msisdn']}/terminate", "POST", admin)
    _status, inbox = _call(f"{url}/admin/v1/phones/{CANARIES[0]['msisdn']}/messages", "GET", admin)
    if OTP_CANARY not in inbox:
        raise SystemExit("canary: the code did not reach the phone's inbox")
    bodies.append(_call(f"{url}/operators/alfa/v1/events", "GET", key)[1])
    bodies.append(_call(f"{url}/sms/v1/events", "GET", key)[1])
    return bodies


def pii_hits(log: str, responses: list[str]) -> list[str]:
    """Every canary datum found where it must not be."""
    hits = [f"log: {p!r}" for p in SECRETS if p in log]
    hits += [f"response: {p!r}" for text in responses for p in SECRETS if p in text]
    for canary in CANARIES:
        hits += [
            f"log: unmasked {canary['msisdn'][:5]}..."
            for variant in digits_variants(canary["msisdn"])
            if variant in log
        ]
    return hits


def main() -> int:
    """Run both fuzzing passes; the exit status is the number of failed passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50, help="examples per operation")
    parser.add_argument(
        "--canary", action="store_true", help="seed canary subscribers and grep for them"
    )
    args = parser.parse_args()
    tool = _schemathesis()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("w") as err:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "operator_sim",
                    "serve",
                    "--port",
                    "0",
                    "--db",
                    str(Path(tmp) / "fuzz.db"),
                    "--clock",
                    "manual",
                    "--max-wait",
                    "1",
                    "--log-format",
                    "json",
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=tmp,
            )
        try:
            line = server.stdout.readline().strip() if server.stdout else ""
            if not line.startswith("listening on "):
                raise SystemExit(f"the server did not start: {line!r}")
            url = line.removeprefix("listening on ")
            responses = seed_canaries(url) if args.canary else []
            har = Path(tmp) / "messenger.har"
            for name, token, scope in RUNS:
                report = (
                    ["--report", "har", "--report-har-path", str(har)]
                    if args.canary and scope == RUNS[0][2]
                    else []
                )
                print(
                    f"--- fuzzing the {name} ({args.examples} examples per operation)", flush=True
                )
                result = subprocess.run(
                    [
                        tool,
                        "--config-file",
                        str(CONFIG),
                        "run",
                        f"{url}/openapi.json",
                        "-H",
                        f"Authorization: Bearer {token}",
                        "--max-examples",
                        str(args.examples),
                        "--request-timeout",
                        "20",
                        "--seed",
                        "1801",
                        *scope,
                        *report,
                    ],
                    check=False,
                    env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
                    cwd=tmp,  # schemathesis keeps a cache in its working directory
                )
                failed += result.returncode != 0
        finally:
            server.terminate()
            code = server.wait(timeout=30)
        text = log.read_text()
        if args.canary and har.exists():
            for entry in json.loads(har.read_text())["log"]["entries"]:
                responses.append(entry["response"]["content"].get("text", ""))
    if args.canary:
        hits = pii_hits(text, responses)
        for hit in hits[:20]:
            print(f"canary data leaked: {hit}", file=sys.stderr)
        print(
            f"canary: {len(responses)} responses and the server log grepped; PII hits {len(hits)}"
        )
        failed += bool(hits)
    if "Traceback" in text:
        print("the server logged a traceback during fuzzing:", file=sys.stderr)
        print(text[text.index("Traceback") - 500 :][:4000], file=sys.stderr)
        failed += 1
    if code != 0:
        print(f"the server exited with {code}", file=sys.stderr)
        failed += 1
    print(f"fuzzing: {len(RUNS) - min(failed, len(RUNS))} of {len(RUNS)} passes clean")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())

"""Fuzz the server's own contract: schemathesis against /openapi.json on a live server.

Starts `operator-sim serve` on a fresh database (manual clock, long polls capped at 1 s)
on loopback, runs schemathesis with its default checks twice (messenger API with the demo
messenger key, admin API with the demo admin token), a bounded number of examples per
operation, then checks the server's log for tracebacks. Exits non-zero on any failure.

    python scripts/fuzz.py [--examples 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "fuzz" / "schemathesis.toml"
RUNS = (
    ("messenger API", "demo-messenger-key-not-secret", ["--exclude-path-regex", "^/admin"]),
    ("admin API", "demo-admin-token-not-secret", ["--include-path-regex", "^/admin"]),
)


def _schemathesis() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(found).exists():
        raise SystemExit("schemathesis is not installed: pip install '.[test]'")
    return found


def main() -> int:
    """Run both fuzzing passes; the exit status is the number of failed passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50, help="examples per operation")
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
            for name, token, scope in RUNS:
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
                    ],
                    check=False,
                    env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
                )
                failed += result.returncode != 0
        finally:
            server.terminate()
            code = server.wait(timeout=30)
        text = log.read_text()
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

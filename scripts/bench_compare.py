"""Compare the identification POST of this checkout with another revision, in one run.

Checks the other revision (``--baseline``, a git revision) out into a temporary
worktree with a virtual environment of its own, seeds one database per side with the
same number of subscribers, starts both servers (`serve --log-level warning`, 127.0.0.1)
and drives them with `wrk` exactly as scripts/bench.py does (one thread, 50 connections,
10 s per run after 2 s of warm-up, half present and half absent numbers) in interleaved
rounds, the order swapped every round, so that both sides meet the same drift of a shared
machine. Prints each run, the medians (requests/s, p99, the server's CPU time per
request) and the ratio this checkout / baseline per round and its median: the figure to
quote when a change must not cost the hot path.

Needs `wrk` (Debian: `apt-get install wrk`) and network access to the package index for
the baseline's dependencies. Removes the worktree when done.

    python scripts/bench_compare.py --baseline REV [--rounds 6] [--subscribers 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import IR_PATH, Load, Server, WrkResult, numbers_file, start, wrk

ROOT = Path(__file__).resolve().parent.parent


def _baseline(rev: str, work: Path) -> tuple[Path, Path]:
    """A worktree of ``rev`` and the Python of its own virtual environment."""
    tree = work / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run([sys.executable, "-m", "venv", str(tree / ".venv")], check=True)
    python = tree / ".venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(tree)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return tree, python


def _seed(python: Path, db: Path, count: int, cwd: Path) -> None:
    subprocess.run(
        [str(python), "-m", "operator_sim", "seed", "--db", str(db), "--count", str(count)],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _serve(python: Path, db: Path, cwd: Path) -> Server:
    argv = [str(python), "-m", "operator_sim", "serve", "--port", "0", "--db", str(db)]
    return start([*argv, "--log-level", "warning"], cwd)


def main() -> None:
    """Measure both sides and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    load = Load(connections=50, duration=args.duration, threads=1, warmup=2)
    work = Path(tempfile.mkdtemp(prefix="opsim-compare-"))
    tree: Path | None = None
    try:
        tree, old_python = _baseline(args.baseline, work)
        pythons = {"this checkout": Path(sys.executable), f"{args.baseline}": old_python}
        dbs: dict[str, Path] = {}
        for side, python in pythons.items():
            dbs[side] = work / f"{len(dbs)}.db"
            _seed(python, dbs[side], args.subscribers, work)
        numbers_file(dbs["this checkout"], work / "numbers.txt")
        env = {"OPSIM_NUMBERS": str(work / "numbers.txt"), "OPSIM_PATH": IR_PATH}
        print(
            f"{args.subscribers:,} subscribers a side; wrk: {load.connections} connections, "
            f"{load.threads} thread, {load.duration} s per run after {load.warmup} s of warm-up"
        )
        servers = {side: _serve(python, dbs[side], work) for side, python in pythons.items()}
        runs: dict[str, list[WrkResult]] = {side: [] for side in pythons}
        try:
            for round_ in range(1, args.rounds + 1):
                order = list(pythons) if round_ % 2 else list(reversed(pythons))
                for side in order:
                    result = wrk(
                        servers[side].url,
                        "post_identification.lua",
                        env,
                        load,
                        server=servers[side],
                    )
                    runs[side].append(result)
                    print(f"[{round_}] {side:<16} {result.line()}", flush=True)
        finally:
            for server in servers.values():
                server.stop()
        for side, results in runs.items():
            cpu = statistics.median(r.cpu_us or 0.0 for r in results)
            print(
                f"{side}: median {statistics.median(r.rps for r in results):,.0f} req/s, "
                f"p99 {statistics.median(r.p99_ms for r in results):.2f} ms, "
                f"CPU {cpu:.1f} us/req, errors {sum(r.errors for r in results)}"
            )
        new, old = runs["this checkout"], runs[args.baseline]
        ratios = [n.rps / o.rps for n, o in zip(new, old, strict=True)]
        print(
            f"this checkout / {args.baseline}: median {statistics.median(ratios):.2f}x "
            f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    finally:
        if tree is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

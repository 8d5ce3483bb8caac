"""Fill a real small file system under a running server, then give space back.

Mounts a tmpfs of `--size` (6 MB by default; needs root) in a temporary directory,
starts `operator-sim serve` with its database there, sends identification POSTs from a
few concurrent clients until `--posts` were sent, and tallies the answers by status;
asks `/readyz` while the disk is full; grows the tmpfs (`mount -o remount,size=...`:
space is back) and asks `/readyz` again, with no other traffic, then POSTs again; then
checks that every POST that was acknowledged (201) can be read back, stops the server
and runs `PRAGMA integrity_check`. Prints what it saw; exits 1 when a POST got a 500,
an acknowledged request is missing, or the database is damaged.

    sudo python scripts/full_disk.py [--size 6m] [--grow-to 64m] [--posts 3000]
                                     [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from bench import KEY, Server, start

IR_PATH = "/operators/alfa/v1/identification-requests"


def _mount(where: Path, size: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)


def _resize(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def _usage(where: Path) -> str:
    total, used, free = shutil.disk_usage(where)
    return f"{used / 1024 / 1024:.1f} of {total / 1024 / 1024:.1f} MB used, {free // 1024} KB free"


async def _readyz(http: aiohttp.ClientSession, server: Server) -> str:
    async with http.get(f"{server.url}/readyz") as resp:
        return f"{resp.status} {(await resp.json())['status']}"


@dataclass
class Answers:
    """What a series of POSTs got."""

    tally: collections.Counter[str] = field(default_factory=collections.Counter)
    in_order: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    retry_after: set[str] = field(default_factory=set)

    def runs(self) -> str:
        """The answers in the order they came, as runs: "2137 x 201, 863 x 503 ..."."""
        return ", ".join(f"{len(list(g))} x {k}" for k, g in itertools.groupby(self.in_order))


async def _post_many(
    http: aiohttp.ClientSession, server: Server, count: int, concurrency: int, first: int
) -> Answers:
    """POST ``count`` requests from ``concurrency`` clients."""
    answers = Answers()
    numbers = iter(range(first, first + count))

    async def client() -> None:
        for n in numbers:
            async with http.post(
                f"{server.url}{IR_PATH}",
                json={"msisdn": f"+7950{n:07d}"},
                headers={"Authorization": f"Bearer {KEY}"},
            ) as resp:
                body = await resp.json(content_type=None)
                answer = "201" if resp.status == 201 else f"{resp.status} {body.get('code')}"
                answers.tally[answer] += 1
                answers.in_order.append(answer)
                if resp.status == 201:
                    answers.acknowledged.append(body["id"])
                elif "Retry-After" in resp.headers:
                    answers.retry_after.add(resp.headers["Retry-After"])

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return answers


def _tally(answers: Answers) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(answers.tally.items()))


async def _missing(http: aiohttp.ClientSession, server: Server, ids: list[str]) -> int:
    missing = 0
    for request_id in ids:
        async with http.get(
            f"{server.url}{IR_PATH}/{request_id}", headers={"Authorization": f"Bearer {KEY}"}
        ) as resp:
            if resp.status != 200:
                missing += 1
    return missing


async def _exercise(args: argparse.Namespace, mount: Path, work: Path) -> int:
    db = mount / "sim.db"
    server = start(
        [
            sys.executable,
            "-m",
            "operator_sim",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            "--clock",
            "manual",
            "--log-level",
            "error",
        ],
        work,
    )
    failures = 0
    try:
        async with aiohttp.ClientSession() as http:
            ready = await _readyz(http, server)
            print(f"started on a {args.size} tmpfs: {_usage(mount)}; /readyz {ready}")
            filling = await _post_many(http, server, args.posts, args.concurrency, 0)
            print(f"{args.posts} POSTs: " + _tally(filling))
            print(f"  in the order they came: {filling.runs()}")
            print(
                f"  Retry-After on refusals: {sorted(filling.retry_after)}; disk: {_usage(mount)}"
            )
            failures += sum(v for k, v in filling.tally.items() if k.startswith("500"))
            full = [await _readyz(http, server) for _ in range(3)]
            print(f"/readyz while full (3 calls): {full}")

            _resize(mount, args.grow_to)
            print(f"tmpfs grown to {args.grow_to}: {_usage(mount)}")
            print(f"/readyz with no other traffic: {await _readyz(http, server)}")
            after = await _post_many(http, server, 100, args.concurrency, args.posts)
            print("100 POSTs after: " + _tally(after))
            failures += sum(v for k, v in after.tally.items() if k != "201")
            acknowledged = filling.acknowledged + after.acknowledged
            lost = await _missing(http, server, acknowledged)
            print(
                f"acknowledged requests read back: {len(acknowledged) - lost} of "
                f"{len(acknowledged)}"
            )
            failures += lost
    finally:
        server.stop()
    conn = sqlite3.connect(db)
    try:
        check = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()
    print(f"integrity_check after stop: {check}")
    failures += check != "ok"
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="6m", help="tmpfs size to fill (default 6m)")
    parser.add_argument("--grow-to", default="64m", help="size it grows to (default 64m)")
    parser.add_argument("--posts", type=int, default=3000, help="POSTs while filling")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent clients")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("mounting a tmpfs needs root")
    with tempfile.TemporaryDirectory() as tmp:
        mount = Path(tmp) / "disk"
        mount.mkdir()
        _mount(mount, args.size)
        try:
            failures = asyncio.run(_exercise(args, mount, Path(tmp)))
        finally:
            subprocess.run(["umount", str(mount)], check=False)
    print("OK" if not failures else f"FAILED: {failures} problem(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

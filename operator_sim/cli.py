"""The ``operator-sim`` command: parse arguments, build settings, run."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from operator_sim import __version__
from operator_sim.errors import OperatorSimError, StartupError
from operator_sim.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="operator-sim",
        description="A simulated mobile operator for messenger identification (Decree No. 1801).",
    )
    parser.add_argument("--version", action="version", version=f"operator-sim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the operator server",
        description="Run the operator server. Every option is also an OPERATOR_SIM_* "
        "environment variable; options given here win.",
    )
    _serve_options(serve)

    # Defaults are spelled out here rather than imported: importing the seeding package
    # pulls in Faker, and `serve` must start without it.
    seed = commands.add_parser(
        "seed",
        help="fill a database with fake subscribers",
        description="Add N Faker (ru_RU) subscribers to the database, spread over the "
        "fixture's operators and number ranges. The same seed, count and fixture give "
        "the same subscribers; numbers already stored and the fixture's magic numbers "
        "are never written.",
    )
    seed.add_argument("--db", type=Path, required=True, help="SQLite database file")
    seed.add_argument("--count", type=_count, required=True, help="how many subscribers to add")
    seed.add_argument("--seed", type=int, default=1801, help="random seed (default 1801)")
    seed.add_argument("--fixture", type=Path, help="fixture file (default: the built-in one)")
    seed.add_argument(
        "--incomplete-share",
        type=_share,
        default=0.05,
        help="share with incomplete data, answered absent (default 0.05)",
    )
    seed.add_argument(
        "--terminated-share",
        type=_share,
        default=0.05,
        help="share with ended contracts, answered absent (default 0.05)",
    )
    seed.add_argument(
        "--print-sample",
        type=_count,
        default=0,
        metavar="N",
        help="after seeding, print N of the numbers written of each kind (present, "
        "incomplete, terminated), one per line: KIND MSISDN OPERATOR_ID (default 0)",
    )

    commands.add_parser(
        "demo",
        help="walk a messenger through every branch of the identification flow",
        description="Start a server in-process on the default fixture with a scaled clock and "
        "run the messenger library through proof of possession (a one-time code by SMS, "
        "undelivered, phone off, blocked, throttled, wrong codes, a SIM swap), then present, "
        "absent, incomplete data, timeout, late answer, retries, termination and porting. "
        "Exits 1 if any branch behaved wrongly.",
    )
    return parser


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _share(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _serve_options(serve: argparse.ArgumentParser) -> None:
    """One option per Settings field, so the command line and the environment never drift.

    Values stay strings here; Settings validates them (and names the field on an error).
    """
    for name, field in Settings.model_fields.items():
        default = "none" if field.default is None else field.default
        if name == "admin_token":
            default = "the fixture's demo token, loopback only"
        env = f"OPERATOR_SIM_{name.upper()}"
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else None
        serve.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            choices=choices,
            metavar=None if choices else name.upper(),
            # argparse formats help with %: a literal one (as in "1%") must be doubled.
            help=f"{(field.description or '').rstrip('.')} (default {default}; ${env})".replace(
                "%", "%%"
            ),
        )


def _settings(args: argparse.Namespace) -> Settings:
    given = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    return Settings(**given)


def _url(address: Any, scheme: str = "http") -> str:
    host, port = address[0], address[1]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _settle_heap() -> None:
    """Keep the garbage collector off the request path once the server is built.

    Everything allocated while starting (modules, models, the app) lives as long as the
    process: frozen, full collections no longer walk it, which took tens of milliseconds
    each and set the p99 latency under load. (Not collected first: that would add 30 ms
    to the start-up to free a few hundred objects.) Young collections run every 10,000
    allocations rather than 700.
    """
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def _serve(settings: Settings) -> int:
    from aiohttp import web

    from operator_sim.logs import configure_logging
    from operator_sim.server import ProblemRunner, create_app
    from operator_sim.server.limits import server_options
    from operator_sim.server.tls import server_context

    configure_logging(settings.log_level, settings.log_format)
    tls = (
        None
        if settings.tls_cert is None or settings.tls_key is None
        else server_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    )
    # Signal handlers first: a SIGTERM that arrives while starting still drains cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(settings)
    runner = ProblemRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        **server_options(settings),
    )
    await runner.setup()
    _settle_heap()
    try:
        if settings.unix is not None:
            await web.UnixSite(runner, str(settings.unix), ssl_context=tls).start()
            print(f"listening on unix:{settings.unix}", flush=True)
        else:
            site = web.TCPSite(runner, settings.host, settings.port, ssl_context=tls)
            await site.start()
            scheme = "http" if tls is None else "https"
            print(f"listening on {_url(runner.addresses[0], scheme)}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def _seed(args: argparse.Namespace) -> int:
    # Imported here: Faker is heavy, and only this command needs it.
    from operator_sim.seeding import ProgressBar, seed_database

    bar = ProgressBar(sys.stdout)
    try:
        summary = seed_database(
            db_path=args.db,
            count=args.count,
            seed=args.seed,
            fixture_path=args.fixture,
            incomplete_share=args.incomplete_share,
            terminated_share=args.terminated_share,
            progress=bar,
            sample_per_kind=args.print_sample,
        )
    except StartupError as exc:
        bar.close()
        print(f"operator-sim: error: {exc}", file=sys.stderr)
        return 2
    except (OperatorSimError, OSError) as exc:
        bar.close()
        print(f"operator-sim: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print("operator-sim: interrupted; the batches already committed stay", file=sys.stderr)
        return 130
    bar.close()
    print(summary.line(), flush=True)
    for line in summary.sample_lines():
        print(line)
    sys.stdout.flush()
    return 0


def _run(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run, on uvloop's faster event loop when it is installed.

    uvloop is a dependency wherever it builds (not on Windows or PyPy); without it the
    server runs on asyncio's own loop, only slower.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "seed":
        # The ranges are checked where seeding is implemented, and reported as usage errors.
        from operator_sim.seeding import SeedError, check_arguments

        try:
            check_arguments(args.count, args.incomplete_share, args.terminated_share)
        except SeedError as exc:
            parser.error(str(exc))
        if args.print_sample < 0:
            parser.error(f"--print-sample must be at least 0 (got {args.print_sample})")
        return _seed(args)
    if args.command == "demo":
        # Imported here: `serve` must not pay for the messenger library at start-up.
        from operator_sim.demo import run_demo

        return run_demo()
    try:
        settings = _settings(args)
        if args.command == "serve":
            return _run(_serve(settings))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = ".".join(str(p) for p in first["loc"])
        if not name:  # a check across options names them itself
            message = str(first["msg"]).removeprefix("Value error, ")
            print(f"operator-sim: error: {message}", file=sys.stderr)
            return 2
        where = f"--{name.replace('_', '-')} / OPERATOR_SIM_{name.upper()}"
        print(f"operator-sim: error: {where}: {first['msg']}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"operator-sim: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"operator-sim: error: {exc}", file=sys.stderr)
        return 1
    return 2

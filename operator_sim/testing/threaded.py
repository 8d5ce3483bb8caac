"""The in-process operator-sim on a thread of its own, for blocking clients.

:class:`~operator_sim.testing.OperatorSim` serves on the caller's event loop, so a
blocking client (requests, ``httpx.Client``, a Django or Flask backend) holds that loop
while it waits for an answer that the loop would have to produce, and times out.
:class:`ThreadedOperatorSim` runs the same server on a thread with its own event loop and
offers every helper as a plain blocking method, with no asyncio in sight::

    with ThreadedOperatorSim() as sim:
        sim.add_subscriber("+79161110001", "beta")
        requests.post(
            f"{sim.base_url}/operators/beta/v1/identification-requests",
            json={"msisdn": "+79161110001"},
            headers=sim.messenger_headers(),
        )
        sim.advance("PT20M")

Each blocking helper runs the async helper of the same name on the server's loop and
waits for it, so both faces behave alike and return the same wire models. What the helper
raises there (:class:`~operator_sim.testing.SimCallError` on an unexpected status) is
raised in the calling thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from ssl import SSLContext
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from operator_sim.testing.server import DEFAULT_MESSENGER_ID, OperatorSim

__all__ = ["ThreadedOperatorSim"]

P = ParamSpec("P")
R = TypeVar("R")

_JOIN_TIMEOUT = 30.0


class _Blocking(Generic[P, R]):
    """The blocking face of one :class:`OperatorSim` coroutine method."""

    def __init__(
        self, method: Callable[Concatenate[OperatorSim, P], Coroutine[Any, Any, R]]
    ) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        signature = inspect.signature(method)
        # What help() and IDEs show: the async helper's parameters, without ``self``.
        self._signature = signature.replace(parameters=list(signature.parameters.values())[1:])

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, obj: ThreadedOperatorSim, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, obj: ThreadedOperatorSim | None, owner: type[Any]) -> Self | Callable[P, R]:
        if obj is None:
            return self
        method = self._method

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return obj._run(method.__name__, lambda sim: method(sim, *args, **kwargs))

        functools.update_wrapper(call, method)
        call.__module__ = __name__
        call.__qualname__ = f"ThreadedOperatorSim.{method.__name__}"
        del call.__wrapped__  # type: ignore[attr-defined]  # inspect would show ``self`` again
        call.__signature__ = self._signature  # type: ignore[attr-defined]  # read by inspect
        return call


class ThreadedOperatorSim:
    """An :class:`OperatorSim` on its own thread and event loop, driven by blocking calls.

    Takes the same arguments as :class:`OperatorSim`, plus ``call_timeout``: how long the
    start or a helper may take before the caller gets :class:`TimeoutError` (a server that
    hangs fails the test instead of hanging it). Start and stop it with ``with`` (or
    :meth:`start` and :meth:`stop`); it starts once. Helpers may be called from any thread
    but the server's own.
    """

    def __init__(
        self,
        *,
        fixture: Path | None = None,
        db_path: Path | None = None,
        clock: str = "manual",
        seed: int | None = None,
        journal_cap: int | None = None,
        messenger_id: str = DEFAULT_MESSENGER_ID,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        ssl: SSLContext | None = None,
        client_ssl: SSLContext | None = None,
        webhook_ca: Path | None = None,
        call_timeout: float = 60.0,
    ) -> None:
        self._sim = OperatorSim(
            fixture=fixture,
            db_path=db_path,
            clock=clock,
            seed=seed,
            journal_cap=journal_cap,
            messenger_id=messenger_id,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            ssl=ssl,
            client_ssl=client_ssl,
            webhook_ca=webhook_ca,
        )
        self.call_timeout = call_timeout
        """Seconds a blocking helper (and the start) may take before ``TimeoutError``."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Set from the server thread: started (or why not), and finished (or why it failed).
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopping = asyncio.Event()  # bound to the server's loop on first wait

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server thread and return once the server answers on its port."""
        if self._loop is not None:
            raise RuntimeError("a ThreadedOperatorSim starts only once; make a new one")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(self._loop,), name="operator-sim-server", daemon=True
        )
        self._thread.start()
        try:
            self._ready.result(timeout=self.call_timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop serving, close the database, delete a temporary one and end the thread.

        Raises what stopping raised in the server thread. Stopping twice does nothing.
        """
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._thread = None
        if thread.is_alive():
            # A closed loop means the thread is already on its way out by itself.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
            thread.join(_JOIN_TIMEOUT)
            if thread.is_alive():
                raise TimeoutError(f"the operator-sim thread did not end in {_JOIN_TIMEOUT:g} s")
        self._finished.result()

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            # The runner also cancels leftover tasks and joins the default executor's
            # threads (name resolution) before it closes the loop.
            with asyncio.Runner(loop_factory=lambda: loop) as runner:
                runner.run(self._main())
        except BaseException as exc:  # noqa: BLE001  # raised again by stop(), in the caller
            self._finished.set_exception(exc)
        else:
            self._finished.set_result(None)
        finally:
            if not self._ready.done():
                self._ready.set_exception(RuntimeError("the operator-sim thread ended"))

    async def _main(self) -> None:
        try:
            await self._sim.start()
        except BaseException as exc:  # noqa: BLE001  # raised again by start(), in the caller
            # OperatorSim.start has already cleaned up after itself.
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            await self._stopping.wait()
        finally:
            await self._sim.stop()

    def _run(self, name: str, call: Callable[[OperatorSim], Coroutine[Any, Any, R]]) -> R:
        """Run ``call(sim)`` on the server's loop and wait for its result (or its error)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not self._ready.done():
            raise RuntimeError("the server is not started")
        if threading.current_thread() is thread:
            # Waiting here would block the very loop that has to produce the answer.
            raise RuntimeError(f"{name}() called from the server's own thread; await the loop")
        future = asyncio.run_coroutine_threadsafe(call(self._sim), loop)
        try:
            return future.result(timeout=self.call_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"{name}() did not finish within {self.call_timeout:g} s") from None

    # --- what the code under test needs ------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, or ``https://`` with ``ssl`` (set on start)."""
        return self._sim.base_url

    @property
    def messenger_id(self) -> str:
        """The messenger registered for the code under test."""
        return self._sim.messenger_id

    @property
    def messenger_key(self) -> str:
        """The API key of ``messenger_id`` (set on start, changed by ``rotate_key``)."""
        return self._sim.messenger_key

    @property
    def webhook_secret(self) -> str:
        """The secret that signs ``messenger_id``'s webhooks, ``whsec_...`` (set on start,
        changed by ``rotate_webhook_secret``)."""
        return self._sim.webhook_secret

    @property
    def admin_token(self) -> str:
        """The admin token of this server (random per server)."""
        return self._sim.admin_token

    @property
    def db_path(self) -> Path:
        """The database file the server uses."""
        return self._sim.db_path

    def messenger_headers(self, key: str | None = None) -> dict[str, str]:
        """``Authorization`` for the messenger under test (or another key)."""
        return self._sim.messenger_headers(key)

    # --- the helpers, blocking -----------------------------------------------------------

    register_messenger = _Blocking(OperatorSim.register_messenger)
    rotate_key = _Blocking(OperatorSim.rotate_key)
    rotate_webhook_secret = _Blocking(OperatorSim.rotate_webhook_secret)
    set_webhook_url = _Blocking(OperatorSim.set_webhook_url)
    add_subscribers = _Blocking(OperatorSim.add_subscribers)
    add_subscriber = _Blocking(OperatorSim.add_subscriber)
    add_rule = _Blocking(OperatorSim.add_rule)
    delete_rule = _Blocking(OperatorSim.delete_rule)
    rules = _Blocking(OperatorSim.rules)
    advance = _Blocking(OperatorSim.advance)
    clock = _Blocking(OperatorSim.clock)
    terminate = _Blocking(OperatorSim.terminate)
    port = _Blocking(OperatorSim.port)
    reset = _Blocking(OperatorSim.reset)
    reset_messenger = _Blocking(OperatorSim.reset_messenger)
    identify = _Blocking(OperatorSim.identify)
    requests = _Blocking(OperatorSim.requests)
    count_requests = _Blocking(OperatorSim.count_requests)
    send_sms = _Blocking(OperatorSim.send_sms)
    phone_messages = _Blocking(OperatorSim.phone_messages)
    wait_for_otp = _Blocking(OperatorSim.wait_for_otp)
    record_sim_swap = _Blocking(OperatorSim.record_sim_swap)

"""``SyncMessenger``: the ``Messenger`` for synchronous code (Django, Flask, scripts).

It runs one ``Messenger`` on an event loop in a thread of its own and hands every call
to it, blocking the caller until the answer. Calls from several threads at once are
fine: they run concurrently on that one loop, as they would in an async backend. An
observer runs on the loop's thread, so it must not call back into the ``SyncMessenger``
(that would wait for itself: it raises ``RuntimeError`` instead).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, Unpack

from operator_sim.messenger.checks import UnknownEvent
from operator_sim.messenger.identification import Outcome
from operator_sim.messenger.messenger import Messenger, MessengerOptions
from operator_sim.messenger.otp import Confirmation
from operator_sim.messenger.possession import Verification
from operator_sim.messenger.store import HistoryEntry, UserRecord, VerificationRecord
from operator_sim.messenger.webhooks import WebhookReply
from operator_sim.wire import Event, SmsMessage

__all__ = ["SyncMessenger"]

T = TypeVar("T")


class SyncMessenger:
    """The ``Messenger`` with blocking methods: the same constructor, the same behaviour.

    Use as ``with SyncMessenger(...) as messenger:`` (or ``start()``/``close()``). Every
    keyword option of ``Messenger`` is accepted and means the same.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        db_path: Path | str,
        **options: Unpack[MessengerOptions],
    ) -> None:
        self._args = (base_url, api_key)
        self._db_path = db_path
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._messenger: Messenger | None = None

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> SyncMessenger:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the loop's thread, and the ``Messenger`` on it."""
        if self._loop is not None:
            raise RuntimeError("the SyncMessenger is already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="operator-sim-messenger", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._messenger = self._run(self._open())
        except BaseException:
            self._stop_loop()
            raise

    async def _open(self) -> Messenger:
        # Built on the loop's thread, so that everything it creates belongs to that loop.
        messenger = Messenger(*self._args, db_path=self._db_path, **self._options)
        await messenger.start()
        return messenger

    def close(self) -> None:
        """Close the ``Messenger`` (identifications still running end ``interrupted``)
        and stop the loop's thread. Safe from any thread but the loop's own."""
        if self._loop is None:
            return
        try:
            if self._messenger is not None:
                self._run(self._messenger.close())
        finally:
            self._messenger = None
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    # --- the Messenger's calls ---------------------------------------------------------

    def identify(
        self,
        user_id: str,
        phone: str,
        *,
        require_possession: bool = False,
        max_sim_swap_age: int | None = None,
    ) -> Outcome:
        """Identify a user by the phone number they typed (see ``Messenger.identify``)."""
        return self.call(
            lambda m: m.identify(
                user_id,
                phone,
                require_possession=require_possession,
                max_sim_swap_age=max_sim_swap_age,
            )
        )

    def start_verification(self, user_id: str, phone: str) -> Verification:
        """Send the user a fresh one-time code (see ``Messenger.start_verification``)."""
        return self.call(lambda m: m.start_verification(user_id, phone))

    def confirm_phone(self, user_id: str, code: str) -> Confirmation:
        """Judge the code the user typed (see ``Messenger.confirm_phone``)."""
        return self.call(lambda m: m.confirm_phone(user_id, code))

    def verification(self, user_id: str) -> VerificationRecord | None:
        """The user's latest verification (see ``Messenger.verification``)."""
        return self.call(lambda m: m.verification(user_id))

    def sms_report(self, user_id: str) -> SmsMessage | None:
        """The gateway's report on the user's latest code (see ``Messenger.sms_report``)."""
        return self.call(lambda m: m.sms_report(user_id))

    def can_send(self, user_id: str) -> bool:
        """The decree's gate: true only while the user's identification stands."""
        return self.call(lambda m: m.can_send(user_id))

    def user(self, user_id: str) -> UserRecord | None:
        """The user's current record."""
        return self.call(lambda m: m.user(user_id))

    def history(self, user_id: str) -> list[HistoryEntry]:
        """Every state the user went through, oldest first."""
        return self.call(lambda m: m.history(user_id))

    def sync_events(self) -> int:
        """Pull and apply every pending event from each operator asked so far, once."""
        return self.call(lambda m: m.sync_events())

    def apply_event(self, event: Event | UnknownEvent) -> bool:
        """Apply one event once (deduplicated by id); returns whether it was new."""
        return self.call(lambda m: m.apply_event(event))

    def receive_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookReply:
        """Verify and apply one webhook (see ``Messenger.receive_webhook``)."""
        return self.call(lambda m: m.receive_webhook(body, headers))

    def recover(self) -> None:
        """One round of housekeeping now (see ``Messenger.recover``)."""
        self.call(lambda m: m.recover())

    def call(self, fn: Callable[[Messenger], Awaitable[T]]) -> T:
        """Run ``fn(messenger)`` on the loop and wait for its result, for anything else
        the async ``Messenger`` offers: ``call(lambda m: m.store.codes(user_id))``."""
        messenger = self._messenger
        if messenger is None:
            raise RuntimeError("the SyncMessenger is not started: use `with SyncMessenger(...)`")

        async def run() -> T:
            return await fn(messenger)

        return self._run(run())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the SyncMessenger is not started: use `with SyncMessenger(...)`")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a SyncMessenger cannot be called from its own loop's thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

"""The stand-in provider on a thread of the test process, so a test can change its behaviour
(``status``, ``reply_words``...) between calls."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from tests.fakes.provider import FakeProvider

if TYPE_CHECKING:
    from collections.abc import Iterator


class ThreadedProvider:
    def __init__(self, **settings: object) -> None:
        self.fake = FakeProvider(**settings)  # type: ignore[arg-type]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(10)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def threaded_provider(**settings: object) -> Iterator[FakeProvider]:
    with ThreadedProvider(**settings) as fake:
        yield fake

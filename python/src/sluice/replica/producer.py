"""The outputs' producer: librdkafka's, with a thread that serves its
delivery callbacks as soon as the broker acknowledges."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sluice.protocol import Record

Delivered = Callable[[Record, "KafkaError | None"], None]
"""Called once per record, on the producer's thread: error None when the
broker acknowledged it."""

_POLL_S = 0.1
_FULL_RETRY_S = 0.005
_FULL_RETRIES = 400  # 2 s of a full local queue, then the produce fails


class Sender:
    """Produces records and calls back when each is acknowledged or failed.
    Thread-safe."""

    def __init__(self, settings: dict[str, Any], log: logging.Logger) -> None:
        self._p = Producer(settings, logger=log)
        self._log = log
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sluice-producer", daemon=True)
        self._thread.start()

    def send(self, rec: Record, delivered: Delivered) -> None:
        """Produces rec; delivered is called exactly once, also when the
        produce fails at once (a record too large, a full local queue)."""

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            delivered(rec, err)

        hs: list[tuple[str, str | bytes | None]] = list(rec.headers)
        for attempt in range(_FULL_RETRIES + 1):
            try:
                self._p.produce(
                    rec.topic,
                    value=rec.value,
                    key=rec.key,
                    headers=hs,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                if attempt == _FULL_RETRIES or threading.current_thread() is self._thread:
                    delivered(rec, KafkaError(KafkaError._QUEUE_FULL))
                    return
                time.sleep(_FULL_RETRY_S)
            except KafkaException as exc:
                delivered(
                    rec,
                    exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else KafkaError(KafkaError._FAIL),
                )
                return

    def _serve(self) -> None:
        while not self._closing.is_set():
            self._p.poll(_POLL_S)

    def close(self, timeout_s: float) -> int:
        """Waits for the records in flight, at most timeout_s; returns how
        many were left unacknowledged."""
        self._closing.set()
        self._thread.join()
        return int(self._p.flush(timeout_s))


def too_large(err: KafkaError) -> bool:
    """Whether the broker (or the client) refused the record for its size."""
    return bool(err.code() == KafkaError.MSG_SIZE_TOO_LARGE)

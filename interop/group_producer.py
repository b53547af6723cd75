"""A background producer that keeps a steady trickle of records flowing into
every partition of a topic, so that consumers are busy while their group
rebalances."""
from __future__ import annotations

import threading

from confluent_kafka import KafkaException, Producer

from .confluent_client import producer_config


class TrickleProducer:
    """Produces one record every `interval` seconds, cycling through the
    partitions, until stop(); a context manager."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, *, interval: float = 0.02):
        self.topic = topic
        self.partitions = partitions
        self.interval = interval
        self._producer = Producer(producer_config(bootstrap, idempotent=True, **{"linger.ms": 0}))
        self._stopping = threading.Event()
        self._ends: dict[int, int] = {p: 0 for p in range(partitions)}
        self._errors: list[str] = []
        self._sent = 0
        self._thread = threading.Thread(target=self._run, name=f"trickle-{topic}", daemon=True)

    def __enter__(self) -> TrickleProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self._stopping.set()
            self._thread.join()

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._errors.append(str(err))
        else:
            self._ends[msg.partition()] = max(self._ends[msg.partition()], msg.offset() + 1)

    def _run(self) -> None:
        # The stop event doubles as the pacing timer.
        while not self._stopping.wait(self.interval):
            partition = self._sent % self.partitions
            self._producer.produce(self.topic, value=b"%d" % self._sent, partition=partition,
                                   on_delivery=self._on_delivery)
            self._sent += 1
            self._producer.poll(0)
        self._producer.flush(60)

    def stop(self) -> dict[int, int]:
        """Stop, wait for every delivery report, and return each partition's
        log end offset (the topic must have been empty at the start)."""
        self.__exit__()
        unreported = len(self._producer)
        if self._errors or unreported:
            raise KafkaException(f"trickle: {len(self._errors)} deliveries failed, {unreported} "
                                 f"unreported: {self._errors[:3]}")
        assert sum(self._ends.values()) == self._sent, (
            f"trickle: {self._sent} sent, log end offsets {self._ends}")
        return dict(self._ends)

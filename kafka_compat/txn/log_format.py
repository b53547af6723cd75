"""The records of ``__transaction_state`` as Kafka 3.9 writes them (its
TransactionLog): key = version 0 + transactional id, value = version 0 +
producer id and epoch, timeout, state id, partitions (null when Empty), last
update and start times; a null value is the tombstone of an expired id. The
schemas are the specs in ``protocol_specs/coordinator``."""
from __future__ import annotations

from ..protocol.coordinator_records import UnknownFormat, decode, encode, version_of
from .metadata import EMPTY, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TransactionMetadata, TxnState, TxnTransit

KEY_VERSION = 0
VALUE_VERSION = 0  # transaction.version 0 (3.9 without KIP-890 part 2)


def key_bytes(transactional_id: str) -> bytes:
    return encode("TransactionLogKey", KEY_VERSION, {"transactional_id": transactional_id})


def value_bytes(t: TxnTransit) -> bytes:
    if t.state == EMPTY and t.partitions:
        raise ValueError(f"an Empty transaction has no partitions: {t}")
    partitions = None
    if t.state != EMPTY:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(t.partitions):
            by_topic.setdefault(topic, []).append(partition)
        partitions = [{"topic": topic, "partition_ids": ids} for topic, ids in by_topic.items()]
    return encode("TransactionLogValue", VALUE_VERSION, {
        "producer_id": t.producer_id,
        "producer_epoch": t.producer_epoch,
        "transaction_timeout_ms": t.timeout_ms,
        "transaction_status": int(t.state),
        "transaction_partitions": partitions,
        "transaction_last_update_timestamp_ms": t.update_ms,
        "transaction_start_timestamp_ms": t.start_ms,
    })


def read_key(data: bytes) -> str:
    """The transactional id of a key; UnknownFormat for other key versions
    (Kafka skips those with a warning)."""
    if version_of("TransactionLogKey", data) != KEY_VERSION:
        raise UnknownFormat("not a transaction log key of version 0")
    return decode("TransactionLogKey", data)[1].transactional_id


def read_value(transactional_id: str, data: bytes) -> TransactionMetadata:
    """The metadata a value records, as Kafka loads it (no pending state, the
    last epoch unknown)."""
    _, v = decode("TransactionLogValue", data)
    try:
        state = TxnState(v.transaction_status)
    except ValueError:
        raise UnknownFormat(f"unknown transaction state id {v.transaction_status}") from None
    metadata = TransactionMetadata(transactional_id, v.producer_id, NO_PRODUCER_ID, v.producer_epoch,
                                   NO_PRODUCER_EPOCH, v.transaction_timeout_ms, state, set(),
                                   v.transaction_start_timestamp_ms, v.transaction_last_update_timestamp_ms)
    if state != EMPTY:
        for topic in v.transaction_partitions or ():
            metadata.partitions.update((topic.topic, p) for p in topic.partition_ids)
    return metadata

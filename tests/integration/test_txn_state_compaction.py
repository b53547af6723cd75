"""__transaction_state is compacted (issue 13): thousands of transactions by
a few transactional ids (three records each: Ongoing, Prepare*, Complete*)
leave the partition's log a few small segments
(transaction.state.log.segment.bytes) plus one record per id, and a
restarted broker loads every id as its last transaction left it."""
from __future__ import annotations

import trio

from kafka_compat.broker import Broker
from kafka_compat.group.internal_topics import TRANSACTION_STATE_TOPIC
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import iter_batches

from .conftest import make_config, start_broker
from .test_requests import create_topic
from .test_transactions import (
    RETRIABLE,
    describe,
    end_txn,
    find_txn_coordinator,
    init,
    init_body,
    until_state,
)
from .wire import WireClient

IDS = [f"tx-compact-{i}" for i in range(5)]
TRANSACTIONS = 1000  # per id
SEGMENT_BYTES = 50_000


def log_bytes(directory) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.log"))


def keys_below(directory, offset: int) -> list[bytes]:
    """The keys of the partition's records below ``offset``, in offset order."""
    keys = []
    for path in sorted(directory.glob("*.log")):
        for batch in iter_batches(path.read_bytes()):
            keys += [r.key for r in batch.records() if r.offset < offset]
    return keys


async def run_transactions(port: int, transactional_id: str, pid: int, last: str) -> None:
    """TRANSACTIONS transactions on partition t-0, committed and aborted in
    turn; the last one left ``last`` ("commit", "abort" or "ongoing")."""
    client = await WireClient.connect(port)
    try:
        for n in range(TRANSACTIONS):
            with trio.fail_after(10):
                while True:  # CONCURRENT_TRANSACTIONS until the previous one completed
                    response = await client.request("AddPartitionsToTxn", 3, {
                        "v3_and_below_transactional_id": transactional_id, "v3_and_below_producer_id": pid,
                        "v3_and_below_producer_epoch": 0,
                        "v3_and_below_topics": [{"name": "t", "partitions": [0]}]})
                    code = response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
                    if code not in RETRIABLE:
                        break
                    await trio.sleep(0.001)
            assert code == ErrorCode.NONE, ErrorCode(code)
            if n == TRANSACTIONS - 1 and last == "ongoing":
                break
            commit = n % 2 == 0 if n < TRANSACTIONS - 1 else last == "commit"
            assert await end_txn(client, transactional_id, pid, 0, commit) == ErrorCode.NONE
    finally:
        await client.aclose()


async def test_transaction_state_is_compacted_and_loads_after_a_restart(tmp_path):
    config = make_config(tmp_path / "data", transaction_state_log_num_partitions=1,
                         transaction_state_log_segment_bytes=SEGMENT_BYTES, log_cleaner_backoff_ms=50)
    partition_dir = tmp_path / "data" / f"{TRANSACTION_STATE_TOPIC}-0"
    lasts = dict(zip(IDS, ["commit", "abort", "commit", "abort", "ongoing"]))
    async with trio.open_nursery() as nursery:
        broker = Broker(config)
        port = (await nursery.start(broker.run))[0][1]
        client = await WireClient.connect(port)
        await create_topic(client, "t")
        await find_txn_coordinator(client, IDS[0])
        pids = {i: (await init(client, i)).producer_id for i in IDS}
        async with trio.open_nursery() as writers:
            for transactional_id in IDS:
                writers.start_soon(run_transactions, port, transactional_id, pids[transactional_id],
                                   lasts[transactional_id])
        for transactional_id, last in lasts.items():  # the last Complete* records written
            if last != "ongoing":
                await until_state(client, transactional_id, "CompleteCommit" if last == "commit" else "CompleteAbort")
        state_log = broker.logs.get(TRANSACTION_STATE_TOPIC, 0)
        assert state_log.config.segment_bytes == SEGMENT_BYTES
        # Three records per transaction (Ongoing, Prepare*, Complete*), cleaned as they are written.
        assert state_log.log_end_offset >= 3 * (TRANSACTIONS - 1) * len(IDS)
        # Every segment below the active one gets cleaned down to one record per id.
        with trio.fail_after(60):
            while True:
                checkpoint = broker.logs.cleaner.checkpoints.get(tmp_path / "data", {}).get(
                    (TRANSACTION_STATE_TOPIC, 0), 0)
                if checkpoint >= state_log.segments[-1].base_offset:
                    break
                await trio.sleep(0.05)
        size = log_bytes(partition_dir)
        cleaned_keys = keys_below(partition_dir, checkpoint)
        await client.aclose()
        broker.shutdown()

    # What is left: the active segment and at most two not cleaned yet, plus one record per id.
    assert size < 3 * SEGMENT_BYTES + len(IDS) * 200, size
    assert sorted(cleaned_keys) == sorted(set(cleaned_keys)), "two records of one id below the checkpoint"

    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        states = {}
        for transactional_id in IDS:
            with trio.fail_after(10):
                while (state := await describe(client, transactional_id)).error_code in RETRIABLE:
                    await trio.sleep(0.01)
            states[transactional_id] = (state.error_code, state.transaction_state, state.producer_id,
                                        state.producer_epoch, [(t.topic, list(t.partitions)) for t in state.topics])
        want = {"commit": ("CompleteCommit", []), "abort": ("CompleteAbort", []), "ongoing": ("Ongoing", [("t", [0])])}
        assert states == {i: (0, want[lasts[i]][0], pids[i], 0, want[lasts[i]][1]) for i in IDS}
        listed = await client.request("ListTransactions", 1, {"state_filters": [], "producer_id_filters": [],
                                                              "duration_filter": -1})
        assert sorted((t.transactional_id, t.producer_id, t.transaction_state) for t in listed.transaction_states) \
            == sorted((i, pids[i], want[lasts[i]][0]) for i in IDS)
        # The loaded ids go on: InitProducerId bumps each one's epoch (the ongoing transaction is
        # aborted first, with a bump of its own, the new producer retrying meanwhile).
        for transactional_id in IDS:
            if lasts[transactional_id] == "ongoing":
                first = await client.request("InitProducerId", 4, init_body(transactional_id))
                assert first.error_code == ErrorCode.CONCURRENT_TRANSACTIONS
            again = await init(client, transactional_id)
            assert (again.error_code, again.producer_id, again.producer_epoch) == (
                0, pids[transactional_id], 2 if lasts[transactional_id] == "ongoing" else 1)
        await client.aclose()
        broker.shutdown()

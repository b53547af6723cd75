"""The transaction coordinator through raw requests: InitProducerId with
transactional ids, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions,
ListTransactions, and the state reloaded after a restart."""
from __future__ import annotations

import pytest
import trio

from kafka_compat.api.write_txn_markers import write_markers
from kafka_compat.log import replay
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import iter_batches
from kafka_compat.txn import log_format
from kafka_compat.txn.metadata import PREPARE_COMMIT

from .conftest import make_config, start_broker
from .test_requests import create_topic, records

RETRIABLE = (ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
             ErrorCode.NOT_COORDINATOR, ErrorCode.CONCURRENT_TRANSACTIONS)


async def until_answered(client, api, version, body, error_field="error_code", deadline_s=10):
    """The first answer that is not a retriable coordinator error."""
    with trio.fail_after(deadline_s):
        while True:
            response = await client.request(api, version, body)
            if response[error_field] not in RETRIABLE:
                return response
            await trio.sleep(0.01)


async def find_txn_coordinator(client, transactional_id):
    return await until_answered(client, "FindCoordinator", 3, {"key": transactional_id, "key_type": 1})


def init_body(transactional_id, timeout_ms=60000, producer_id=-1, producer_epoch=-1):
    return {"transactional_id": transactional_id, "transaction_timeout_ms": timeout_ms,
            "producer_id": producer_id, "producer_epoch": producer_epoch}


async def init(client, transactional_id, version=4, **kw):
    return await until_answered(client, "InitProducerId", version, init_body(transactional_id, **kw))


def add_body(transactional_id, pid, epoch, topics):
    return {"v3_and_below_transactional_id": transactional_id, "v3_and_below_producer_id": pid,
            "v3_and_below_producer_epoch": epoch,
            "v3_and_below_topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}


async def add_partitions(client, transactional_id, pid, epoch, topics, version=3):
    response = await client.request("AddPartitionsToTxn", version, add_body(transactional_id, pid, epoch, topics))
    return {(t.name, p.partition_index): ErrorCode(p.partition_error_code)
            for t in response.results_by_topic_v3_and_below for p in t.results_by_partition}


async def describe(client, transactional_id):
    response = await client.request("DescribeTransactions", 0, {"transactional_ids": [transactional_id]})
    return response.transaction_states[0]


async def test_init_producer_id_bumps_the_epoch_of_a_transactional_id(broker):
    client = await broker.client()
    await find_txn_coordinator(client, "tx-a")
    first = await init(client, "tx-a")
    assert (first.error_code, first.producer_epoch) == (ErrorCode.NONE, 0)
    second = await init(client, "tx-a")
    assert (second.error_code, second.producer_id, second.producer_epoch) == (0, first.producer_id, 1)
    # KIP-360: the current epoch bumps, the previous one (a retry) gets the same answer, others are fenced.
    third = await init(client, "tx-a", producer_id=first.producer_id, producer_epoch=1)
    assert (third.error_code, third.producer_epoch) == (0, 2)
    retry = await init(client, "tx-a", producer_id=first.producer_id, producer_epoch=1)
    assert (retry.error_code, retry.producer_epoch) == (0, 2)
    zombie = await init(client, "tx-a", producer_id=first.producer_id, producer_epoch=0)
    assert (zombie.error_code, zombie.producer_id, zombie.producer_epoch) == (ErrorCode.PRODUCER_FENCED, -1, -1)
    old = await init(client, "tx-a", version=3, producer_id=first.producer_id, producer_epoch=0)
    assert old.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    # Only one of producer id and epoch: refused before the coordinator looks.
    half = await client.request("InitProducerId", 4, init_body("tx-a", producer_id=first.producer_id))
    assert half.error_code == ErrorCode.INVALID_REQUEST


async def test_init_producer_id_checks(tmp_path, nursery):
    broker, client = await start_broker(make_config(tmp_path / "data", transaction_max_timeout_ms=5000), nursery)
    await find_txn_coordinator(client, "tx-b")
    too_long = await client.request("InitProducerId", 4, init_body("tx-b", timeout_ms=5001))
    assert too_long.error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    zero = await client.request("InitProducerId", 4, init_body("tx-b", timeout_ms=0))
    assert zero.error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    empty = await client.request("InitProducerId", 4, init_body(""))
    assert (empty.error_code, empty.producer_id) == (ErrorCode.INVALID_REQUEST, -1)
    ok = await init(client, "tx-b", timeout_ms=5000)
    assert ok.error_code == ErrorCode.NONE
    broker.shutdown()


async def test_add_partitions_checks_and_describe(broker):
    client = await broker.client()
    await create_topic(client, "t", 2)
    await create_topic(client, "u")
    await find_txn_coordinator(client, "tx-c")
    got = await init(client, "tx-c")
    pid = got.producer_id
    assert await add_partitions(client, "tx-unknown", pid, 0, {"t": [0]}) == {
        ("t", 0): ErrorCode.INVALID_PRODUCER_ID_MAPPING}
    assert await add_partitions(client, "tx-c", pid + 1, 0, {"t": [0]}) == {
        ("t", 0): ErrorCode.INVALID_PRODUCER_ID_MAPPING}
    assert await add_partitions(client, "tx-c", pid, 1, {"t": [0]}) == {("t", 0): ErrorCode.PRODUCER_FENCED}
    assert await add_partitions(client, "tx-c", pid, 1, {"t": [0]}, version=1) == {
        ("t", 0): ErrorCode.INVALID_PRODUCER_EPOCH}
    assert await add_partitions(client, "tx-c", pid, 0, {"t": [0], "nope": [0]}) == {
        ("t", 0): ErrorCode.OPERATION_NOT_ATTEMPTED, ("nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    end = await client.request("EndTxn", 3, {"transactional_id": "tx-c", "producer_id": pid, "producer_epoch": 0,
                                             "committed": True})
    assert end.error_code == ErrorCode.INVALID_TXN_STATE
    empty = await describe(client, "tx-c")
    assert (empty.error_code, empty.transaction_state, empty.producer_id, empty.topics) == (0, "Empty", pid, [])
    assert await add_partitions(client, "tx-c", pid, 0, {"t": [0, 1]}) == {
        ("t", 0): ErrorCode.NONE, ("t", 1): ErrorCode.NONE}
    offsets = await client.request("AddOffsetsToTxn", 3, {"transactional_id": "tx-c", "producer_id": pid,
                                                          "producer_epoch": 0, "group_id": "g"})
    assert offsets.error_code == ErrorCode.NONE
    ongoing = await describe(client, "tx-c")
    assert (ongoing.error_code, ongoing.transaction_state, ongoing.producer_epoch,
            ongoing.transaction_timeout_ms) == (0, "Ongoing", 0, 60000)
    assert ongoing.transaction_start_time_ms > 0
    topics = {t.topic: sorted(t.partitions) for t in ongoing.topics}
    assert topics["t"] == [0, 1] and list(topics) == ["__consumer_offsets", "t"]
    unknown = await describe(client, "tx-none")
    assert (unknown.error_code, unknown.transaction_state, unknown.producer_id) == (
        ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, "", 0)
    # Verify-only (v4, as a partition leader asks): in the transaction or not.
    verify = await client.request("AddPartitionsToTxn", 4, {"transactions": [
        {"transactional_id": "tx-c", "producer_id": pid, "producer_epoch": 0, "verify_only": True,
         "topics": [{"name": "t", "partitions": [1]}, {"name": "u", "partitions": [0]}]}]})
    assert verify.error_code == 0
    result = {(t.name, p.partition_index): p.partition_error_code
              for t in verify.results_by_transaction[0].topic_results for p in t.results_by_partition}
    assert result == {("t", 1): ErrorCode.NONE, ("u", 0): ErrorCode.TRANSACTION_ABORTABLE}


async def test_list_transactions_filters(broker):
    client = await broker.client()
    await create_topic(client, "t")
    await find_txn_coordinator(client, "tx-d")
    d = await init(client, "tx-d")
    e = await init(client, "tx-e")
    assert await add_partitions(client, "tx-d", d.producer_id, 0, {"t": [0]}) == {("t", 0): 0}

    async def listed(**filters):
        body = {"state_filters": [], "producer_id_filters": [], "duration_filter": -1}
        body.update(filters)
        response = await client.request("ListTransactions", 1, body)
        assert response.error_code == 0
        return sorted((t.transactional_id, t.producer_id, t.transaction_state)
                      for t in response.transaction_states), list(response.unknown_state_filters)

    both = [("tx-d", d.producer_id, "Ongoing"), ("tx-e", e.producer_id, "Empty")]
    assert await listed() == (both, [])
    assert await listed(state_filters=["Ongoing", "Bogus"]) == ([both[0]], ["Bogus"])
    assert await listed(producer_id_filters=[e.producer_id]) == ([both[1]], [])
    # Running longer than an hour: not tx-d; an Empty id has no start time (-1)
    # and so passes, as in Kafka 3.9's filter.
    assert await listed(duration_filter=3_600_000) == ([both[1]], [])


async def test_transactions_are_reloaded_after_a_restart(tmp_path):
    config = make_config(tmp_path / "data")
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        await create_topic(client, "t")
        await find_txn_coordinator(client, "tx-r")
        got = await init(client, "tx-r")
        assert await add_partitions(client, "tx-r", got.producer_id, 0, {"t": [0]}) == {("t", 0): 0}
        await client.aclose()
        broker.shutdown()
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        with trio.fail_after(10):
            while (state := await describe(client, "tx-r")).error_code in RETRIABLE:
                await trio.sleep(0.01)
        assert (state.error_code, state.transaction_state, state.producer_id, state.producer_epoch) == (
            0, "Ongoing", got.producer_id, 0)
        assert [(t.topic, list(t.partitions)) for t in state.topics] == [("t", [0])]
        # The reloaded id goes on: a new producer's InitProducerId fences the old one.
        fenced = await client.request("InitProducerId", 4, init_body("tx-r"))
        assert fenced.error_code == ErrorCode.CONCURRENT_TRANSACTIONS
        again = await init(client, "tx-r")
        assert (again.producer_id, again.producer_epoch) == (got.producer_id, 2)
        await client.aclose()
        broker.shutdown()


async def test_idle_transactional_ids_expire(tmp_path, nursery):
    config = make_config(tmp_path / "data", transactional_id_expiration_ms=200,
                         transaction_remove_expired_transaction_cleanup_interval_ms=50)
    broker, client = await start_broker(config, nursery)
    await create_topic(client, "t")
    await find_txn_coordinator(client, "tx-idle")
    idle = await init(client, "tx-idle")
    busy = await init(client, "tx-busy")
    assert await add_partitions(client, "tx-busy", busy.producer_id, 0, {"t": [0]}) == {("t", 0): 0}
    with trio.fail_after(10):
        while (await describe(client, "tx-idle")).error_code == ErrorCode.NONE:
            await trio.sleep(0.02)
    assert (await describe(client, "tx-idle")).error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    # An ongoing transaction never expires (it times out and is aborted instead).
    assert (await describe(client, "tx-busy")).transaction_state == "Ongoing"
    # The tombstone is in the log: a new InitProducerId starts afresh with a new producer id.
    again = await init(client, "tx-idle")
    assert again.error_code == 0 and again.producer_id != idle.producer_id and again.producer_epoch == 0
    broker.shutdown()


async def produce_txn(client, transactional_id, topic, pid, epoch, sequence, n=3, partition=0, version=9):
    batch = records(n, producer_id=pid, producer_epoch=epoch, base_sequence=sequence, transactional=True)
    response = await client.request("Produce", version, {
        "transactional_id": transactional_id, "acks": -1, "timeout_ms": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    return response.responses[0].partition_responses[0]


async def end_txn(client, transactional_id, pid, epoch, commit, version=3):
    return (await client.request("EndTxn", version, {"transactional_id": transactional_id, "producer_id": pid,
                                                     "producer_epoch": epoch, "committed": commit})).error_code


async def until_state(client, transactional_id, state, deadline_s=10):
    with trio.fail_after(deadline_s):
        while (described := await describe(client, transactional_id)).transaction_state != state:
            await trio.sleep(0.005)
    return described


def control_batches(data):
    return [(b.base_offset, b.producer_id, b.producer_epoch, next(iter(b.records())).key)
            for b in iter_batches(bytes(data)) if b.is_control]


async def test_commit_and_abort_write_markers_and_complete(broker):
    client = await broker.client()
    await create_topic(client, "t", 2)
    await find_txn_coordinator(client, "tx-m")
    got = await init(client, "tx-m")
    pid = got.producer_id
    assert await add_partitions(client, "tx-m", pid, 0, {"t": [0, 1]}) == {("t", 0): 0, ("t", 1): 0}
    assert (await produce_txn(client, "tx-m", "t", pid, 0, 0)).error_code == 0
    assert await end_txn(client, "tx-m", pid, 0, commit=True) == ErrorCode.NONE
    done = await until_state(client, "tx-m", "CompleteCommit")
    assert (done.producer_epoch, done.topics) == (0, [])
    # Both partitions got a COMMIT marker (key: version 0, type 1), even the one written nothing.
    for partition, offset in ((0, 3), (1, 0)):
        partition_log = broker.broker.logs.get("t", partition)
        data = partition_log.read(offset, 1 << 20, True).read_bytes()
        assert control_batches(data) == [(offset, pid, 0, b"\x00\x00\x00\x01")]
    # A retried commit is answered NONE; an abort of a committed transaction is refused.
    assert await end_txn(client, "tx-m", pid, 0, commit=True) == ErrorCode.NONE
    assert await end_txn(client, "tx-m", pid, 0, commit=False) == ErrorCode.INVALID_TXN_STATE
    # The next transaction, aborted.
    assert await add_partitions(client, "tx-m", pid, 0, {"t": [0]}) == {("t", 0): 0}
    assert (await produce_txn(client, "tx-m", "t", pid, 0, 3)).error_code == 0
    assert await end_txn(client, "tx-m", pid, 0, commit=False) == ErrorCode.NONE
    await until_state(client, "tx-m", "CompleteAbort")
    # A zombie's EndTxn (an older epoch) is fenced; v1 gets INVALID_PRODUCER_EPOCH.
    bumped = await init(client, "tx-m")
    assert bumped.producer_epoch == 1
    assert await end_txn(client, "tx-m", pid, 0, commit=True) == ErrorCode.PRODUCER_FENCED
    assert await end_txn(client, "tx-m", pid, 0, commit=True, version=1) == ErrorCode.INVALID_PRODUCER_EPOCH


async def test_a_new_producer_fences_an_ongoing_transaction(broker):
    client = await broker.client()
    await create_topic(client, "t")
    await find_txn_coordinator(client, "tx-f")
    old = await init(client, "tx-f")
    pid = old.producer_id
    assert await add_partitions(client, "tx-f", pid, 0, {"t": [0]}) == {("t", 0): 0}
    assert (await produce_txn(client, "tx-f", "t", pid, 0, 0)).error_code == 0
    # The ongoing transaction is aborted with a bumped epoch; the new producer retries.
    first = await client.request("InitProducerId", 4, init_body("tx-f"))
    assert first.error_code == ErrorCode.CONCURRENT_TRANSACTIONS
    new = await init(client, "tx-f")
    assert (new.error_code, new.producer_id, new.producer_epoch) == (0, pid, 2)
    # The abort marker carries the fencing epoch (1); the zombie can't go on.
    assert await end_txn(client, "tx-f", pid, 0, commit=True) == ErrorCode.PRODUCER_FENCED
    zombie = await produce_txn(client, "tx-f", "t", pid, 0, 3)
    assert zombie.error_code == ErrorCode.INVALID_PRODUCER_EPOCH


async def test_a_transaction_past_its_timeout_is_aborted(tmp_path, nursery):
    config = make_config(tmp_path / "data", transaction_abort_timed_out_transaction_cleanup_interval_ms=50)
    broker, client = await start_broker(config, nursery)
    await create_topic(client, "t")
    await find_txn_coordinator(client, "tx-t")
    got = await init(client, "tx-t", timeout_ms=200)
    pid = got.producer_id
    assert await add_partitions(client, "tx-t", pid, 0, {"t": [0]}) == {("t", 0): 0}
    assert (await produce_txn(client, "tx-t", "t", pid, 0, 0)).error_code == 0
    aborted = await until_state(client, "tx-t", "CompleteAbort")
    assert aborted.producer_epoch == 1  # bumped: the producer is fenced
    assert await end_txn(client, "tx-t", pid, 0, commit=True) == ErrorCode.PRODUCER_FENCED
    broker.shutdown()


@pytest.mark.parametrize("markers_written", [0, 1])
async def test_a_logged_prepare_commit_is_completed_after_a_restart(tmp_path, markers_written):
    """A coordinator that died after logging PrepareCommit, before any marker
    or with one of two written: the next one to load the partition writes the
    markers (again where one is) and CompleteCommit."""
    config = make_config(tmp_path / "data")
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        await create_topic(client, "t", 2)
        await find_txn_coordinator(client, "tx-p")
        got = await init(client, "tx-p")
        pid = got.producer_id
        assert await add_partitions(client, "tx-p", pid, 0, {"t": [0, 1]}) == {("t", 0): 0, ("t", 1): 0}
        assert (await produce_txn(client, "tx-p", "t", pid, 0, 0)).error_code == 0
        # What the dead coordinator wrote last, and nothing after it.
        manager = broker.transactions.manager
        coordinator_epoch, metadata = manager.get("tx-p")
        prepared = metadata.prepare_abort_or_commit(PREPARE_COMMIT, manager.clock_ms())
        assert await manager.storage.write(manager.partition_for("tx-p"), [
            (log_format.key_bytes("tx-p"), log_format.value_bytes(prepared))], 5000, 0) == ErrorCode.NONE
        if markers_written:
            written = await write_markers(broker, [{
                "producer_id": pid, "producer_epoch": 0, "transaction_result": True,
                "coordinator_epoch": coordinator_epoch, "topics": [{"name": "t", "partition_indexes": [0]}]}])
            assert written[0]["topics"][0]["partitions"][0]["error_code"] == ErrorCode.NONE
        await client.aclose()
        broker.shutdown()
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        done = await until_state(client, "tx-p", "CompleteCommit")
        assert (done.producer_id, done.producer_epoch) == (pid, 0)
        commit = (pid, 0, b"\x00\x00\x00\x01")
        data = broker.logs.get("t", 0).read(3, 1 << 20, True).read_bytes()
        assert control_batches(data) == [(3 + i, *commit) for i in range(1 + markers_written)]
        data = broker.logs.get("t", 1).read(0, 1 << 20, True).read_bytes()
        assert control_batches(data) == [(0, *commit)]
        # Nothing is left open: the records are stable.
        assert broker.logs.get("t", 0).last_stable_offset == broker.logs.get("t", 0).log_end_offset
        await client.aclose()
        broker.shutdown()


async def test_a_produce_to_a_partition_not_in_the_transaction_is_refused(broker):
    """KIP-890 part 1: the leader verifies the first transactional batch of a
    transaction with the coordinator; a partition never added is refused
    (INVALID_TXN_STATE up to Produce v10, TRANSACTION_ABORTABLE from v11)."""
    client = await broker.client()
    await create_topic(client, "t", 2)
    await find_txn_coordinator(client, "tx-v")
    got = await init(client, "tx-v")
    pid = got.producer_id
    assert await add_partitions(client, "tx-v", pid, 0, {"t": [0]}) == {("t", 0): 0}
    assert (await produce_txn(client, "tx-v", "t", pid, 0, 0)).error_code == 0
    late = await produce_txn(client, "tx-v", "t", pid, 0, 0, partition=1)
    assert (late.error_code, late.error_message) == (ErrorCode.INVALID_TXN_STATE,
                                                      "Partition was not added to the transaction")
    late = await produce_txn(client, "tx-v", "t", pid, 0, 0, partition=1, version=11)
    assert late.error_code == ErrorCode.TRANSACTION_ABORTABLE
    assert broker.broker.logs.get("t", 1).log_end_offset == 0
    # A zombie epoch is told INVALID_PRODUCER_EPOCH by the verification.
    stale = await produce_txn(client, "tx-v", "t", pid, 5, 0, partition=1)
    assert stale.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    # After the commit, a late batch of the finished transaction can't start a hanging one.
    assert await end_txn(client, "tx-v", pid, 0, commit=True) == ErrorCode.NONE
    await until_state(client, "tx-v", "CompleteCommit")
    hanging = await produce_txn(client, "tx-v", "t", pid, 0, 3)
    assert hanging.error_code == ErrorCode.INVALID_TXN_STATE
    assert broker.broker.logs.get("t", 0).producer_state.first_unstable_offset is None


async def test_verification_can_be_turned_off(tmp_path, nursery):
    config = make_config(tmp_path / "data", transaction_partition_verification_enable="false")
    broker, client = await start_broker(config, nursery)
    await create_topic(client, "t")
    await find_txn_coordinator(client, "tx-o")
    got = await init(client, "tx-o")
    assert (await produce_txn(client, "tx-o", "t", got.producer_id, 0, 0)).error_code == ErrorCode.NONE
    broker.shutdown()


async def test_a_deleted_partition_gets_no_marker(broker):
    """A partition deleted while its transaction is open is dropped from the
    markers (Kafka skips partitions without a leader endpoint); the rest complete."""
    client = await broker.client()
    await create_topic(client, "keep")
    await create_topic(client, "gone")
    await find_txn_coordinator(client, "tx-g")
    got = await init(client, "tx-g")
    pid = got.producer_id
    assert await add_partitions(client, "tx-g", pid, 0, {"keep": [0], "gone": [0]}) == {
        ("keep", 0): 0, ("gone", 0): 0}
    deleted = await client.request("DeleteTopics", 4, {"topic_names": ["gone"], "timeout_ms": 5000})
    assert deleted.responses[0].error_code == 0
    assert await end_txn(client, "tx-g", pid, 0, commit=True) == ErrorCode.NONE
    await until_state(client, "tx-g", "CompleteCommit")
    data = broker.broker.logs.get("keep", 0).read(0, 1 << 20, True).read_bytes()
    assert control_batches(data) == [(0, pid, 0, b"\x00\x00\x00\x01")]


async def test_tombstones_of_many_expired_ids_fit_the_batch_limit(tmp_path, nursery):
    """Tombstones go in as many batches as max.message.bytes needs (one batch
    over it would be refused, and the ids would never expire)."""
    config = make_config(tmp_path / "data", transactional_id_expiration_ms=100, message_max_bytes=400,
                         transaction_state_log_num_partitions=1,
                         transaction_remove_expired_transaction_cleanup_interval_ms=50)
    broker, client = await start_broker(config, nursery)
    ids = [f"tx-expiring-{i:02d}-" + "x" * 40 for i in range(12)]
    await find_txn_coordinator(client, ids[0])
    for transactional_id in ids:
        assert (await init(client, transactional_id)).error_code == 0
    with trio.fail_after(10):
        for transactional_id in ids:
            while (await describe(client, transactional_id)).error_code == ErrorCode.NONE:
                await trio.sleep(0.02)
    partition_log = broker.logs.get("__transaction_state", 0)
    data = partition_log.read(0, 1 << 20, True).read_bytes()
    tombstone_batches = [b for b in iter_batches(data) if all(r.value is None for r in b.records())]
    assert len(tombstone_batches) > 1
    assert sum(b.record_count for b in tombstone_batches) == len(ids)
    broker.shutdown()


async def test_requests_while_a_partition_loads_or_after_it_moved(broker):
    """What a coordinator answers while it loads a partition (COORDINATOR_LOAD_IN_PROGRESS)
    and once another broker leads it (NOT_COORDINATOR), then after leading it again."""
    client = await broker.client()
    await find_txn_coordinator(client, "tx-l")
    got = await init(client, "tx-l")
    coordinator = broker.broker.transactions
    manager = coordinator.manager
    partition = manager.partition_for("tx-l")
    epoch = manager.cache[partition].coordinator_epoch
    # Leadership moves away (on_resignation, as after LeaderAndIsr or StopReplica).
    coordinator.on_resignation(partition)
    answer = await client.request("InitProducerId", 4, init_body("tx-l"))
    assert answer.error_code == ErrorCode.NOT_COORDINATOR
    assert (await describe(client, "tx-l")).error_code == ErrorCode.NOT_COORDINATOR
    # Leading it again at a newer epoch: loading until the records are read back.
    assert manager.begin_loading(partition, epoch + 1)
    assert (await describe(client, "tx-l")).error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    listed = await client.request("ListTransactions", 1, {"state_filters": [], "producer_id_filters": [],
                                                          "duration_filter": -1})
    assert listed.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert await manager.load_partition(partition, epoch + 1) == []
    state = await describe(client, "tx-l")
    assert (state.error_code, state.producer_id, state.producer_epoch) == (0, got.producer_id, 0)
    assert manager.cache[partition].coordinator_epoch == epoch + 1


@pytest.mark.parametrize("in_threads", [False, True], ids=["inline", "threads"])
async def test_a_partition_is_loaded_back_chunk_by_chunk(tmp_path, monkeypatch, in_threads):
    """transaction.state.log.load.buffer.size far below the partition's size:
    every id comes back as its last record left it (chunks applied at once or,
    as a large partition's are, in worker threads)."""
    if in_threads:
        monkeypatch.setattr(replay, "INLINE_BYTES", 0)
    config = make_config(tmp_path / "data", transaction_state_log_load_buffer_size=300,
                         transaction_state_log_num_partitions=1)
    ids = [f"tx-chunk-{i}" for i in range(30)]
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        await create_topic(client, "t")
        await find_txn_coordinator(client, ids[0])
        pids = {}
        for transactional_id in ids:
            pids[transactional_id] = (await init(client, transactional_id)).producer_id
        for transactional_id in ids[::3]:  # a third Ongoing, the rest Empty at epoch 1
            assert await add_partitions(client, transactional_id, pids[transactional_id], 0, {"t": [0]}) == {
                ("t", 0): 0}
        for transactional_id in ids[1::3] + ids[2::3]:
            assert (await init(client, transactional_id)).producer_epoch == 1
        await client.aclose()
        broker.shutdown()
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        for i, transactional_id in enumerate(ids):
            with trio.fail_after(10):
                while (state := await describe(client, transactional_id)).error_code in RETRIABLE:
                    await trio.sleep(0.01)
            expected = ("Ongoing", 0) if i % 3 == 0 else ("Empty", 1)
            assert (state.transaction_state, state.producer_epoch, state.producer_id) == (
                *expected, pids[transactional_id])
        await client.aclose()
        broker.shutdown()


async def test_an_exhausted_epoch_gets_a_new_producer_id(broker):
    """Once the epoch reaches 32766 (no client may use more, so that a zombie
    can always be fenced) InitProducerId moves the id to a new producer id at
    epoch 0; a KIP-360 retry with the old id and its last epoch is answered
    the same."""
    client = await broker.client()
    await find_txn_coordinator(client, "tx-x")
    got = await init(client, "tx-x")
    _, metadata = broker.broker.transactions.manager.get("tx-x")
    metadata.producer_epoch = 32766  # as after that many bumps
    rotated = await init(client, "tx-x", producer_id=got.producer_id, producer_epoch=32766)
    assert rotated.error_code == 0 and rotated.producer_id != got.producer_id and rotated.producer_epoch == 0
    assert (metadata.last_producer_id, metadata.last_producer_epoch) == (got.producer_id, 32766)
    state = await describe(client, "tx-x")
    assert (state.producer_id, state.producer_epoch) == (rotated.producer_id, 0)
    retry = await init(client, "tx-x", producer_id=got.producer_id, producer_epoch=32766)
    assert (retry.error_code, retry.producer_id, retry.producer_epoch) == (0, rotated.producer_id, 0)


async def test_markers_wait_for_a_partition_without_leader(tmp_path):
    """A partition without a leader holds its marker back (retried, the
    transaction stays PrepareCommit and answers CONCURRENT_TRANSACTIONS) while
    the others get theirs; the next coordinator to load it finishes it."""
    config = make_config(tmp_path / "data")
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        await create_topic(client, "t", 2)
        await find_txn_coordinator(client, "tx-w")
        got = await init(client, "tx-w")
        pid = got.producer_id
        assert await add_partitions(client, "tx-w", pid, 0, {"t": [0, 1]}) == {("t", 0): 0, ("t", 1): 0}
        for partition in (0, 1):
            assert (await produce_txn(client, "tx-w", "t", pid, 0, 0, partition=partition)).error_code == 0
        broker.metadata.mark_offline([("t", 1)])  # as its log dir failing would
        assert await end_txn(client, "tx-w", pid, 0, commit=True) == ErrorCode.NONE
        with trio.fail_after(10):
            while broker.logs.get("t", 0).log_end_offset < 4:
                await trio.sleep(0.005)
        state = await describe(client, "tx-w")
        assert (state.transaction_state, [(t.topic, list(t.partitions)) for t in state.topics]) == (
            "PrepareCommit", [("t", [1])])
        assert await add_partitions(client, "tx-w", pid, 0, {"t": [0]}) == {
            ("t", 0): ErrorCode.CONCURRENT_TRANSACTIONS}
        await client.aclose()
        broker.shutdown()
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        await until_state(client, "tx-w", "CompleteCommit")
        data = broker.logs.get("t", 1).read(3, 1 << 20, True).read_bytes()
        assert control_batches(data) == [(3, pid, 0, b"\x00\x00\x00\x01")]
        await client.aclose()
        broker.shutdown()


async def test_a_state_write_waiting_for_replication_ends_at_shutdown(tmp_path):
    """A broker shutting down while a __transaction_state write waits for its
    followers (the partition's high watermark held, as a leader's whose
    followers have not fetched) stops in time: once its append waiters are
    woken for good the write gives up at once instead of spinning, with no
    checkpoint, until the transaction's 60 s timeout."""
    config = make_config(tmp_path / "data", transaction_state_log_num_partitions=1)
    answers = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            broker, client = await start_broker(config, nursery)
            await find_txn_coordinator(client, "tx-held")
            assert (await init(client, "tx-held")).error_code == ErrorCode.NONE
            state_log = broker.logs.get("__transaction_state", 0)
            state_log.high_watermark_follows_leo = False

            async def init_in_background():
                answers.append(await client.request("InitProducerId", 4, init_body("tx-held")))

            nursery.start_soon(init_in_background)
            end = state_log.log_end_offset
            while state_log.log_end_offset == end:  # the epoch bump is appended, not yet replicated
                await trio.sleep(0.01)
            assert answers == []
            broker.shutdown()
    assert len(answers) <= 1  # answered before the connection closed, or not at all

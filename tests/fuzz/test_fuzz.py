"""The protocol fuzzer, a few seconds' worth: every API version the broker
serves, a valid request of it and mutations of that request, against a broker
subprocess. Each frame must get a well-formed response (Kafka's error) or
close its own connection only; the broker must not crash, log a traceback or
grow without bound, and a steady client's traffic must be unaffected.
scripts/fuzz runs the same thing for a million frames."""
from __future__ import annotations

import struct

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, Phase, given, settings

from interop.broker_process import BrokerProcess, venv_executable
from kafka_compat.api.produce_checks import MAX_LISTED_RECORD_ERRORS
from kafka_compat.protocol.compression import Codec
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch

from .bombs import bomb
from .driver import BROKER_OVERRIDES, FUZZ_TOPICS, Fuzzer, SteadyClient, Tally, log_summary, rss_kib
from .frames import frame_groups, served


@pytest.fixture(scope="module")
def fuzz_broker(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz-broker")
    process = BrokerProcess(venv_executable("kafka-compat"), data_dir=directory / "data",
                            log_path=directory / "broker.log", overrides=BROKER_OVERRIDES)
    process.start()
    steady = SteadyClient(process.port)
    steady.create_topics({**FUZZ_TOPICS, steady.topic: {}})
    try:
        yield process, steady
    finally:
        steady.close()
        process.stop()


def test_fuzz_every_served_api_version(fuzz_broker):
    process, steady = fuzz_broker
    fuzzer = Fuzzer(process.port, timeout=20)
    tally = Tally()
    rss_start, _ = rss_kib(process.pid)

    def run(api):
        @settings(max_examples=2, derandomize=True, database=None, deadline=None,
                  phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
        @given(frame_groups(apis=[api], mutants=6))
        def fuzz(group):
            result = fuzzer.run(group)
            tally.merge(result)
            assert process.running(), "the broker crashed"
            assert not result.findings, result.findings
        fuzz()

    for i, api in enumerate(served()):
        run(api)
        if i % 20 == 0:
            steady.produce()

    steady.produce()
    steady.verify()
    assert process.running()
    reasons, tracebacks = log_summary(process.log_path.read_text(errors="replace"))
    assert not tracebacks, tracebacks[:3]
    assert {name for name, _ in tally.per_api} == {name for _, name, _ in served()}
    assert len(tally.per_api) == len(served())
    assert tally.outcomes["response"] and tally.outcomes["closed"] and sum(reasons.values())
    rss_end, _ = rss_kib(process.pid)
    assert rss_end < rss_start + 100 * 1024, (rss_start, rss_end)


@pytest.mark.parametrize("topic", ["fuzz-compact", "fuzz-gzip", "fuzz-ts"])
def test_decompression_bomb_in_produce_is_refused_and_costs_no_memory(fuzz_broker, topic):
    """A 2 KiB zstd body inflating to 64 MiB, to a topic where the broker must
    decompress it (to check keys, recompress it to gzip, check timestamps):
    MESSAGE_TOO_LARGE, and the broker's RSS does not take the 64 MiB."""
    process, steady = fuzz_broker
    batch = bytearray(build_batch([(b"k", b"v", [], 1_700_000_000_000)], codec=Codec.ZSTD))
    batch = batch[:61] + bomb(Codec.ZSTD, 64)
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    _, peak_before = rss_kib(process.pid)
    client = SteadyClient(process.port, topic)
    try:
        resp = client.request("Produce", 9, {"acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": topic, "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
    finally:
        client.close()
    assert resp.responses[0].partition_responses[0].error_code == ErrorCode.MESSAGE_TOO_LARGE
    _, peak_after = rss_kib(process.pid)
    assert peak_after < peak_before + 40 * 1024, (peak_before, peak_after)


@pytest.mark.parametrize("count", [(1 << 31) - 1, 10000])
def test_create_topics_with_a_huge_partition_count_is_refused_not_planned(fuzz_broker, count):
    """A fuzzed int32 can ask for 2**31 partitions: planning them exhausted the
    broker's memory. Kafka's controller refuses requests of more than 10000 records."""
    process, steady = fuzz_broker
    resp = steady.request("CreateTopics", 7, {"timeout_ms": 5000, "topics": [
        {"name": f"huge-{count}", "num_partitions": count, "replication_factor": 1, "configs": []}]})
    assert resp.topics[0].error_code == 44  # POLICY_VIOLATION
    assert resp.topics[0].error_message == "Unable to perform excessively large batch operation."


def test_a_million_invalid_records_cost_bounded_memory_and_no_stall(fuzz_broker):
    """A 0.7 MB zstd batch of a million keyless records to a compacted topic:
    refused with INVALID_RECORD, the response lists the first
    MAX_LISTED_RECORD_ERRORS of them (listing all took ~280 MB), and the
    records are checked in a worker thread, so another client is answered
    meanwhile."""
    process, steady = fuzz_broker
    count = 1_000_000
    batch = build_batch(((None, b"", [], 1_700_000_000_000) for _ in range(count)), codec=Codec.ZSTD)
    _, peak_before = rss_kib(process.pid)
    client = SteadyClient(process.port, "fuzz-compact")
    try:
        client.send("Produce", 9, {"acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": "fuzz-compact", "partition_data": [{"index": 0, "records": batch}]}]})
        answered_meanwhile = 0
        while not client.readable():
            steady.request("ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})
            answered_meanwhile += 1
        resp = client.receive("Produce", 9)
    finally:
        client.close()
    partition = resp.responses[0].partition_responses[0]
    assert partition.error_code == ErrorCode.INVALID_RECORD
    assert [e.batch_index for e in partition.record_errors] == list(range(MAX_LISTED_RECORD_ERRORS))
    assert f"due to {count} record errors in total" in partition.error_message
    assert answered_meanwhile > 5  # inline, the first one waited for the whole check
    _, peak_after = rss_kib(process.pid)
    assert peak_after < peak_before + 60 * 1024, (peak_before, peak_after)


def test_list_offsets_by_time_over_a_batch_that_does_not_decompress(fuzz_broker):
    """Found by the fuzzer: a snappy batch whose body does not decode is appended
    as is (its CRC is right and nothing needs its records), and ListOffsets by
    timestamp, which must decode it, failed with a traceback and closed the
    connection. It answers that partition with the decode error instead."""
    process, steady = fuzz_broker
    steady.create_topics({"corrupt-snappy": {}})
    batch = bytearray(build_batch([(b"k", b"v", [], 1_700_000_000_000)], codec=Codec.SNAPPY))
    batch[-3:] = b"\xff\xff\xff"  # the compressed bytes, not the framing
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    client = SteadyClient(process.port, "corrupt-snappy")
    try:
        resp = client.request("Produce", 9, {"acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": "corrupt-snappy", "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
        assert resp.responses[0].partition_responses[0].error_code == 0  # stored undecoded
        resp = client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": "corrupt-snappy", "partitions": [{"partition_index": 0, "timestamp": 0}]}]})
    finally:
        client.close()
    # Decoded, the bytes are no records (INVALID_RECORD), or not snappy at all (UNKNOWN_SERVER_ERROR).
    assert resp.topics[0].partitions[0].error_code in (ErrorCode.INVALID_RECORD, ErrorCode.UNKNOWN_SERVER_ERROR)

"""The log cleaner on real files (issue 13): the key map's bounds, cleaning
compacted logs written by PartitionLog (latest value per key, offsets kept,
tombstones and their delete horizon, several passes with a small dedupe
buffer, compressed batches, transactions, idempotent producers' last
batches), the cleanable range (lag configs, LSO, active segment), the
.cleaned/.swap protocol across crashes at every step, and the worker
process's CPU priority."""
import os
import random
import shutil

import pytest

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.log.cleaner_manager import (
    CLEANER_OFFSET_CHECKPOINT,
    CleanerConfig,
    LogCleaner,
)
from kafka_compat.log.offset_map import OffsetMapFullError, SkimpyOffsetMap
from kafka_compat.log.segment import CLEANED_SUFFIX, SWAP_SUFFIX
from kafka_compat.protocol.records import BatchView, Codec, build_batch, iter_batches

NOW = 1_700_000_000_000
DAY = 86_400_000
COMPACT = {"cleanup.policy": "compact", "segment.bytes": 2000, "index.interval.bytes": 300}


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


def open_log(path, clock, **config):
    return PartitionLog.open(path, "t", 0, LogConfig({**COMPACT, **config}), clock=clock)


def append(log, records, codec=Codec.NONE, **kw):
    """records: (key, value) pairs, timestamped by the log's clock."""
    data = bytearray(build_batch([(k, v, [], log._clock()) for k, v in records], codec=codec, **kw))
    return log.append(data, [BatchView(data, 0)], leader_epoch=0)


def all_batches(log):
    out = []
    for segment in log.segments:
        out += list(iter_batches(os.pread(segment.fd, segment.size, 0)))
    return out


def all_records(log):
    return [(r.offset, r.key, r.value) for b in all_batches(log) if not b.is_control for r in b.records()]


def latest(records):
    last = {}
    for offset, key, value in records:
        last[key] = (offset, key, value)
    return sorted(last.values())


def new_cleaner(log, clock, **config):
    manager = LogCleaner(CleanerConfig(**{"dedupe_buffer_size": 1024 * 1024, **config}), [log.dir.parent],
                         {("t", 0): log}, clock,
                         worker_processes=False)
    return manager, manager.new_runner()


async def clean(log, clock, **config):
    manager, cleaner = new_cleaner(log, clock, **config)
    cleaned = await manager.clean_filthiest(cleaner)
    return manager, cleaned


async def clean_until_done(log, clock, **config):
    """Cleaning passes until no log needs one (a small key map takes several)."""
    manager, cleaner = new_cleaner(log, clock, **config)
    passes = 0
    while await manager.clean_filthiest(cleaner):
        passes += 1
        assert passes < 100
    return manager, passes


# ---------------------------------------------------------------- the key map


def test_the_offset_map_keeps_the_last_offset_per_key_within_its_memory():
    m = SkimpyOffsetMap(24 * 100)
    assert m.slots == 100
    for i in range(270):
        m.put(b"k%d" % (i % 90), i)
    assert m.size == 90 and m.latest_offset == 269
    assert all(m.get(b"k%d" % k) == 180 + k for k in range(90))
    assert m.get(b"other") == -1
    for i in range(10):
        m.put(b"x%d" % i, 1000 + i)
    assert m.size == 100
    with pytest.raises(OffsetMapFullError):
        m.put(b"one more", 5)
    m.clear()
    assert m.size == 0 and m.latest_offset == -1 and m.get(b"k1") == -1


# ---------------------------------------------------------------- cleaning


async def test_a_compacted_log_keeps_the_latest_record_per_key_with_its_offset(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock)
    rng = random.Random(1)
    written = []
    for i in range(400):
        batch = [(b"key-%d" % rng.randrange(40), b"value-%d" % i) for _ in range(rng.randrange(1, 4))]
        result = append(log, batch)
        written += [(result.base_offset + j, k, v) for j, (k, v) in enumerate(batch)]
    before = all_batches(log)
    segments_before = len(log.segments)
    active_base = log.segments[-1].base_offset
    manager, cleaned = await clean(log, clock)
    assert cleaned
    records = all_records(log)
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    # Below the active segment only each key's latest record is left; the active segment is untouched.
    cleaned_part = [r for r in records if r[0] < active_base]
    assert cleaned_part == latest([r for r in written if r[0] < active_base])
    assert [r for r in records if r[0] >= active_base] == [r for r in written if r[0] >= active_base]
    # Every surviving record has the offset it was written at; batches keep their offsets.
    assert set(records) <= set(written)
    kept = {(b.base_offset, b.last_offset) for b in all_batches(log)}
    assert kept <= {(b.base_offset, b.last_offset) for b in before}
    assert log.log_end_offset == len(written)
    # Reads see the same through the log's read path; the checkpoint moved to the first uncleanable offset.
    assert manager.checkpoints[tmp_path][("t", 0)] == active_base
    assert len(log.segments) <= segments_before  # groups of segments whose sizes add up to segment.bytes merge
    for segment in log.segments:
        assert not segment.log_path.name.endswith((CLEANED_SUFFIX, SWAP_SUFFIX))
    names = os.listdir(tmp_path / "t-0")
    assert not [n for n in names if n.endswith((CLEANED_SUFFIX, SWAP_SUFFIX))]

    # A second cleaning finds nothing dirty enough; the log reopens after a crash to the same records.
    assert not await manager.clean_filthiest(manager.new_runner())
    await log.close()
    reopened = open_log(tmp_path / "t-0", clock)
    assert all_records(reopened) == records
    await reopened.close()


async def test_tombstones_stay_until_the_delete_horizon_then_go(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock, **{"delete.retention.ms": DAY})
    for i in range(30):
        append(log, [(b"k%d" % (i % 10), b"v%d" % i)])
    for k in range(5):
        append(log, [(b"k%d" % k, None)])
    for i in range(60):
        append(log, [(b"other", b"x" * 40)])
    await clean(log, clock)
    records = all_records(log)
    assert [(k, v) for _, k, v in records if k != b"other"] == \
        [(b"k%d" % k, b"v%d" % (20 + k)) for k in range(5, 10)] + [(b"k%d" % k, None) for k in range(5)]
    # The tombstones' batches now carry the delete horizon: the cleaning's time + delete.retention.ms.
    horizons = {b.base_timestamp for b in all_batches(log) if b.has_delete_horizon}
    assert horizons == {NOW + DAY}

    # Before the horizon another cleaning keeps them; after it they go.
    for i in range(60):
        append(log, [(b"other", b"y" * 40)])
    clock.now = NOW + DAY - 1
    await clean(log, clock, )
    assert sum(1 for _, _, v in all_records(log) if v is None) == 5
    for i in range(60):
        append(log, [(b"other", b"z" * 40)])
    clock.now = NOW + DAY + 1
    await clean(log, clock)
    assert [(k, v) for _, k, v in all_records(log) if k != b"other"] == \
        [(b"k%d" % k, b"v%d" % (20 + k)) for k in range(5, 10)]
    await log.close()


async def test_a_dedupe_buffer_smaller_than_the_keys_cleans_in_several_passes(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock, **{"segment.bytes": 4000, "min.cleanable.dirty.ratio": 0})
    written = []
    rng = random.Random(2)
    for i in range(3000):
        key = b"key-%d" % rng.randrange(500)
        written.append((append(log, [(key, b"%d" % i)]).base_offset, key, b"%d" % i))
    append(log, [(b"end", b"e")])
    active_base = log.segments[-1].base_offset
    # 24 bytes a slot: 4,800 bytes hold 200 keys, 180 of them at the load factor.
    manager, passes = await clean_until_done(log, clock, dedupe_buffer_size=24 * 200, io_buffer_size=8192)
    assert passes > 2
    cleaned_part = [r for r in all_records(log) if r[0] < active_base]
    assert cleaned_part == latest([r for r in written if r[0] < active_base])
    await log.close()


async def test_compressed_batches_are_rewritten_with_their_codec(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock, **{"segment.bytes": 3000})
    written = []
    for i in range(80):
        for codec in (Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD):
            batch = [(b"k%d" % ((i + j) % 7), b"v%d-%d" % (i, j)) for j in range(4)]
            result = append(log, batch, codec=codec)
            written += [(result.base_offset + j, k, v) for j, (k, v) in enumerate(batch)]
    active_base = log.segments[-1].base_offset
    await clean(log, clock)
    assert [r for r in all_records(log) if r[0] < active_base] == \
        latest([r for r in written if r[0] < active_base])
    for batch in all_batches(log):
        assert batch.crc_ok()
        assert batch.compression != Codec.NONE
    await log.close()


async def test_aborted_transactions_go_and_markers_stay_until_their_data_has_gone(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock, **{"delete.retention.ms": 1000})
    seq = {1: 0, 2: 0}

    def txn(pid, records):
        result = append(log, records, producer_id=pid, producer_epoch=0, base_sequence=seq[pid], transactional=True)
        seq[pid] += len(records)
        return result

    txn(1, [(b"a", b"committed-1")])
    txn(2, [(b"a", b"aborted-2"), (b"b", b"aborted-2")])
    log.append_marker(1, 0, True, 0, 0)
    log.append_marker(2, 0, False, 0, 0)
    for i in range(60):
        append(log, [(b"filler-%d" % (i % 3), b"x" * 40)])
    await clean(log, clock)
    values = [v for _, _, v in all_records(log)]
    assert b"committed-1" in values and b"aborted-2" not in values
    markers = [b for b in all_batches(log) if b.is_control and b.record_count]
    # The COMMIT marker still has its transaction's record after it: kept. The ABORT
    # marker's data is gone, so it is kept only until its delete horizon.
    assert {b.producer_id for b in markers} == {1, 2}
    # The cleaning saw the aborted data (and dropped it): the cleaned segment's .txnindex keeps the entry.
    assert [t.producer_id for t in log.segments[0].txn_index.entries] == [2]
    # While the producers are active their last batches stay (empty) and so do their markers.
    # Once they expire and a later record for key "a" removes the committed one, both markers
    # go after their delete horizon.
    log.producer_state.remove_expired(clock.now + DAY, 1000)
    append(log, [(b"a", b"latest")])
    for i in range(60):
        append(log, [(b"filler-%d" % (i % 3), b"y" * 40)])
    # Kafka's passes: the data goes (the markers still saw it), then the markers get their
    # delete horizon, then after it they go.
    for values in (b"z", b"w", b"v"):
        clock.now += 10_000
        for i in range(60):
            append(log, [(b"filler-%d" % (i % 3), values * 40)])
        await clean(log, clock)
    assert not [b for b in all_batches(log) if b.is_control and b.record_count]
    assert not any(s.txn_index.entries for s in log.segments)
    await log.close()


async def test_the_last_batch_of_an_active_producer_stays_as_an_empty_batch(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock)
    first = append(log, [(b"k", b"from the producer")], producer_id=7, producer_epoch=3, base_sequence=0)
    for i in range(60):
        append(log, [(b"k", b"x" * 40)])
    await clean(log, clock)
    kept = [b for b in all_batches(log) if b.producer_id == 7]
    assert len(kept) == 1
    batch = kept[0]
    assert (batch.base_offset, batch.last_offset, batch.record_count) == (first.base_offset, first.last_offset, 0)
    assert (batch.producer_epoch, batch.base_sequence) == (3, 0) and batch.crc_ok()
    assert log.producer_state.producers[7].last_seq == 0
    await log.close()


# ---------------------------------------------------------------- what is cleanable


async def test_min_compaction_lag_holds_back_recent_segments_and_max_lag_forces_a_cleaning(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock, **{"min.compaction.lag.ms": 60_000})
    for i in range(100):
        append(log, [(b"k", b"x" * 40)])
    # Everything is newer than the lag: nothing is cleanable.
    assert not (await clean(log, clock))[1]
    clock.now += 61_000
    for i in range(100):
        append(log, [(b"k", b"y" * 40)])
    manager, cleaned = await clean(log, clock)
    assert cleaned
    # Only the segments older than the lag were cleaned: the newer ones still hold every record.
    checkpoint = manager.checkpoints[tmp_path][("t", 0)]
    assert checkpoint < log.segments[-1].base_offset
    assert len([r for r in all_records(log) if r[0] >= checkpoint]) == log.log_end_offset - checkpoint
    await log.close()

    clock = Clock()
    log = open_log(tmp_path / "u-0", clock, **{"min.cleanable.dirty.ratio": 0.99, "max.compaction.lag.ms": 5000})
    manager, cleaner = new_cleaner(log, clock)
    for i in range(100):
        append(log, [(b"k%d" % i, b"x" * 40)])
    assert await manager.clean_filthiest(cleaner)  # a log never cleaned is all dirty
    for i in range(40):
        append(log, [(b"n%d" % i, b"x" * 40)])
    assert not await manager.clean_filthiest(cleaner)  # the new segments are below 0.99 of the log
    clock.now += 6000
    assert await manager.clean_filthiest(cleaner)  # the first dirty batch is past max.compaction.lag.ms
    await log.close()


async def test_cleaning_stops_at_the_last_stable_offset(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock)
    for i in range(30):
        append(log, [(b"k", b"x" * 40)])
    open_txn = append(log, [(b"k", b"open")], producer_id=5, producer_epoch=0, base_sequence=0, transactional=True)
    for i in range(60):
        append(log, [(b"k", b"y" * 40)])
    assert log.last_stable_offset == open_txn.base_offset
    manager, _ = await clean(log, clock)
    assert manager.checkpoints[tmp_path][("t", 0)] <= open_txn.base_offset
    assert b"open" in [v for _, _, v in all_records(log)]
    await log.close()


# ---------------------------------------------------------------- crash safety


class SwapCrash(Exception):
    pass


@pytest.mark.parametrize("step", ["cleaned", "half-swapped", "swapped", "half-deleted", "half-renamed"])
async def test_a_crash_at_any_step_of_the_swap_recovers_old_or_new_segments(tmp_path, step, monkeypatch):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock)
    written = []
    for i in range(300):
        key = b"k%d" % (i % 13)
        written.append((append(log, [(key, b"%d" % i)]).base_offset, key, b"%d" % i))
    before = all_records(log)
    await log.flush()

    # Let the cleaning write its first .cleaned segment, then leave the files as a crash at `step` would.
    from kafka_compat.log import partition_log as pl_module

    original = pl_module.PartitionLog.replace_segments

    async def crash(self, cleaned, old, sizes):
        d = self.dir
        cleaned.close()
        if step == "cleaned":
            pass
        elif step == "half-swapped":
            os.rename(cleaned.log_path, str(cleaned.log_path)[: -len(CLEANED_SUFFIX)] + SWAP_SUFFIX)
        else:
            cleaned.change_file_suffixes(CLEANED_SUFFIX, SWAP_SUFFIX)
            if step in ("half-deleted", "half-renamed"):
                for segment in old[: max(1, len(old) // 2)] if step == "half-deleted" else old:
                    segment.rename_to_deleted()
            if step == "half-renamed":
                os.rename(cleaned.log_path, str(cleaned.log_path)[: -len(SWAP_SUFFIX)])
        raise SwapCrash(d)

    monkeypatch.setattr(pl_module.PartitionLog, "replace_segments", crash)
    manager, cleaner = new_cleaner(log, clock)
    with pytest.raises(SwapCrash):
        await manager.clean_filthiest(cleaner)
    monkeypatch.setattr(pl_module.PartitionLog, "replace_segments", original)
    log._close_files()

    reopened = open_log(tmp_path / "t-0", clock)
    records = all_records(reopened)
    names = os.listdir(tmp_path / "t-0")
    assert not [n for n in names if n.endswith((CLEANED_SUFFIX, SWAP_SUFFIX, ".deleted"))]
    if step in ("cleaned", "half-swapped"):
        assert records == before
    else:
        # The first group's cleaned segment replaced its segments; nothing after it changed.
        assert set(records) <= set(before)
        assert latest(records) == latest(before)
        assert len(records) < len(before)
    assert reopened.log_end_offset == len(written)
    # The reopened log cleans to the same end state.
    await clean_until_done(reopened, clock)
    active_base = reopened.segments[-1].base_offset
    assert [r for r in all_records(reopened) if r[0] < active_base] == \
        latest([r for r in written if r[0] < active_base])
    await reopened.close()


async def test_the_checkpoint_file_has_kafkas_format(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock)
    for i in range(100):
        append(log, [(b"k", b"x" * 40)])
    manager, _ = await clean(log, clock)
    text = (tmp_path / CLEANER_OFFSET_CHECKPOINT).read_text()
    assert text == f"0\n1\nt 0 {log.segments[-1].base_offset}\n"
    await log.close()
    shutil.rmtree(tmp_path / "t-0")


# ---------------------------------------------------------------- the worker process


def _cleaner_workers() -> list[int]:
    """This process's children that are log cleaner worker processes."""
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            continue
        if parent == os.getpid() and b"kafka_compat.log.cleaner_worker" in cmdline:
            out.append(int(entry))
    return out


async def test_the_worker_process_cleans_only_on_idle_cpu(tmp_path):
    # Background work: it must take only CPU the broker and its clients leave.
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock)
    for i in range(300):
        append(log, [(b"k%d" % (i % 13), b"%d" % i)])
    before = all_records(log)
    manager = LogCleaner(CleanerConfig(dedupe_buffer_size=1024 * 1024), [log.dir.parent], {("t", 0): log}, clock)
    runner = manager.new_runner()
    try:
        assert await manager.clean_filthiest(runner)
        workers = _cleaner_workers()
        assert [os.sched_getscheduler(pid) for pid in workers] == [os.SCHED_IDLE]
    finally:
        runner.close()
    assert _cleaner_workers() == []
    active_base = log.segments[-1].base_offset
    assert [r for r in all_records(log) if r[0] < active_base] == latest([r for r in before if r[0] < active_base])
    await log.close()


async def test_the_worker_process_runs_the_brokers_own_code_whatever_the_working_directory(tmp_path, monkeypatch):
    # A kafka_compat folder in the broker's working directory (an older
    # checkout, say) must not be what the worker imports.
    fake = tmp_path / "cwd" / "kafka_compat"
    (fake / "log").mkdir(parents=True)
    (fake / "__init__.py").write_text('raise SystemExit("the wrong kafka_compat")\n')
    (fake / "log" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path / "cwd")
    clock = Clock()
    log = open_log(tmp_path / "t-0", clock)
    for i in range(300):
        append(log, [(b"k%d" % (i % 13), b"%d" % i)])
    before = all_records(log)
    manager = LogCleaner(CleanerConfig(dedupe_buffer_size=1024 * 1024), [log.dir.parent], {("t", 0): log}, clock)
    runner = manager.new_runner()
    try:
        assert await manager.clean_filthiest(runner)
    finally:
        runner.close()
    active_base = log.segments[-1].base_offset
    assert [r for r in all_records(log) if r[0] < active_base] == latest([r for r in before if r[0] < active_base])
    await log.close()

"""partition.metadata: Kafka's file format, and what LogManager does at
start-up and on creation with directories whose topic id is not the metadata's."""
import os
import uuid

import pytest
import trio

from kafka_compat.log import LogManager
from kafka_compat.log.manager import LogDirError
from kafka_compat.log.partition_metadata import (
    FILE,
    CorruptPartitionMetadataError,
    read_partition_metadata,
    write_partition_metadata,
)
from kafka_compat.protocol.records import BatchView, build_batch, iter_batches

OLD_ID = uuid.UUID("7d4b6e1c-2f1a-4c8e-9b0d-3e5f6a7b8c9d").bytes
NEW_ID = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d").bytes


def test_round_trip_in_kafkas_format(tmp_path):
    write_partition_metadata(tmp_path, OLD_ID)
    # Kafka's PartitionMetadata.encode(): base64url without padding, no final newline.
    assert (tmp_path / FILE).read_bytes() == b"version: 0\ntopic_id: fUtuHC8aTI6bDT5fanuMnQ"
    assert read_partition_metadata(tmp_path) == OLD_ID
    assert not (tmp_path / (FILE + ".tmp")).exists()
    write_partition_metadata(tmp_path, NEW_ID)  # replaced whole
    assert read_partition_metadata(tmp_path) == NEW_ID


def test_reading_kafkas_variants_and_rejecting_the_rest(tmp_path):
    assert read_partition_metadata(tmp_path) is None  # no file
    path = tmp_path / FILE
    path.write_text("version: 0\ntopic_id: fUtuHC8aTI6bDT5fanuMnQ\n")  # a final newline is fine
    assert read_partition_metadata(tmp_path) == OLD_ID
    for text in (
        "",
        "version: 0\n",
        "version: x\ntopic_id: fUtuHC8aTI6bDT5fanuMnQ",
        "version: -1\ntopic_id: fUtuHC8aTI6bDT5fanuMnQ",
        "version: 0\ntopic: fUtuHC8aTI6bDT5fanuMnQ",
        "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA",  # the zero id
        "version: 0\ntopic_id: short",
    ):
        path.write_text(text)
        with pytest.raises(CorruptPartitionMetadataError):
            read_partition_metadata(tmp_path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(CorruptPartitionMetadataError):
        read_partition_metadata(tmp_path)


def append(log, value: bytes):
    data = bytearray(build_batch([(None, value, [], 1_000)]))
    return log.append(data, [BatchView(data, 0)], leader_epoch=0)


def values(log) -> list[bytes]:
    data = log.read(log.log_start_offset, 1 << 20, True).read_bytes()
    return [r.value for b in iter_batches(data) for r in b.records()]


async def old_topic(data_dir, partitions: int = 1) -> None:
    """Topic "t" (OLD_ID) with one message per partition, cleanly closed."""
    manager = LogManager([data_dir])
    manager.load({})
    for log in await manager.create("t", OLD_ID, range(partitions)):
        append(log, b"old-%d" % log.partition)
        assert read_partition_metadata(log.dir) == OLD_ID
    await manager.close()


async def start(data_dir, topics) -> LogManager:
    manager = LogManager([data_dir], {"file.delete.delay.ms": 0})
    manager.load(topics)
    return manager


async def removed_in_background(manager: LogManager, data_dir) -> list[str]:
    """Run the manager until no *-delete directory is left; the names left."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        with trio.fail_after(10):
            while any(n.endswith("-delete") for n in os.listdir(data_dir)):
                await trio.sleep(0.005)
        nursery.cancel_scope.cancel()
    return sorted(n for n in os.listdir(data_dir) if os.path.isdir(data_dir / n))


async def test_matching_id_is_served(tmp_path):
    await old_topic(tmp_path)
    manager = await start(tmp_path, {"t": (OLD_ID, 1)})
    assert values(manager.get("t", 0)) == [b"old-0"]
    await manager.close()


async def test_a_topic_the_metadata_lacks_is_deleted_not_served(tmp_path):
    await old_topic(tmp_path)
    manager = await start(tmp_path, {})
    assert manager.get("t", 0) is None
    assert [n for n in os.listdir(tmp_path) if n.startswith("t-0")][0].endswith("-delete")
    assert await removed_in_background(manager, tmp_path) == []
    await manager.close()


async def test_another_topic_id_is_deleted_and_the_new_topic_starts_empty(tmp_path):
    await old_topic(tmp_path)
    manager = await start(tmp_path, {"t": (NEW_ID, 1)})
    log = manager.get("t", 0)
    assert log.log_end_offset == 0 and values(log) == []
    assert read_partition_metadata(log.dir) == NEW_ID
    assert await removed_in_background(manager, tmp_path) == ["t-0"]
    await manager.close()
    manager = await start(tmp_path, {"t": (NEW_ID, 1)})
    assert manager.get("t", 0).log_end_offset == 0
    await manager.close()


async def test_partitions_beyond_the_metadatas_count_are_deleted(tmp_path):
    await old_topic(tmp_path, partitions=2)
    manager = await start(tmp_path, {"t": (OLD_ID, 1)})
    assert values(manager.get("t", 0)) == [b"old-0"] and manager.get("t", 1) is None
    assert await removed_in_background(manager, tmp_path) == ["t-0"]
    await manager.close()


async def test_a_dir_without_the_file_takes_the_metadatas_id(tmp_path):
    await old_topic(tmp_path)
    (tmp_path / "t-0" / FILE).unlink()  # as an older version left it
    manager = await start(tmp_path, {"t": (OLD_ID, 1)})
    assert values(manager.get("t", 0)) == [b"old-0"]
    assert read_partition_metadata(tmp_path / "t-0") == OLD_ID
    await manager.close()


async def test_missing_partitions_are_created_with_the_file(tmp_path):
    manager = await start(tmp_path, {"t": (NEW_ID, 2)})
    assert [read_partition_metadata(tmp_path / f"t-{p}") for p in range(2)] == [NEW_ID, NEW_ID]
    await manager.close()


async def test_a_corrupt_file_stops_start_up(tmp_path):
    await old_topic(tmp_path)
    (tmp_path / "t-0" / FILE).write_text("version: 0\ntopic_id: ???")
    with pytest.raises(LogDirError, match=f"cannot use log dir {tmp_path}: .*partition.metadata"):
        await start(tmp_path, {"t": (OLD_ID, 1)})


async def test_recreating_a_name_before_the_old_dirs_are_renamed(tmp_path):
    """A topic deleted and created again while the deletion is still under way:
    the new topic never sees the old one's directory."""
    manager = await start(tmp_path, {})
    [old] = await manager.create("t", OLD_ID, [0])
    append(old, b"old")
    doomed = manager.detach("t")
    [new] = await manager.create("t", NEW_ID, [0])
    assert new is not old and new.log_end_offset == 0 and read_partition_metadata(new.dir) == NEW_ID
    append(new, b"new")
    await manager.delete(doomed)  # already done by create: a no-op
    assert values(new) == [b"new"]
    await manager.close()
    manager = await start(tmp_path, {"t": (NEW_ID, 1)})
    assert values(manager.get("t", 0)) == [b"new"]
    await manager.close()

"""The differential harness: one table of cases, each sent to Apache Kafka
(the reference, interop/reference_kafka.py) and to kafka-compat through our
own protocol layer, the two answers normalized and compared field by field.

A `Case` is data: an API, the versions to try, a request body (a dict, or a
function of the case's `Ctx` when it needs names or values set up first),
optional setup steps (functions of a `Ctx`, run against each broker in
turn) and `differs`, the reason when the answers are known to differ (the
case then runs as a strict xfail: it fails if they ever agree, so the table
stays true). Each broker gets the same topic and group names; values only
one broker knows (member ids, generations) live in `ctx.vars`.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from kafka_compat.protocol import schema
from kafka_compat.protocol.records import build_batch, iter_batches

from .wire import Wire

# Fields whose values legitimately differ between two independent brokers,
# wherever they appear in an answer, each with the reason.
IGNORED_FIELDS = {
    "throttle_time_ms": "quota throttling is timing, not behaviour; both brokers run without quotas",
    "cluster_id": "each cluster gets a random id when it is formatted",
    "port": "each broker listens on a free port of its own",
    "topic_id": "a topic's id is a random UUID chosen at creation (zero/non-zero is still compared)",
    "session_id": "fetch session ids are random (zero/non-zero is still compared)",
    "producer_id": "producer ids are allocated per cluster (-1/other is still compared)",
}
ZERO_UUID = bytes(16)
# A generated member id is the client id, a dash and a random UUID (both brokers).
MEMBER_ID = re.compile(r"^(.*)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# ids carried in error messages (a generated member id, a topic id)
UUID_IN_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

Body = dict | Callable[["Ctx"], dict]


@dataclass
class Case:
    id: str
    api: str
    versions: tuple[int, ...]
    body: Body | None = None
    setup: tuple[Callable[["Ctx"], Any], ...] = ()
    # paths ("topics.*.partitions.*.log_append_time_ms") to ignore in this case, with the reason
    ignore: dict[str, str] = field(default_factory=dict)
    # regex -> replacement applied to every string of both answers, with the
    # reason: {"pattern": ("replacement", "reason")}
    subs: dict[str, tuple[str, str]] = field(default_factory=dict)
    # list path -> the field its items are sorted by, where the order carries
    # no meaning (Kafka's follows a hash map): {"results.*.configs": "name"}
    sort: dict[str, str] = field(default_factory=dict)
    # the reason the two brokers are known (and accepted) to answer differently
    differs: str | None = None
    differs_versions: tuple[int, ...] | None = None  # only these versions differ (default: all)
    # a raw request frame body instead of an encoded `body` (malformed input)
    raw: Callable[["Ctx", int], bytes] | None = None
    # a custom exchange: called with the ctx and version, returns what is compared
    run: Callable[["Ctx", int], Any] | None = None


class Ctx:
    """One case on one broker: its connection, the case's names (equal on
    both brokers) and the values setup captured on this broker."""

    def __init__(self, side: str, host: str, port: int, names: dict[str, str]):
        self.side = side
        self.host, self.port = host, port
        self.wire = Wire(host, port)
        self.names = names
        self.vars: dict[str, Any] = {}
        self._extra: list[Wire] = []

    def __getattr__(self, item):  # ctx.topic, ctx.group ...
        names = self.__dict__.get("names", {})
        if item in names:
            return names[item]
        raise AttributeError(item)

    def request(self, api: str, version: int, body: dict, **kw):
        return self.wire.request(api, version, body, **kw)

    def connection(self) -> Wire:
        """Another connection to this broker, closed when the case ends."""
        wire = Wire(self.host, self.port)
        self._extra.append(wire)
        return wire

    def close(self) -> None:
        self.wire.close()
        for wire in self._extra:
            wire.close()


def names_for(case_id: str) -> dict[str, str]:
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", case_id).strip("-")[:60]
    tag = uuid.uuid4().hex[:6]
    return {"topic": f"d-{base}-{tag}", "topic2": f"d2-{base}-{tag}", "group": f"g-{base}-{tag}"}


# ------------------------------------------------------------------ normalizing


def _records(data: bytes | None):
    """A fetched records field as readable batches (the raw bytes, CRC
    included, follow from these fields)."""
    if data is None:
        return None
    data = bytes(data)
    out = []
    end = 0
    for batch in iter_batches(data):
        end = batch.end
        out.append({
            "base_offset": batch.base_offset, "leader_epoch": batch.partition_leader_epoch,
            "magic": batch.magic, "attributes": batch.attributes,
            "last_offset_delta": batch.last_offset_delta, "base_timestamp": batch.base_timestamp,
            "max_timestamp": batch.max_timestamp, "producer_id": batch.producer_id,
            "producer_epoch": batch.producer_epoch, "base_sequence": batch.base_sequence,
            "crc_ok": batch.crc_ok(),
            "records": [tuple(r) for r in batch.records()],
        })
    if end < len(data):
        out.append({"partial_tail_bytes": len(data) - end})
    return out


def normalize(value, ignore: dict[str, str], path: str = "", subs=None):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key in IGNORED_FIELDS or _ignored(sub, ignore):
                if key in ("topic_id", "session_id"):
                    out[key] = "<zero>" if item in (ZERO_UUID, 0) else "<id>"
                elif isinstance(item, int) and item == -1:
                    out[key] = -1  # "none" sentinels still compare
                else:
                    out[key] = "<ignored>"
            elif key == "records":
                out[key] = _records(item)
            else:
                out[key] = normalize(item, ignore, sub, subs)
        return out
    if isinstance(value, list):
        return [normalize(item, ignore, f"{path}.*", subs) for item in value]
    if isinstance(value, str):
        for pattern, (replacement, _reason) in (subs or {}).items():
            value = re.sub(pattern, replacement, value)
        match = MEMBER_ID.match(value)
        if match:
            return f"{match.group(1)}-<uuid>"
        return UUID_IN_TEXT.sub("<uuid>", value)
    return value


def sort_lists(value, sort: dict[str, str], path: str = ""):
    if not sort:
        return value
    if isinstance(value, dict):
        return {k: sort_lists(v, sort, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        items = [sort_lists(v, sort, f"{path}.*") for v in value]
        for pattern, key in sort.items():
            if _ignored(path, {pattern: ""}):
                items.sort(key=lambda item: repr(item.get(key)))
        return items
    return value


def _ignored(path: str, ignore: dict[str, str]) -> bool:
    return any(re.fullmatch(pattern.replace(".", r"\.").replace("*", r"[^.]+"), path)
               for pattern in ignore)


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                out.append(f"{sub}: kafka={a.get(key, '<absent>')!r} ours={b.get(key, '<absent>')!r}")
            else:
                out += differences(a[key], b[key], sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if a != b:
        return [f"{path}: kafka={a!r} ours={b!r}"]
    return []


# ------------------------------------------------------------------ running


def exchange(case: Case, ctx: Ctx, version: int):
    for step in case.setup:
        step(ctx)
    if case.run is not None:
        return case.run(ctx, version)
    if case.raw is not None:
        frame = ctx.wire.send_frame(case.raw(ctx, version))
        return None if frame is None else {"answered": True, "frame": frame}
    body = case.body(ctx) if callable(case.body) else (case.body or {})
    return ctx.request(case.api, version, body)


def run_case(case: Case, version: int, brokers) -> None:
    names = names_for(f"{case.id}-v{version}")
    answers = {}
    for side, (host, port) in (("kafka", brokers.reference_address), ("ours", brokers.ours_address)):
        ctx = Ctx(side, host, port, dict(names))
        try:
            answers[side] = sort_lists(normalize(exchange(case, ctx, version), case.ignore, subs=case.subs),
                                       case.sort)
        finally:
            ctx.close()
    if os.environ.get("DIFFERENTIAL_SHOW"):  # see what was compared: DIFFERENTIAL_SHOW=1 pytest -s
        print(f"\n{case.id} v{version}\n  kafka: {answers['kafka']!r}\n  ours:  {answers['ours']!r}")
    diffs = differences(answers["kafka"], answers["ours"])
    if diffs:
        pytest.fail(f"{case.api} v{version} answers differ:\n  " + "\n  ".join(diffs)
                    + f"\nkafka: {answers['kafka']!r}\nours:  {answers['ours']!r}", pytrace=False)


def params(cases: list[Case]):
    out = []
    seen = set()
    for case in cases:
        for version in case.versions:
            test_id = f"{case.id}-v{version}"
            assert test_id not in seen, f"duplicate case id {test_id}"
            seen.add(test_id)
            marks = []
            if case.differs and (case.differs_versions is None or version in case.differs_versions):
                marks.append(pytest.mark.xfail(reason=case.differs, strict=True))
            out.append(pytest.param(case, version, id=test_id, marks=marks))
    return out


# ------------------------------------------------------------------ setup steps


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def create_topic(ctx: Ctx, name: str | None = None, partitions: int = 1,
                 configs: dict[str, str] | None = None) -> str:
    """Create a topic and wait until this broker leads all its partitions."""
    name = name or ctx.topic
    resp = ctx.request("CreateTopics", 5, {
        "topics": [{"name": name, "num_partitions": partitions, "replication_factor": 1,
                    "assignments": [],
                    "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}],
        "timeout_ms": 30000, "validate_only": False})
    assert resp["topics"][0]["error_code"] == 0, resp
    wait_leaders(ctx, name, partitions)
    return name


def wait_leaders(ctx: Ctx, name: str, partitions: int) -> None:
    def ready():
        resp = ctx.request("Metadata", 9, {"topics": [{"name": name}], "allow_auto_topic_creation": False})
        topic = resp["topics"][0]
        return (topic["error_code"] == 0 and len(topic["partitions"]) == partitions
                and all(p["leader_id"] >= 0 and p["error_code"] == 0 for p in topic["partitions"]))
    wait_for(ready, f"leaders of {name} on {ctx.side}")

    # Kafka's metadata cache can name a leader a moment before its replica
    # manager serves the partition: wait until every partition answers.
    def serving():
        resp = ctx.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": name, "partitions": [{"partition_index": i, "current_leader_epoch": -1, "timestamp": -1}
                                          for i in range(partitions)]}]})
        return all(p["error_code"] == 0 for p in resp["topics"][0]["partitions"])
    wait_for(serving, f"partitions of {name} served on {ctx.side}")


def batch(values, key: bytes | None = b"k", timestamp: int = 1_700_000_000_000, **kw) -> bytes:
    return build_batch([(key, v, [], timestamp + i) for i, v in enumerate(values)], **kw)


def topic_id(ctx: Ctx, name: str) -> bytes:
    resp = ctx.request("Metadata", 12, {"topics": [{"name": name}], "allow_auto_topic_creation": False})
    return resp["topics"][0]["topic_id"]


def produce(ctx: Ctx, topic: str, records: bytes, partition: int = 0, version: int = 9, acks: int = -1):
    resp = ctx.request("Produce", version, {
        "transactional_id": None, "acks": acks, "timeout_ms": 30000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": records}]}]})
    return resp


def topic(partitions: int = 1, configs: dict[str, str] | None = None, key: str = "topic"):
    """A setup step: create the case's topic (or `key`'s name)."""
    def step(ctx: Ctx):
        create_topic(ctx, ctx.names[key], partitions, configs)
    step.__name__ = f"topic({partitions}, {configs})"
    return step


def records(count: int = 3, partition: int = 0, key: str = "topic", **kw):
    """A setup step: produce `count` records (one batch) to the case's topic."""
    def step(ctx: Ctx):
        resp = produce(ctx, ctx.names[key], batch([b"v%d" % i for i in range(count)], **kw), partition)
        error = resp["responses"][0]["partition_responses"][0]["error_code"]
        assert error == 0, resp
    return step


# ------------------------------------------------------------------ groups

def coordinator_ready(ctx: Ctx, group: str) -> None:
    """Wait until the group's coordinator is found and loaded on this broker."""
    def found():
        resp = ctx.request("FindCoordinator", 4, {"key_type": 0, "coordinator_keys": [group]})
        return resp["coordinators"][0]["error_code"] == 0
    wait_for(found, f"the coordinator of {group} on {ctx.side}")

    def loaded():
        resp = ctx.request("OffsetFetch", 7, {"group_id": group, "topics": None, "require_stable": False})
        return resp["error_code"] == 0
    wait_for(loaded, f"{group} loaded on {ctx.side}")


def subscription(*topics: str) -> bytes:
    import struct
    return struct.pack(">h", 1) + schema.codec("ConsumerProtocolSubscription", 1, "fields").build(
        {"topics": list(topics), "user_data": None, "owned_partitions": []})


def join_body(ctx: Ctx, member_id: str = "", session: int = 10_000, rebalance: int = 10_000,
              protocols=None, instance: str | None = None, protocol_type: str = "consumer",
              group: str | None = None) -> dict:
    return {"group_id": group or ctx.group, "session_timeout_ms": session, "rebalance_timeout_ms": rebalance,
            "member_id": member_id, "group_instance_id": instance, "protocol_type": protocol_type,
            "protocols": protocols if protocols is not None else [{"name": "range", "metadata": subscription("t")}],
            "reason": None}


def stable_member(ctx: Ctx, name: str = "m", session: int = 10_000, instance: str | None = None,
                  protocols=None, protocol_type: str = "consumer", wire: Wire | None = None,
                  subscribe: str | None = None) -> None:
    """Join the case's group as its only member and sync (as leader): the
    group is Stable at generation ctx.vars['generation'], with member id
    ctx.vars[name]."""
    wire = wire or ctx.wire
    if subscribe is not None:
        protocols = [{"name": "range", "metadata": subscription(ctx.names[subscribe])}]
    coordinator_ready(ctx, ctx.group)
    body = join_body(ctx, session=session, instance=instance, protocols=protocols,
                     protocol_type=protocol_type)
    resp = wire.request("JoinGroup", 9, body)
    if resp["error_code"] == 79:  # MEMBER_ID_REQUIRED: join again with the given id
        body["member_id"] = resp["member_id"]
        resp = wire.request("JoinGroup", 9, body)
    assert resp["error_code"] == 0, resp
    ctx.vars[name] = resp["member_id"]
    ctx.vars["generation"] = resp["generation_id"]
    sync = wire.request("SyncGroup", 5, {
        "group_id": ctx.group, "generation_id": resp["generation_id"], "member_id": resp["member_id"],
        "group_instance_id": instance, "protocol_type": protocol_type,
        "protocol_name": resp["protocol_name"],
        "assignments": [{"member_id": resp["member_id"], "assignment": b""}]})
    assert sync["error_code"] == 0, sync


def group(**kw):
    """A setup step: a stable one-member group (see stable_member)."""
    def step(ctx: Ctx):
        stable_member(ctx, **kw)
    return step


def group_state(ctx: Ctx) -> str:
    resp = ctx.request("DescribeGroups", 5, {"groups": [ctx.group], "include_authorized_operations": False})
    return resp["groups"][0]["group_state"]


def rebalancing(ctx: Ctx) -> None:
    """A setup step after `group()`: a second member joins (JoinGroup v3, on
    a connection of its own, its answer never read), so the group is
    PreparingRebalance until the first member rejoins."""
    wire = ctx.connection()
    body = join_body(ctx)
    wire.send_only(wire.encode("JoinGroup", 3, body))
    wait_for(lambda: group_state(ctx) == "PreparingRebalance", f"a rebalance on {ctx.side}")


def commit(offset: int = 5, partition: int = 0, metadata: str | None = "meta", key: str = "topic"):
    """A setup step: a simple (generation -1) offset commit for the case's group."""
    def step(ctx: Ctx):
        coordinator_ready(ctx, ctx.group)
        resp = ctx.request("OffsetCommit", 8, {
            "group_id": ctx.group, "generation_id_or_member_epoch": -1, "member_id": "",
            "group_instance_id": None, "topics": [{"name": ctx.names[key], "partitions": [
                {"partition_index": partition, "committed_offset": offset, "committed_leader_epoch": -1,
                 "committed_metadata": metadata}]}]})
        assert resp["topics"][0]["partitions"][0]["error_code"] == 0, resp
    return step


def leave(ctx: Ctx, name: str = "m") -> None:
    """A setup step: the member `name` leaves the group (it is then Empty)."""
    resp = ctx.request("LeaveGroup", 5, {"group_id": ctx.group, "members": [
        {"member_id": ctx.vars[name], "group_instance_id": None, "reason": None}]})
    assert resp["error_code"] == 0, resp

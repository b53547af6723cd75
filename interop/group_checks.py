"""What a group consumed, checked against what was produced."""
from __future__ import annotations

from collections import defaultdict

from .group_member import GroupMember


def consumers_by_record(members: list[GroupMember]) -> dict[tuple[int, int], list[str]]:
    """(partition, offset) -> the members that consumed it, once per delivery."""
    by_record: dict[tuple[int, int], list[str]] = defaultdict(list)
    for member in members:
        for pair in member.consumed:
            by_record[pair].append(member.name)
    return by_record


def assert_all_consumed(members: list[GroupMember], produced: dict[int, int]) -> None:
    """Every produced offset was consumed, and nothing else was."""
    by_record = consumers_by_record(members)
    expected = {(p, o) for p, end in produced.items() for o in range(end)}
    missing = sorted(expected - set(by_record))
    strangers = sorted(set(by_record) - expected)
    assert not missing, f"{len(missing)} records never consumed, first {missing[:10]}"
    assert not strangers, f"consumed offsets beyond the log ends {produced}: {strangers[:10]}"


def assert_consumed_exactly_once(members: list[GroupMember], produced: dict[int, int]) -> None:
    """Every produced record was consumed by exactly one member, once."""
    assert_all_consumed(members, produced)
    twice = {pair: names for pair, names in consumers_by_record(members).items()
             if len(names) > 1}
    if twice:
        failures = [f"{m.name}: {e['error']}" for m in members for e in m.events
                    if e["event"] == "commit_failed"]
        first = sorted(twice)[:10]
        raise AssertionError(
            f"{len(twice)} records consumed more than once, e.g. "
            + ", ".join(f"p{p}@{o} by {twice[(p, o)]}" for p, o in first)
            + (f"; commit failures reported: {failures[:5]}" if failures else
               "; no commit failed"))


def assert_redelivered_only_after_commit(members: list[GroupMember], produced: dict[int, int],
                                         killed: GroupMember) -> None:
    """Every record was consumed; a record consumed twice was one `killed`
    consumed in one of its partitions at or after its last acknowledged
    commit there (what at-least-once delivery allows after a crash)."""
    assert_all_consumed(members, produced)
    lost = {p for e in killed.events if e["event"] == "assigned" for p in e["partitions"]}
    for (partition, offset), names in consumers_by_record(members).items():
        if len(names) == 1:
            continue
        allowed = (names.count(killed.name) == 1 and len(names) == 2 and partition in lost
                   and offset >= killed.committed.get(partition, 0))
        assert allowed, (
            f"p{partition}@{offset} consumed by {names}; {killed.name} had committed "
            f"{killed.committed.get(partition)} there before it was killed")

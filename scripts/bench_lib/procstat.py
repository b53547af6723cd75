"""CPU time, peak resident memory and children of a running process, and
the host's stolen CPU time, read from /proc."""
from __future__ import annotations

import os

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS_PER_SECOND


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the largest resident set the process has had so far, in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6  # the value is in kB of 1024 bytes
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:  # field 4 of proc(5): the parent's PID
            out.append(int(entry))
    return out


def host_steal_ticks() -> tuple[int, int] | None:
    """(steal, all) CPU ticks of the whole machine so far, from /proc/stat:
    steal is time a virtual machine's CPUs were ready to run but the
    hypervisor ran something else. None where /proc/stat has no steal column."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)

#!/usr/bin/env python3
"""CPU seconds per process group while a benchmark runs (scripts/bench_citus.sh).

    cpu_sampler.py OUT.json NAME=PID [NAME=PID ...]

Each NAME=PID is a root (a postmaster, the server): the group is the root and every
process whose parent chain reaches it (a postmaster's backends, Citus's connections
from the coordinator included). `load` is every booking-bench and pgbench process.
/proc is read every 0.2 s until SIGTERM; a group's CPU is the sum over its processes
of the last utime + stime seen minus the first (0 for a process born meanwhile), so a
process that lives under 0.2 s is missed. `machine` is the busy CPU of all cores from
/proc/stat and `other` what the groups do not explain: the machine is shared.
"""
import json
import os
import signal
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, int(rest[1]), int(rest[11]) + int(rest[12])  # comm, ppid, ticks


def machine():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def sample():
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = stat(d)
            except (OSError, ValueError, IndexError):
                pass
    return procs


def main():
    out = sys.argv[1]
    roots = {int(p): n for n, p in (a.split("=", 1) for a in sys.argv[2:])}
    first, last, group = {}, {}, {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    m0, t0 = machine(), time.monotonic()
    initial = True
    while True:
        procs = sample()
        for pid, (comm, ppid, ticks) in procs.items():
            g = group.get(pid)
            if g is None:
                p, seen = pid, 0
                while p and seen < 8:
                    if p in roots:
                        g = roots[p]
                        break
                    p = procs.get(p, ("", 0, 0))[1]
                    seen += 1
                if g is None and comm in ("booking-bench", "pgbench"):
                    g = "load"
                if g is None:
                    continue
                group[pid] = g
                first[pid] = ticks if initial else 0
            last[pid] = ticks
        initial = False
        if stop:
            break
        time.sleep(0.2)
    secs = time.monotonic() - t0
    res = {"wall_s": round(secs, 2), "machine_cpu_s": round((machine() - m0) / TCK, 2)}
    for pid, g in group.items():
        res[g] = res.get(g, 0) + (last[pid] - first[pid]) / TCK
    ours = sum(v for k, v in res.items() if k not in ("wall_s", "machine_cpu_s"))
    res["other_cpu_s"] = round(res["machine_cpu_s"] - ours, 2)
    for k in list(res):
        res[k] = round(res[k], 2)
    with open(out, "w") as f:
        json.dump(res, f)


main()

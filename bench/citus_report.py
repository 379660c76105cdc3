#!/usr/bin/env python3
"""The report of scripts/bench_citus.sh: citus_report.py RUN_DIR [RUN_DIR ...] > report.md

Reads RUN_DIR/<target>/r<N>/<name>.json (booking-bench results, pgbench ones as
pgbench-<name>.json) and cpu/<name>.json (bench/cpu_sampler.py); the rounds of several
runs (say one repeated with --only) are taken together. Every figure is the
median over the rounds with the range [min-max] beside it; a ratio is citus / pg of the
medians (throughput: above 1 is faster on Citus; latency: above 1 is slower).
"""
import glob
import json
import os
import statistics
import sys

runs = sys.argv[1:]
run = ", ".join(runs)


def rounds(target):
    return [d for r in runs for d in sorted(glob.glob(f"{r}/{target}/r*"))]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return None


def primary(res):
    op = res["ops"].get(res["primary"]) or next(iter(res["ops"].values()))
    return op


def figures(target, name, pick):
    vals = []
    for d in rounds(target):
        res = load(f"{d}/{name}.json")
        if res is not None:
            vals.append(pick(res))
    return vals


def fmt(v):
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell(vals):
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt(m)
    return f"{fmt(m)} [{fmt(min(vals))}-{fmt(max(vals))}]"


def ratio(a, b):
    if not a or not b or statistics.median(b) == 0:
        return "-"
    return f"{statistics.median(a) / statistics.median(b):.2f}x"


def paired(target_a, target_b, name, pick):
    """citus / pg round by round (the two ran one after the other in each round, so
    they met about the same load from the machine's other work)."""
    out = []
    for da, db in zip(rounds(target_a), rounds(target_b)):
        a, b = load(f"{da}/{name}.json"), load(f"{db}/{name}.json")
        if a is not None and b is not None and pick(b):
            out.append(pick(a) / pick(b))
    return ", ".join(f"{x:.2f}" for x in out) or "-"


def rps(r):
    return primary(r)["throughput_rps"]


def lat(q):
    return lambda r: primary(r)["latency"][q]


MEASURES = [
    ("holds, 1 seat, c=1, 16 shows", "holds-c1"),
    ("holds, 1 seat, c=8, 16 shows", "holds-c8"),
    ("holds, 1 seat, c=32, 16 shows", "holds-c32"),
    ("holds, 1 seat, c=32, one show", "holds-one-c32"),
    ("herd of N on one seat", "herd"),
    ("seat map (1,000 seats, server cache), c=32", "seatmap"),
    ("SQL hold1.sql, c=1, one show", "pgbench-hold1-c1"),
    ("SQL hold1.sql, c=32, one show", "pgbench-hold1-c32"),
    ("SQL seatmap.sql, c=1", "pgbench-seatmap-c1"),
    ("SQL seatmap.sql, c=32", "pgbench-seatmap-c32"),
    ("SQL herd.sql, c=32", "pgbench-herd-c32"),
]

n_pg, n_citus = len(rounds("pg")), len(rounds("citus"))
print(f"# Citus formation next to plain PostgreSQL ({run})\n")
print(f"Rounds: pg {n_pg}, citus {n_citus} (a figure may have fewer: a run that failed to "
      "start has none). Each cell: median [min-max] over the rounds. "
      "Ratio: citus / pg of the medians.\n")
for r in runs:
    machine = f"{r}/machine.txt"
    if os.path.exists(machine):
        print(f"Machine ({os.path.basename(r)}): " + open(machine).read().strip().replace("\n", "; ") + "\n")
print("| measure | pg req/s | citus req/s | ratio | ratio by round | pg p50 ms | citus p50 ms | pg p99 ms | citus p99 ms | p99 ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
for label, name in MEASURES:
    a, b = figures("citus", name, rps), figures("pg", name, rps)
    p50a, p50b = figures("citus", name, lat("p50_ms")), figures("pg", name, lat("p50_ms"))
    p99a, p99b = figures("citus", name, lat("p99_ms")), figures("pg", name, lat("p99_ms"))
    print(f"| {label} | {cell(b)} | {cell(a)} | {ratio(a, b)} | {paired('citus', 'pg', name, rps)} "
          f"| {cell(p50b)} | {cell(p50a)} "
          f"| {cell(p99b)} | {cell(p99a)} | {ratio(p99a, p99b)} |")

print("\n## Where a routed statement's time goes (Citus only)\n")
print("The same pgbench script against the coordinator, against the worker that holds "
      "the show (Citus plans there and executes locally), and on that worker's shard "
      "tables (plain PostgreSQL underneath); plain PostgreSQL beside them.\n")
print("| script | pg | coordinator | worker | shard tables | coordinator / shard | coordinator / shard by round |")
print("|---|---|---|---|---|---|---|")
for script in ("hold1-c1", "hold1-c32", "seatmap-c1", "seatmap-c32"):
    for what, pick in (("tps", rps), ("p50 ms", lat("p50_ms"))):
        pg = figures("pg", f"pgbench-{script}", pick)
        co = figures("citus", f"pgbench-{script}", pick)
        wk = figures("citus", f"pgbench-worker-{script}", pick)
        sh = figures("citus", f"pgbench-shard-{script}", pick)
        byr = []
        for d in rounds("citus"):
            c, h = load(f"{d}/pgbench-{script}.json"), load(f"{d}/pgbench-shard-{script}.json")
            if c is not None and h is not None and pick(h):
                byr.append(f"{pick(c) / pick(h):.2f}")
        print(f"| {script} {what} | {cell(pg)} | {cell(co)} | {cell(wk)} | {cell(sh)} | {ratio(co, sh)} "
              f"| {', '.join(byr) or '-'} |")

print("\n## CPU per transaction (pgbench runs; ms of CPU per transaction, by process group)\n")
print("| run | target | postgres / coordinator | worker1 | worker2 | pgbench | other (not ours) | machine cores busy |")
print("|---|---|---|---|---|---|---|---|")
for script in ("hold1-c1", "hold1-c32", "seatmap-c32", "herd-c32",
               "worker-hold1-c32", "shard-hold1-c32", "worker-seatmap-c32", "shard-seatmap-c32"):
    for target in ("pg", "citus"):
        per = {}
        busy = []
        for d in rounds(target):
            res, cpu = load(f"{d}/pgbench-{script}.json"), load(f"{d}/cpu/pgbench-{script}.json")
            if res is None or cpu is None:
                continue
            n = primary(res)["requests"] or 1
            for g in ("postgres", "coordinator", "worker1", "worker2", "load", "other_cpu_s"):
                per.setdefault(g, []).append(1000 * cpu.get(g, 0) / n)
            busy.append(cpu["machine_cpu_s"] / cpu["wall_s"])
        if not busy:
            continue
        first = per["postgres"] if target == "pg" else per["coordinator"]
        print(f"| {script} | {target} | {cell(first)} | {cell(per['worker1']) if target == 'citus' else '-'} "
              f"| {cell(per['worker2']) if target == 'citus' else '-'} | {cell(per['load'])} "
              f"| {cell(per['other_cpu_s'])} | {cell(busy)} |")

print("\n## CPU during the HTTP runs (cores busy: CPU seconds / wall seconds of the run, setup included)\n")
print("| run | target | postgres / coordinator | worker1 | worker2 | server | booking-bench | other | machine |")
print("|---|---|---|---|---|---|---|---|---|")
for _, name in MEASURES[:6]:
    for target in ("pg", "citus"):
        per = {}
        for d in rounds(target):
            cpu = load(f"{d}/cpu/{name}.json")
            if cpu is None:
                continue
            for g in ("postgres", "coordinator", "worker1", "worker2", "server", "load",
                      "other_cpu_s", "machine_cpu_s"):
                per.setdefault(g, []).append(cpu.get(g, 0) / cpu["wall_s"])
        if not per:
            continue
        first = per["postgres"] if target == "pg" else per["coordinator"]
        w = (lambda g: cell(per[g])) if target == "citus" else (lambda g: "-")
        print(f"| {name} | {target} | {cell(first)} | {w('worker1')} | {w('worker2')} | {cell(per['server'])} "
              f"| {cell(per['load'])} | {cell(per['other_cpu_s'])} | {cell(per['machine_cpu_s'])} |")

for d in rounds("citus")[:1]:
    for f in ("placement.txt", "overhead-nodes.txt"):
        if os.path.exists(f"{d}/{f}"):
            print(f"\n{f} ({os.path.basename(d)}):\n\n```\n{open(f'{d}/{f}').read().strip()}\n```")
    rc = f"{d}/remote-commands.txt"
    if os.path.exists(rc):
        lines = [l for l in open(rc) if "issuing" in l]
        print(f"\nRemote commands the coordinator sent for one hold1-style transaction "
              f"(citus.log_remote_commands): {len(lines)}\n\n```")
        for l in lines:
            print(l.strip()[:160])
        print("```")

#!/usr/bin/env python3
"""The report of scripts/bench_growth.sh, made from its JSON only.

    python3 bench/plot_growth.py DIR

Reads DIR/growth-<size>.json (one per size), writes DIR/growth.md (every figure per
size, and the targets: hold p99 and seat-map p99 within 20% from the smallest size to
the largest, the sweeper's and the feed's cost per change flat) and DIR/growth.png
(p99 latency and per-change costs against the number of shows). Without matplotlib it
writes the table and says so.
"""
import glob
import json
import os
import sys


def load(out):
    runs = []
    for path in glob.glob(os.path.join(out, "growth-*.json")):
        runs.append(json.load(open(path)))
    return sorted(runs, key=lambda r: r["size"])


def op(run, name, field):
    o = run["http"]["ops"].get(name)
    if o is None:
        return None
    if field == "rps":
        return o["throughput_rps"]
    return o["latency"][field]


# (label, unit, getter): the table's rows.
ROWS = [
    ("holds/s, own shows (c=32)", "/s", lambda r: op(r, "own_hold", "rps")),
    ("holds/s, old shows (c=32)", "/s", lambda r: op(r, "old_hold", "rps")),
    ("hold p50, own", "ms", lambda r: op(r, "own_hold", "p50_ms")),
    ("hold p99, own", "ms", lambda r: op(r, "own_hold", "p99_ms")),
    ("hold p50, old", "ms", lambda r: op(r, "old_hold", "p50_ms")),
    ("hold p99, old", "ms", lambda r: op(r, "old_hold", "p99_ms")),
    ("seat map warm p99, own", "ms", lambda r: op(r, "own_map_warm", "p99_ms")),
    ("seat map warm p99, old", "ms", lambda r: op(r, "old_map_warm", "p99_ms")),
    ("seat map cold p99, own", "ms", lambda r: op(r, "own_map_cold", "p99_ms")),
    ("seat map cold p99, old", "ms", lambda r: op(r, "old_map_cold", "p99_ms")),
    ("confirm p50, own", "ms", lambda r: op(r, "own_confirm", "p50_ms")),
    ("confirm p99, own", "ms", lambda r: op(r, "own_confirm", "p99_ms")),
    ("confirm p99, old", "ms", lambda r: op(r, "old_confirm", "p99_ms")),
    ("herd p99, own", "ms", lambda r: op(r, "own_herd", "p99_ms")),
    ("herd p99, old", "ms", lambda r: op(r, "old_herd", "p99_ms")),
    ("GET /shows first page p99", "ms", lambda r: op(r, "shows_first", "p99_ms")),
    ("GET /shows last page p99", "ms", lambda r: op(r, "shows_deep", "p99_ms")),
    ("sweeper per expired hold", "µs", lambda r: r["sweeper"].get("sweeper_us_per_hold")),
    ("feed read per event, all shows", "µs", lambda r: r["feed"].get("feed_all_us_per_event")),
    ("feed read per event, one show", "µs", lambda r: r["feed"].get("feed_show_us_per_event")),
    ("feed head", "µs", lambda r: r["feed"].get("feed_head_us")),
    ("seats", "", lambda r: r["counts"]["seats"]),
    ("holds", "", lambda r: r["counts"]["holds"]),
    ("bookings", "", lambda r: r["counts"]["bookings"]),
    ("seat_events", "", lambda r: r["counts"]["seat_events"]),
    ("database size", "MB", lambda r: r["counts"]["database_mb"]),
    ("fill of this step", "s", lambda r: r["fill_s"]),
]

# Targets: (label, getter, allowed growth from the smallest size to the largest).
TARGETS = [
    ("hold p99, own", lambda r: op(r, "own_hold", "p99_ms"), 1.2),
    ("hold p99, old", lambda r: op(r, "old_hold", "p99_ms"), 1.2),
    ("seat map warm p99, own", lambda r: op(r, "own_map_warm", "p99_ms"), 1.2),
    ("seat map warm p99, old", lambda r: op(r, "old_map_warm", "p99_ms"), 1.2),
    ("seat map cold p99, old", lambda r: op(r, "old_map_cold", "p99_ms"), 1.2),
    ("GET /shows last page p99", lambda r: op(r, "shows_deep", "p99_ms"), 1.2),
    ("sweeper per expired hold", lambda r: r["sweeper"].get("sweeper_us_per_hold"), 1.2),
    ("feed read per event, all shows", lambda r: r["feed"].get("feed_all_us_per_event"), 1.2),
]


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, (int,)) or (isinstance(v, float) and v >= 1000):
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def table(runs):
    sizes = [r["size"] for r in runs]
    lines = ["| figure | " + " | ".join(f"{s:,} shows" for s in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for label, unit, get in ROWS:
        cells = [fmt(get(r)) for r in runs]
        lines.append(f"| {label}{' (' + unit + ')' if unit else ''} | " + " | ".join(cells) + " |")
    lines += ["", f"Targets, {sizes[0]:,} to {sizes[-1]:,} shows (largest / smallest):", ""]
    for label, get, bound in TARGETS:
        a, b = get(runs[0]), get(runs[-1])
        if a is None or b is None or a <= 0:
            lines.append(f"- {label}: not measured")
            continue
        ratio = b / a
        verdict = "met" if ratio <= bound else "NOT met"
        lines.append(f"- {label}: {fmt(a)} → {fmt(b)}, ×{ratio:.2f} (target ≤ ×{bound}): {verdict}")
    stall = os.path.join(OUT, "feed-stall.json")
    if os.path.exists(stall):
        lines += ["", "The feed behind a long transaction (a hold's 201 to its event on the SSE stream):", ""]
        for row in json.load(open(stall)):
            lines.append(f"- a {row['long_transaction_s']:g}-second transaction in database "
                         f"`{row['database']}`: {fmt(row['hold_to_event_ms'])} ms")
    checks = [(r["size"], c) for r in runs for c in r["http"]["checks"] if not c["ok"]]
    lines += ["", "Checks: " + ("all passed" if not checks else
                                "; ".join(f"{s}: {c['name']} ({c['detail']})" for s, c in checks))]
    return "\n".join(lines) + "\n"


def plot(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = [r["size"] for r in runs]
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5))
    for name, label in [("own_hold", "hold, own"), ("old_hold", "hold, old"),
                        ("own_map_warm", "seat map warm, own"), ("old_map_warm", "seat map warm, old"),
                        ("old_map_cold", "seat map cold, old"), ("own_confirm", "confirm, own"),
                        ("old_confirm", "confirm, old"), ("shows_first", "GET /shows first page"),
                        ("shows_deep", "GET /shows last page")]:
        ys = [op(r, name, "p99_ms") for r in runs]
        if all(y is not None for y in ys):
            a.plot(sizes, ys, marker="o", label=label)
    a.set(xscale="log", yscale="log", xlabel="shows in the database", ylabel="p99 latency (ms)",
          title="HTTP p99 against size")
    a.legend(fontsize=8)
    a.grid(True, which="both", alpha=0.3)
    for key, part, label in [("sweeper_us_per_hold", "sweeper", "sweeper, per expired hold"),
                             ("feed_all_us_per_event", "feed", "feed read, per event (all)"),
                             ("feed_show_us_per_event", "feed", "feed read, per event (one show)")]:
        ys = [r[part].get(key) for r in runs]
        if all(y is not None for y in ys):
            b.plot(sizes, ys, marker="o", label=label)
    # Log scale: the sweeper's ~100 µs a hold and the feed's ~1 µs an event share it.
    b.set(xscale="log", yscale="log", xlabel="shows in the database", ylabel="µs per change",
          title="Per-change cost against size (timed in SQL)")
    b.legend(fontsize=8)
    b.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


OUT = "."


def main():
    global OUT
    out = OUT = sys.argv[1] if len(sys.argv) > 1 else "."
    runs = load(out)
    if not runs:
        sys.exit(f"plot_growth.py: no growth-*.json in {out}")
    md = table(runs)
    open(os.path.join(out, "growth.md"), "w").write(md)
    print(md)
    try:
        plot(runs, os.path.join(out, "growth.png"))
        print(f"plot: {os.path.join(out, 'growth.png')}")
    except ImportError:
        print("plot_growth.py: matplotlib missing: no plot", file=sys.stderr)


if __name__ == "__main__":
    main()

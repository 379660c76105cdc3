#!/usr/bin/env python3
"""The fault suite's audit: the database against DESIGN.md's invariants and the log of
every acknowledgement the load received.

    audit.py --db URL --log FILE [--log FILE ...] [--sweep-wait SECS] [--json OUT]

Checks, printing each problem and exiting 1 when there is any:
- no seat in two live holds/bookings (the tables and the seat pointers agree);
- no partial hold or booking (an active hold owns all its seats, a booking all of its);
- no blocked seat in an unexpired active hold or a live booking; no block without seats;
- no user with more seats of a show (unexpired active holds plus live bookings) than
  the show's max_seats_per_user;
- every ticket (hold_seats row) of a type the show sells for its seat's category, at
  that type's price for the category (ticket_prices); every hold's total the sum of its
  tickets (and a booking's its hold's);
- every acknowledged hold, confirm, cancel, release, block and unblock is in the
  database as it was acknowledged (ids, user, seats, tickets, total, status; a block's
  seats blocked by it unless an unblock of it was tried; an unblocked block gone), and
  nothing happened that nobody asked for (no block but those tried);
- no active hold past its expiry once the sweeper has had `--sweep-wait` seconds;
- idempotency records agree with the holds, bookings and blocks they answered;
- the change feed has one event per seat change (counted per cause; for blocks, whose
  rows are deleted by an unblock: block seat-changes = unblock seat-changes + seats
  blocked now, and with a log, exactly the seats of the blocks acknowledged or found,
  and unblock seat-changes exactly the seats of the acknowledged blocks now gone), and
  replaying it in feed order gives every seat's current state (available, held,
  booked, blocked) and version;
- with --sse FILE --show ID (the ids an event stream of the show received, as written
  by `probe.py sse`, which resumes with Last-Event-ID whenever its connection drops;
  --sse may be given once a stream):
  the stream brought every event of the show, each once, in feed order (the xid8
  order of the table), from the first event on; with --straddle N, the show's events
  have transaction ids on both sides of N (so the check ran across that boundary).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict


def psql_bin():
    found = shutil.which("psql")
    if found:
        return found
    for v in ("15", "16", "17", "14", "13"):
        p = f"/usr/lib/postgresql/{v}/bin/psql"
        if os.path.exists(p):
            return p
    sys.exit("audit.py: psql not found")


class Db:
    def __init__(self, url):
        self.url = url
        self.psql = psql_bin()

    def rows(self, sql):
        """Rows of `sql` as dicts (the query is wrapped in json_agg)."""
        wrapped = f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) q"
        out = subprocess.run([self.psql, self.url, "-X", "-At", "-v", "ON_ERROR_STOP=1",
                              "-c", wrapped], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            sys.exit(f"audit.py: query failed: {out.stderr.strip()}\n{sql}")
        return json.loads(out.stdout)

    def snapshot(self, queries):
        """Rows of each query, all read in one REPEATABLE READ snapshot: the servers
        may still be writing (the sweeper), and a check that compares two tables must
        not see one before a transaction and the other after it."""
        script = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"]
        for sql in queries:
            # json_agg separates elements with newlines: one line per query instead.
            script.append("SELECT replace(coalesce(json_agg(q), '[]'::json)::text, E'\\n', ' ') "
                          f"FROM ({sql}) q;")
        script.append("COMMIT;")
        out = subprocess.run([self.psql, self.url, "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1"],
                             input="\n".join(script), capture_output=True, text=True,
                             timeout=300)
        if out.returncode != 0:
            sys.exit(f"audit.py: audit queries failed: {out.stderr.strip()}")
        lines = [l for l in out.stdout.split("\n") if l.strip()]
        if len(lines) != len(queries):
            sys.exit(f"audit.py: expected {len(queries)} results, got {len(lines)}")
        return [json.loads(l) for l in lines]

    def value(self, sql):
        r = self.rows(sql)
        return next(iter(r[0].values())) if r else None


# Each: what it means when rows come back, and the query.
TABLE_CHECKS = [
    ("a seat is in two live holds or bookings",
     """SELECT show_id, seat_id, count(*) AS n FROM (
          SELECT hs.show_id, hs.seat_id FROM hold_seats hs
            JOIN holds h ON h.show_id = hs.show_id AND h.id = hs.hold_id
           WHERE h.status = 'active' AND h.expires_at > now()
          UNION ALL
          SELECT bs.show_id, bs.seat_id FROM booking_seats bs
            JOIN bookings b ON b.show_id = bs.show_id AND b.id = bs.booking_id
           WHERE b.status = 'confirmed') x
        GROUP BY show_id, seat_id HAVING count(*) > 1"""),
    ("a seat points at a hold that is not active",
     """SELECT s.label FROM seats s JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
         WHERE h.status <> 'active'"""),
    ("a seat points at a booking that is not confirmed",
     """SELECT s.label FROM seats s JOIN bookings b ON b.show_id = s.show_id AND b.id = s.booking_id
         WHERE b.status <> 'confirmed'"""),
    ("a seat points at a hold that does not list it",
     """SELECT s.label FROM seats s WHERE s.hold_id IS NOT NULL AND NOT EXISTS
          (SELECT 1 FROM hold_seats hs WHERE hs.show_id = s.show_id AND hs.hold_id = s.hold_id
              AND hs.seat_id = s.id)"""),
    ("an active hold does not own all its seats (partial hold)",
     """SELECT h.id FROM holds h JOIN hold_seats hs ON hs.show_id = h.show_id AND hs.hold_id = h.id
          JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
         WHERE h.status = 'active' AND s.hold_id IS DISTINCT FROM h.id"""),
    ("a confirmed booking does not own all its seats (partial booking)",
     """SELECT b.id FROM bookings b JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
          JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
         WHERE b.status = 'confirmed' AND (s.booking_id IS DISTINCT FROM b.id OR NOT bs.live)"""),
    ("a cancelled booking still has live seats",
     """SELECT b.id FROM bookings b JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
         WHERE b.status = 'cancelled' AND bs.live"""),
    ("a confirmed hold has no booking, or a booking's hold is not confirmed",
     """SELECT h.id FROM holds h LEFT JOIN bookings b ON b.show_id = h.show_id AND b.hold_id = h.id
         WHERE (h.status = 'confirmed') <> (b.id IS NOT NULL)"""),
    ("a booking's seats differ from its hold's",
     """SELECT b.id FROM bookings b WHERE
          (SELECT array_agg(seat_id ORDER BY seat_id) FROM booking_seats bs
            WHERE bs.show_id = b.show_id AND bs.booking_id = b.id)
          IS DISTINCT FROM
          (SELECT array_agg(seat_id ORDER BY seat_id) FROM hold_seats hs
            WHERE hs.show_id = b.show_id AND hs.hold_id = b.hold_id)"""),
    ("a hold or booking has no seats",
     """SELECT h.id FROM holds h WHERE NOT EXISTS
          (SELECT 1 FROM hold_seats hs WHERE hs.show_id = h.show_id AND hs.hold_id = h.id)
        UNION ALL
        SELECT b.id FROM bookings b WHERE NOT EXISTS
          (SELECT 1 FROM booking_seats bs WHERE bs.show_id = b.show_id AND bs.booking_id = b.id)"""),
    ("a blocked seat is in an unexpired active hold or a live booking",
     """SELECT s.show_id, s.label, s.block_id FROM seats s
         WHERE s.block_id IS NOT NULL AND (
           EXISTS (SELECT 1 FROM hold_seats hs JOIN holds h
                     ON h.show_id = hs.show_id AND h.id = hs.hold_id
                    WHERE hs.show_id = s.show_id AND hs.seat_id = s.id
                      AND h.status = 'active' AND h.expires_at > now())
           OR EXISTS (SELECT 1 FROM booking_seats bs JOIN bookings b
                        ON b.show_id = bs.show_id AND b.id = bs.booking_id
                       WHERE bs.show_id = s.show_id AND bs.seat_id = s.id AND bs.live
                         AND b.status = 'confirmed'))"""),
    ("a block has no seats",
     """SELECT b.show_id, b.id FROM blocks b WHERE NOT EXISTS
          (SELECT 1 FROM seats s WHERE s.show_id = b.show_id AND s.block_id = b.id)"""),
    ("a user has more seats of a show than its max_seats_per_user",
     """SELECT x.show_id, x.user_id, sum(x.n) AS seats, sh.max_seats_per_user AS max FROM (
          SELECT h.show_id, h.user_id, count(*) AS n FROM holds h
            JOIN hold_seats hs ON hs.show_id = h.show_id AND hs.hold_id = h.id
           WHERE h.status = 'active' AND h.expires_at > now() GROUP BY h.show_id, h.user_id
          UNION ALL
          SELECT b.show_id, b.user_id, count(*) FROM bookings b
            JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id AND bs.live
           WHERE b.status = 'confirmed' GROUP BY b.show_id, b.user_id) x
          JOIN shows sh ON sh.id = x.show_id
         WHERE sh.max_seats_per_user IS NOT NULL
         GROUP BY x.show_id, x.user_id, sh.max_seats_per_user
        HAVING sum(x.n) > sh.max_seats_per_user"""),
    ("a ticket's type is not sold for its seat's category, or its price is not that type's",
     """SELECT hs.show_id, hs.hold_id, s.label, s.category, hs.ticket_type, hs.price,
               tp.price AS listed, tp.type IS NOT NULL AS sold
          FROM hold_seats hs JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
          LEFT JOIN ticket_prices tp ON tp.show_id = hs.show_id AND tp.type = hs.ticket_type
               AND tp.category = s.category
         WHERE tp.type IS NULL OR tp.price IS DISTINCT FROM hs.price"""),
    ("a hold's total is not the sum of its tickets",
     """SELECT h.show_id, h.id, h.total, sum(coalesce(hs.price, 0)) AS tickets FROM holds h
          JOIN hold_seats hs ON hs.show_id = h.show_id AND hs.hold_id = h.id
         GROUP BY h.show_id, h.id, h.total HAVING h.total <> sum(coalesce(hs.price, 0))"""),
    ("a booking's total or user differs from its hold's",
     """SELECT b.id FROM bookings b JOIN holds h ON h.show_id = b.show_id AND h.id = b.hold_id
         WHERE b.total <> h.total OR b.user_id <> h.user_id"""),
    ("an idempotency record names a hold that does not exist or is another user's",
     """SELECT k.key FROM idempotency_keys k
          CROSS JOIN LATERAL (SELECT convert_from(k.body, 'UTF8')::jsonb AS doc) d
         WHERE k.status BETWEEN 200 AND 299 AND d.doc ? 'hold_id' AND NOT EXISTS
          (SELECT 1 FROM holds h WHERE h.show_id::text || '-' || h.id::text = d.doc->>'hold_id'
              AND h.user_id = d.doc->>'user_id')"""),
    ("an idempotency record names a booking that does not exist or differs",
     """SELECT k.key FROM idempotency_keys k
          CROSS JOIN LATERAL (SELECT convert_from(k.body, 'UTF8')::jsonb AS doc) d
         WHERE k.status BETWEEN 200 AND 299 AND d.doc ? 'booking_id' AND NOT EXISTS
          (SELECT 1 FROM bookings b WHERE b.show_id::text || '-' || b.id::text = d.doc->>'booking_id'
              AND b.show_id::text || '-' || b.hold_id::text = d.doc->>'hold_id'
              AND b.user_id = d.doc->>'user_id')"""),
    ("an idempotency record names a block whose seats differ",
     """SELECT k.key, d.doc->>'block_id' AS block FROM idempotency_keys k
          CROSS JOIN LATERAL (SELECT convert_from(k.body, 'UTF8')::jsonb AS doc) d
          JOIN blocks b ON b.show_id::text = d.doc->>'show_id' AND b.id::text = d.doc->>'block_id'
         WHERE k.status BETWEEN 200 AND 299 AND d.doc ? 'block_id'
           AND (SELECT array_agg(s.label ORDER BY s.label) FROM seats s
                 WHERE s.show_id = b.show_id AND s.block_id = b.id)
               IS DISTINCT FROM
               (SELECT array_agg(x ORDER BY x) FROM jsonb_array_elements_text(d.doc->'seats') x)"""),
]

# Seat changes the tables imply, per cause; the feed must hold exactly as many.
EXPECTED_EVENTS = """
SELECT 'hold' AS cause, count(*) AS n FROM hold_seats
UNION ALL SELECT 'confirm', count(*) FROM booking_seats
UNION ALL SELECT 'cancel', count(*) FROM booking_seats bs JOIN bookings b
           ON b.show_id = bs.show_id AND b.id = bs.booking_id WHERE b.status = 'cancelled'
UNION ALL SELECT 'release', count(*) FROM hold_seats hs JOIN holds h
           ON h.show_id = hs.show_id AND h.id = hs.hold_id WHERE h.status = 'released'
UNION ALL SELECT 'expire', count(*) FROM hold_seats hs JOIN holds h
           ON h.show_id = hs.show_id AND h.id = hs.hold_id WHERE h.status = 'expired'
"""

FEED_EVENTS = """
SELECT show_id, cause, count(*) AS n FROM seat_events, jsonb_array_elements(seats) e
 GROUP BY show_id, cause
"""

FEED_EVENTS_IN_ORDER = """
SELECT ev.show_id, e.seat->>'label' AS label, e.seat->>'state' AS state,
       e.seat->>'version' AS version
  FROM seat_events ev, jsonb_array_elements(ev.seats) e(seat)
 ORDER BY ev.xid, ev.id
"""

SEAT_STATES = """
SELECT show_id, label,
       CASE WHEN booking_id IS NOT NULL THEN 'booked'
            WHEN hold_id IS NOT NULL THEN 'held'
            WHEN block_id IS NOT NULL THEN 'blocked' ELSE 'available' END AS state,
       xmin::text AS version
  FROM seats
"""


# Blocks as they are now (an unblock deletes the row), and the seats blocked now per show.
BLOCKS = """
SELECT b.show_id::text AS show, b.id::text AS block_id, b.reason,
       (SELECT array_agg(s.label ORDER BY s.label) FROM seats s
         WHERE s.show_id = b.show_id AND s.block_id = b.id) AS seats
  FROM blocks b
"""

BLOCKED_NOW = """
SELECT show_id, count(*) AS n FROM seats WHERE block_id IS NOT NULL GROUP BY show_id
"""

FEED_BLOCKS = """
SELECT show_id, cause, count(*) AS n FROM seat_events, jsonb_array_elements(seats) e
 WHERE cause IN ('block', 'unblock') GROUP BY show_id, cause
"""

SHOWS = "SELECT id::text AS show, default_ticket_type, max_seats_per_user FROM shows"


def read_logs(paths):
    recs = []
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    # A torn last line (the writer was killed mid-write) is not an ack.
                    pass
    return recs


def check_stream(db, args, path, problems):
    """The event stream against the table: every event of the show, once, in order."""
    def received():
        try:
            return [line.split()[1] for line in open(path) if line.strip()]
        except OSError:
            return []
    # Positions compare as (xid8, id) in SQL: the table's order is the truth.
    sql = (f"SELECT xid::text || '.' || id AS pos FROM seat_events WHERE show_id = {int(args.show)} "
           "ORDER BY xid, id")
    # The stream may trail the table by a moment (the sweeper writes until the end).
    deadline = time.time() + 15
    while True:
        stored = [r["pos"] for r in db.rows(sql)]
        got = received()
        if got == stored or time.time() > deadline:
            break
        time.sleep(0.25)
    summary = {"events": len(stored), "received": len(got), "distinct": len(set(got))}
    if got != stored:
        dup = len(got) - len(set(got))
        missing = [p for p in stored if p not in set(got)]
        first_bad = next((i for i, (a, b) in enumerate(zip(got, stored)) if a != b),
                         min(len(got), len(stored)))
        problems.append(f"the event stream {path} differs from the feed: {len(got)} received, "
                        f"{len(stored)} stored, {dup} repeated, {len(missing)} missing "
                        f"(e.g. {missing[:3]}), first difference at #{first_bad}: "
                        f"{got[first_bad:first_bad + 2]} vs {stored[first_bad:first_bad + 2]}")
    if args.straddle is not None:
        xids = [int(p.split(".")[0]) for p in stored]
        summary["xids"] = [min(xids), max(xids)] if xids else []
        if not xids or not (min(xids) < args.straddle <= max(xids)):
            problems.append(f"the show's events do not straddle transaction id {args.straddle} "
                            f"({summary.get('xids')}): the check did not cross it")
    return summary


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", required=True)
    p.add_argument("--log", action="append", default=[])
    p.add_argument("--sweep-wait", type=float, default=10.0)
    p.add_argument("--json")
    p.add_argument("--sse", action="append", default=[],
                   help="ids received by an event stream of --show (may be repeated)")
    p.add_argument("--show")
    p.add_argument("--straddle", type=int, help="transaction id the show's events must straddle")
    args = p.parse_args()
    db = Db(args.db)
    problems = []

    # Let the sweeper catch up: no active hold may stay past its expiry.
    deadline = time.time() + args.sweep_wait
    while True:
        overdue = db.value("SELECT count(*) FROM holds WHERE status = 'active' "
                           "AND expires_at < now() - interval '200 milliseconds'")
        if overdue == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    if overdue:
        problems.append(f"{overdue} active holds are past their expiry {args.sweep_wait} s "
                        "after the load stopped (the sweeper did not run)")

    HOLDS = """SELECT h.show_id::text || '-' || h.id::text AS hid, h.user_id, h.status,
                  h.show_id::text AS show, h.total,
                  (SELECT array_agg(s.label ORDER BY s.label) FROM hold_seats hs JOIN seats s
                     ON s.show_id = hs.show_id AND s.id = hs.seat_id
                    WHERE hs.show_id = h.show_id AND hs.hold_id = h.id) AS seats,
                  (SELECT json_agg(json_build_object('seat', s.label, 'type', hs.ticket_type,
                                                     'price', hs.price))
                     FROM hold_seats hs JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
                    WHERE hs.show_id = h.show_id AND hs.hold_id = h.id) AS tickets
             FROM holds h"""
    BOOKINGS = """SELECT b.show_id::text || '-' || b.id::text AS bid,
                  b.show_id::text || '-' || b.hold_id::text AS hid, b.user_id, b.status, b.total,
                  (SELECT array_agg(s.label ORDER BY s.label) FROM booking_seats bs JOIN seats s
                     ON s.show_id = bs.show_id AND s.id = bs.seat_id
                    WHERE bs.show_id = b.show_id AND bs.booking_id = b.id) AS seats
             FROM bookings b"""
    results = db.snapshot([sql for _, sql in TABLE_CHECKS] + [
        EXPECTED_EVENTS, FEED_EVENTS, FEED_EVENTS_IN_ORDER, SEAT_STATES, HOLDS, BOOKINGS,
        BLOCKS, BLOCKED_NOW, FEED_BLOCKS, SHOWS])
    checks = results[:len(TABLE_CHECKS)]
    (expected_rows, feed_rows, events_in_order, seat_states, hold_rows,
     booking_rows, block_rows, blocked_now_rows, feed_block_rows,
     show_rows) = results[len(TABLE_CHECKS):]
    for (what, _), rows in zip(TABLE_CHECKS, checks):
        if rows:
            problems.append(f"{what}: {len(rows)} rows, e.g. {rows[:3]}")

    expected = {r["cause"]: r["n"] for r in expected_rows}
    got = Counter()
    for r in feed_rows:
        got[r["cause"]] += r["n"]
    for cause, n in expected.items():
        # A lapsed hold's seat may be taken by a new hold before the sweeper comes: that
        # change is the new hold's event, and the sweeper has nothing left to publish.
        if got.get(cause, 0) != n and not (cause == "expire" and got.get(cause, 0) < n):
            problems.append(f"the feed has {got.get(cause, 0)} '{cause}' seat changes, "
                            f"the tables imply {n} (one event per change)")
    # Blocks: an unblock deletes the block's row, so the tables keep only the blocks of
    # now. What they still prove: every seat blocked now had its 'block' change, and
    # every 'block' change not undone by an 'unblock' change is a seat blocked now.
    blocked_now = {str(r["show_id"]): r["n"] for r in blocked_now_rows}
    feed_blocks = defaultdict(Counter)
    for r in feed_block_rows:
        feed_blocks[str(r["show_id"])][r["cause"]] += r["n"]
    for show in sorted(set(blocked_now) | set(feed_blocks), key=int):
        b, u, now_n = feed_blocks[show]["block"], feed_blocks[show]["unblock"], blocked_now.get(show, 0)
        if b != u + now_n:
            problems.append(f"show {show}: the feed has {b} 'block' seat changes and {u} 'unblock' "
                            f"ones, but {now_n} seats are blocked now (block = unblock + blocked)")
    feed_block_total = sum(c["block"] for c in feed_blocks.values())
    feed_unblock_total = sum(c["unblock"] for c in feed_blocks.values())
    # Each seat's events, in feed order, must follow the seat's life (no change twice,
    # none skipped): available -> held -> (held by a newer hold | booked | available),
    # booked -> available; a block takes an available seat (or one whose hold has
    # lapsed), an unblock makes it available again.
    allowed = {("available", "held"), ("held", "held"), ("held", "booked"),
               ("held", "available"), ("booked", "available"),
               ("available", "blocked"), ("held", "blocked"), ("blocked", "available")}
    folded = {}
    broken = []
    for e in events_in_order:
        key = (e["show_id"], e["label"])
        prev = folded.get(key, ("available", None))
        if (prev[0], e["state"]) not in allowed or prev[1] == e["version"]:
            broken.append({"seat": e["label"], "from": prev, "to": [e["state"], e["version"]]})
        folded[key] = (e["state"], e["version"])
    if broken:
        problems.append(f"the feed has {len(broken)} changes a seat cannot make "
                        f"(or the same change twice), e.g. {broken[:3]}")
    bad = []
    for st in seat_states:
        last = folded.get((st["show_id"], st["label"]))
        if last is None and st["state"] == "available":
            continue
        if last != (st["state"], st["version"]):
            bad.append({"seat": st["label"], "table": [st["state"], st["version"]], "feed": last})
    if bad:
        problems.append(f"replaying the feed contradicts {len(bad)} seats, e.g. {bad[:3]}")

    # The log of acknowledgements against the database.
    recs = read_logs(args.log)
    holds = {r["hid"]: r for r in hold_rows}
    bookings = {r["bid"]: r for r in booking_rows}
    blocks = {(r["show"], r["block_id"]): r for r in block_rows}
    default_type = {r["show"]: r["default_ticket_type"] for r in show_rows}
    tried = defaultdict(set)
    acks = Counter()
    answers = Counter()
    refusals = Counter()
    unexpected = []
    for r in recs:
        op = r.get("op")
        if op == "try":
            if r["what"] == "block":
                tried["block"].add((r["show"], tuple(sorted(r["seats"]))))
            elif r["what"] == "unblock":
                tried["unblock"].add((r["show"], r["block_id"]))
            else:
                tried[r["what"]].add(r.get("hold_id") or r.get("booking_id"))
        elif op == "answer":
            answers[r["status"]] += 1
            if r.get("error"):
                refusals[f"{r['status']} {r['error']}"] += 1
        elif op == "unexpected":
            unexpected.append(r)

    def tickets_of(ts):
        return sorted((t["seat"], t["type"], t.get("price")) for t in ts or [])

    lost = 0
    acked_blocks = {}
    for r in recs:
        if r.get("op") != "ack":
            continue
        what = r["what"]
        acks[what] += 1
        if what == "hold":
            h = holds.get(r["hold_id"])
            if h is None:
                lost += 1
                problems.append(f"acknowledged hold {r['hold_id']} is not in the database")
            elif h["user_id"] != r["user"] or sorted(h["seats"] or []) != r["seats"]:
                problems.append(f"hold {r['hold_id']} differs from its acknowledgement: "
                                f"{h['user_id']} {h['seats']} vs {r['user']} {r['seats']}")
            elif "tickets" in r and (tickets_of(h["tickets"]) != tickets_of(r["tickets"])
                                     or h["total"] != r["total"]):
                problems.append(f"hold {r['hold_id']}'s tickets or total differ from its "
                                f"acknowledgement: {h['tickets']} {h['total']} vs "
                                f"{r['tickets']} {r['total']}")
            elif "tickets" in r:
                # Each ticket is of the type asked for its seat, or the show's default.
                asked = r.get("asked_types") or {}
                wrong = [t for t in h["tickets"] or []
                         if t["type"] != asked.get(t["seat"], default_type.get(h["show"]))]
                if wrong:
                    problems.append(f"hold {r['hold_id']} has tickets of types not asked for "
                                    f"{wrong} (asked {asked})")
        elif what == "confirm":
            b = bookings.get(r["booking_id"])
            h = holds.get(r["hold_id"])
            if b is None:
                lost += 1
                problems.append(f"acknowledged booking {r['booking_id']} is not in the database")
            elif b["hid"] != r["hold_id"] or sorted(b["seats"] or []) != r["seats"]:
                problems.append(f"booking {r['booking_id']} differs from its acknowledgement")
            elif "tickets" in r and (b["total"] != r["total"] or h is None
                                     or tickets_of(h["tickets"]) != tickets_of(r["tickets"])):
                problems.append(f"booking {r['booking_id']}'s tickets or total differ from its "
                                f"acknowledgement: {r['tickets']} {r['total']}")
            elif b["status"] != "confirmed" and r["booking_id"] not in tried["cancel"]:
                problems.append(f"booking {r['booking_id']} is {b['status']} but nobody cancelled it")
        elif what == "cancel":
            b = bookings.get(r["booking_id"])
            if b is None or b["status"] != "cancelled":
                lost += 1
                problems.append(f"acknowledged cancel of {r['booking_id']} is not in the database "
                                f"({b and b['status']})")
        elif what == "release":
            h = holds.get(r["hold_id"])
            if h is None or h["status"] not in ("released", "expired"):
                lost += 1
                problems.append(f"acknowledged release of {r['hold_id']} is not in the database "
                                f"({h and h['status']})")
        elif what == "block":
            key = (r["show"], r["block_id"])
            acked_blocks[key] = r
            b = blocks.get(key)
            if b is None and key not in tried["unblock"]:
                lost += 1
                problems.append(f"acknowledged block {key} is not in the database "
                                "and nobody unblocked it")
            elif b is not None and (sorted(b["seats"] or []) != r["seats"]
                                    or b["reason"] != r["reason"]):
                problems.append(f"block {key} differs from its acknowledgement: "
                                f"{b['seats']} {b['reason']!r} vs {r['seats']} {r['reason']!r}")
        elif what == "unblock":
            key = (r["show"], r["block_id"])
            if key in blocks:
                lost += 1
                problems.append(f"acknowledged unblock of {key} is not in the database: "
                                f"the block still has seats {blocks[key]['seats']}")
    # Nothing happened that nobody asked for (only when this load was the only writer).
    if recs:
        for hid, h in holds.items():
            if h["status"] == "confirmed" and hid not in tried["confirm"]:
                problems.append(f"hold {hid} is confirmed but nobody asked to confirm it")
            if h["status"] == "released" and hid not in tried["release"]:
                problems.append(f"hold {hid} is released but nobody asked to release it")
        for bid, b in bookings.items():
            if b["status"] == "cancelled" and bid not in tried["cancel"]:
                problems.append(f"booking {bid} is cancelled but nobody asked to cancel it")
        # A block not acknowledged must be one whose answer was lost: tried with those
        # seats (the box office never learnt its id, so never unblocked it).
        found = {k: b for k, b in blocks.items() if k not in acked_blocks}
        for key, b in found.items():
            if (key[0], tuple(sorted(b["seats"] or []))) not in tried["block"]:
                problems.append(f"block {key} ({b['seats']}, {b['reason']!r}) was never asked for")
        # So the feed's block changes are the seats of every block acknowledged or found,
        # and its unblock changes those of the acknowledged blocks that are gone.
        want_block = (sum(len(r["seats"]) for r in acked_blocks.values())
                      + sum(len(b["seats"] or []) for b in found.values()))
        want_unblock = sum(len(r["seats"]) for k, r in acked_blocks.items() if k not in blocks)
        if (feed_block_total, feed_unblock_total) != (want_block, want_unblock):
            problems.append(f"the feed has {feed_block_total} 'block' and {feed_unblock_total} "
                            f"'unblock' seat changes; the log and the tables imply "
                            f"{want_block} and {want_unblock}")
    for u in unexpected[:5]:
        problems.append(f"an answer the load did not expect: {u}")
    if len(unexpected) > 5:
        problems.append(f"... and {len(unexpected) - 5} more answers the load did not expect")
    sse_summary = [check_stream(db, args, path, problems) for path in args.sse] or None

    acked = [r for r in recs if r.get("op") == "ack"]
    summary = {
        "requests": sum(answers.values()),
        # Acknowledged only after retrying with the same idempotency key, and of those,
        # answered from the stored record: the first attempt had committed in doubt.
        "acked_after_retry": sum(1 for r in acked if r.get("attempts", 1) > 1),
        "in_doubt_commits_replayed": sum(1 for r in acked if r.get("replayed") and r.get("attempts", 1) > 1),
        "answers_by_status": {str(k): v for k, v in sorted(answers.items())},
        "acknowledged": dict(acks),
        # Final 4xx answers by error code (user_limit_reached, ticket_type_unavailable,
        # seats_unavailable: normal answers of the load).
        "refusals": dict(sorted(refusals.items())),
        "blocks_in_db": len(blocks),
        "seats_blocked_now": sum(blocked_now.values()),
        "feed_block_seat_changes": feed_block_total,
        "feed_unblock_seat_changes": feed_unblock_total,
        # Holds acknowledged without an idempotency key (written by the hold batches).
        "holds_acked_unkeyed": sum(1 for r in acked if r["what"] == "hold" and r.get("keyed") is False),
        "lost": lost,
        "holds_in_db": len(holds),
        "bookings_in_db": len(bookings),
        "problems": problems,
    }
    if sse_summary:
        summary["event_stream"] = sse_summary
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    print(f"audit: {summary['requests']} requests, answers {summary['answers_by_status']}, "
          f"acknowledged {dict(acks)} ({summary['holds_acked_unkeyed']} holds without a key), "
          f"lost {lost}, after retry {summary['acked_after_retry']} "
          f"(in-doubt commits replayed {summary['in_doubt_commits_replayed']}), "
          f"{len(holds)} holds and {len(bookings)} bookings in the database")
    print(f"audit: refusals {summary['refusals']}; {len(blocks)} blocks "
          f"({summary['seats_blocked_now']} seats) in the database, feed seat changes "
          f"block {feed_block_total} / unblock {feed_unblock_total}")
    if sse_summary:
        print(f"audit: event stream: {sse_summary}")
    for pr in problems:
        print(f"audit: PROBLEM: {pr}")
    if problems:
        sys.exit(1)
    print("audit: passed")


if __name__ == "__main__":
    main()

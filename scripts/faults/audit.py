#!/usr/bin/env python3
"""The fault suite's audit: the database against DESIGN.md's invariants and the log of
every acknowledgement the load received.

    audit.py --db URL --log FILE [--log FILE ...] [--sweep-wait SECS] [--json OUT]
             [--url SERVER ...] [--show ID --sse FILE ... --sse-data FILE ...]
             [--moved-show ID ...]

Checks, printing each problem and exiting 1 when there is any:
- no seat in two live holds/bookings (the tables and the seat pointers agree);
- no partial hold or booking (an active hold owns all its seats, a confirmed booking
  all its live ones; every seat pointing at a booking is a live row of it);
- no blocked seat in an unexpired active hold or a live booking; no block without seats;
- no user with more seats of a show (unexpired active holds plus live bookings) than
  the show's max_seats_per_user;
- every ticket (hold_seats row) of a type the show sells for its seat's category, at
  that type's price for the category (ticket_prices), booked tickets (booking_seats)
  too; every hold's total the sum of its tickets;
- bookings that change (issue 16, migrations/V7): a booking has a row of every seat
  of its hold, and its other rows are seats (taken by exchanges); a confirmed booking
  has at least one live row and its total is the sum of their prices; a cancelled one
  has none, and its total is the price of the rows its cancel ended; no row of it ended
  after its cancel; an `exchange` event both gives back and takes seats (entries
  `available` and `booked`, no places);
- every acknowledged hold, confirm, cancel, release, block and unblock is in the
  database as it was acknowledged (ids, user, seats, tickets, total, status; a block's
  seats blocked by it unless an unblock of it was tried; an unblocked block gone), and
  nothing happened that nobody asked for (no block but those tried; no hold released
  but by a release or a remove, no booking cancelled but by a cancel);
- every hold and booking the load changed (adds, removes, new ticket types, late
  confirms, partial cancels and their repeats, exchanges, cancels), followed through the
  log in order: each acknowledged change is the state before it plus exactly what it
  asked (seats added or taken, places counted, the highest-numbered places given back,
  the total its tickets' sum and, for an exchange, the old total plus its
  `difference`), a refused one changes nothing, and the database ends as the last one
  acknowledged left it (or, when the last answer never came, as it would have left
  it): an added seat is in the hold, a seat taken by an exchange is the booking's, a
  seat cancelled is not;
- no active hold past its expiry once the sweeper has had `--sweep-wait` seconds;
- idempotency records agree with the holds, bookings and blocks they answered (a
  confirm's that made a booking lists its hold's seats and places; with a log, the
  latest answer of each hold and booking lists what it has now);
- the change feed has one event per seat change (for holds: hold + add - remove
  changes = hold_seats rows; confirms = booking rows of their holds' seats; confirm +
  exchange `booked` - cancel - exchange `available` = live booking rows; cancels and
  exchanges at least one per row they ended or took, with a log exactly, and the
  adds, removes and exchanges those the log acknowledged; for blocks, whose
  rows are deleted by an unblock: block seat-changes = unblock seat-changes + seats
  blocked now, and with a log, exactly the seats of the blocks acknowledged or found,
  and unblock seat-changes exactly the seats of the acknowledged blocks now gone), and
  replaying it in feed order gives every seat's current state (available, held,
  booked, blocked) and version, each entry in its cause's state (available -> booked
  only by an exchange or a late confirm);
- cancelled shows (issue 17): the holds a show's cancellation released and the booking
  rows it ended (`released_at`, `ended_at` the show's `cancelled_at`) are its
  `show_cancel` event's, not `release` or `cancel` changes, and nobody asked for them
  by name; its event rewrites every seat (available -> available, blocked -> blocked
  are its moves);
- standing areas (issue 15), per area of every show: as many place rows as its
  capacity, numbered 1 to capacity (`{area}-{n}`, of the area's category); held (rows
  pointing at a hold) plus booked (rows pointing at a booking) never over the capacity;
  no hold or booking of more seats and places than --max-per-hold; every acknowledged
  hold has exactly the seats, places (labels) and area counts it was acknowledged with
  (all or none: none with fewer), and every acknowledged booking not cancelled owns
  exactly its acknowledged places now; every stored idempotency answer of a hold or
  booking lists exactly its seats, places and area counts; the feed's place changes,
  folded per place (new state +1, old state -1), sum from the capacity to each area's
  counts of now; with --url, each server's `GET /shows/{id}/areas` and seat map
  `areas` give the database's counts (and price) once they settle. Places follow the
  seats' feed replay too, but their order in the feed is counted, not failed (places
  are exempt from the written-before-us rule, DESIGN.md): each place's current state
  and version must be one an event of it published;
- no answer of the load was a `500` (a fault gives `503` or no answer);
- with --sse-data FILE (the events' JSON, as written by `probe.py sse --data`), each
  event's `areas` deltas are exactly the fold of its place changes in the table, and
  the deltas from the stream's start sum to the show's counts (of the same snapshot);
- with --sse FILE --show ID (the ids an event stream of the show received, as written
  by `probe.py sse`, which resumes with Last-Event-ID whenever its connection drops;
  --sse may be given once a stream):
  the stream brought every event of the show, each once, in feed order (the xid8
  order of the table), from the first event on; with --straddle N, the show's events
  have transaction ids on both sides of N (so the check ran across that boundary).
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from urllib.parse import urlparse


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
        """Rows of `sql` as dicts (the query is wrapped in json_agg).

        The query is a MATERIALIZED CTE: Citus runs a subquery it pushes down to the
        workers as an anonymous record, so that json_agg of it would name the columns
        f1, f2, ...; a CTE's result keeps its names. PostgreSQL gives the same rows."""
        wrapped = f"WITH q AS MATERIALIZED ({sql}) SELECT coalesce(json_agg(q), '[]'::json) FROM q"
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
            script.append(f"WITH q AS MATERIALIZED ({sql}) "
                          "SELECT replace(coalesce(json_agg(q), '[]'::json)::text, E'\\n', ' ') "
                          "FROM q;")
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


# load.py names each confirm's external_ref after its hold, so a booking whose
# ref is another's got the wrong confirm's body (a replay gone astray). Only
# load.py's convention: a fuzzer's confirms name whatever they like (--any-external-ref).
EXTERNAL_REF_CHECK = (
    "a booking's external_ref is not the one its confirm named (load.py names "
    "'order-' and the hold id, or nothing)",
    """SELECT b.show_id, b.id, b.external_ref FROM bookings b
        WHERE b.external_ref IS NOT NULL
          AND b.external_ref <> 'order-' || b.show_id || '-' || b.hold_id::text""")

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
           WHERE b.status = 'confirmed' AND bs.live) x
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
    ("a confirmed booking does not own all its live seats (partial booking)",
     """SELECT b.id, s.label FROM bookings b JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
          JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
         WHERE b.status = 'confirmed' AND bs.live AND s.booking_id IS DISTINCT FROM b.id"""),
    ("a seat points at a booking that has no live row of it (cancelled or exchanged "
     "away, yet still taken)",
     """SELECT s.show_id, s.label, s.booking_id FROM seats s WHERE s.booking_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM booking_seats bs WHERE bs.show_id = s.show_id
                              AND bs.booking_id = s.booking_id AND bs.seat_id = s.id AND bs.live)"""),
    ("a confirmed booking has no live seat or place left",
     """SELECT b.show_id, b.id FROM bookings b WHERE b.status = 'confirmed' AND NOT EXISTS
          (SELECT 1 FROM booking_seats bs WHERE bs.show_id = b.show_id AND bs.booking_id = b.id
              AND bs.live)"""),
    ("a confirmed booking's total is not the sum of its live tickets",
     """SELECT b.show_id, b.id, b.total, sum(coalesce(bs.price, 0)) AS tickets FROM bookings b
          JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id AND bs.live
         WHERE b.status = 'confirmed'
         GROUP BY b.show_id, b.id, b.total HAVING b.total <> sum(coalesce(bs.price, 0))"""),
    ("a cancelled booking's total is not the price of what it had when cancelled, or it "
     "had nothing then",
     """SELECT b.show_id, b.id, b.total,
               (SELECT sum(coalesce(bs.price, 0)) FROM booking_seats bs
                 WHERE bs.show_id = b.show_id AND bs.booking_id = b.id
                   AND bs.ended_at = b.cancelled_at AND bs.ended_by = 'cancel') AS tickets
          FROM bookings b WHERE b.status = 'cancelled'
           AND b.total IS DISTINCT FROM
               (SELECT sum(coalesce(bs.price, 0)) FROM booking_seats bs
                 WHERE bs.show_id = b.show_id AND bs.booking_id = b.id
                   AND bs.ended_at = b.cancelled_at AND bs.ended_by = 'cancel')"""),
    ("a cancelled booking has a seat that left it after its cancel",
     """SELECT b.show_id, b.id, bs.seat_id, bs.ended_at, bs.ended_by FROM bookings b
          JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
         WHERE b.status = 'cancelled' AND bs.ended_at > b.cancelled_at"""),
    ("a cancelled booking still has live seats",
     """SELECT b.id FROM bookings b JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
         WHERE b.status = 'cancelled' AND bs.live"""),
    ("a confirmed hold has no booking, or a booking's hold is not confirmed",
     """SELECT h.id FROM holds h LEFT JOIN bookings b ON b.show_id = h.show_id AND b.hold_id = h.id
         WHERE (h.status = 'confirmed') <> (b.id IS NOT NULL)"""),
    # A booking's rows are its hold's seats (confirmed with it), and seats exchanges
    # took: the hold keeps its rows (hold_seats is not changed by exchanges or cancels).
    ("a booking has no row of a seat of its hold",
     """SELECT b.id, hs.seat_id FROM bookings b
          JOIN hold_seats hs ON hs.show_id = b.show_id AND hs.hold_id = b.hold_id
          LEFT JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
               AND bs.seat_id = hs.seat_id
         WHERE bs.seat_id IS NULL"""),
    ("a booking row of a seat its hold did not have is not a seat (exchanges take seats, "
     "not places)",
     """SELECT b.id, s.label FROM bookings b
          JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
          JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
         WHERE s.area IS NOT NULL AND NOT EXISTS
               (SELECT 1 FROM hold_seats hs WHERE hs.show_id = b.show_id
                   AND hs.hold_id = b.hold_id AND hs.seat_id = bs.seat_id)"""),
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
    ("a booked ticket's type is not sold for its seat's category, or its price is not "
     "that type's (booking_seats: as the hold sold it, or as an exchange did)",
     """SELECT bs.show_id, bs.booking_id, s.label, s.category, bs.ticket_type, bs.price,
               tp.price AS listed FROM booking_seats bs
          JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
          LEFT JOIN ticket_prices tp ON tp.show_id = bs.show_id AND tp.type = bs.ticket_type
               AND tp.category = s.category
         WHERE tp.type IS NULL OR tp.price IS DISTINCT FROM bs.price"""),
    ("a hold's total is not the sum of its tickets",
     """SELECT h.show_id, h.id, h.total, sum(coalesce(hs.price, 0)) AS tickets FROM holds h
          JOIN hold_seats hs ON hs.show_id = h.show_id AND hs.hold_id = h.id
         GROUP BY h.show_id, h.id, h.total HAVING h.total <> sum(coalesce(hs.price, 0))"""),
    ("a booking's user differs from its hold's",
     """SELECT b.id FROM bookings b JOIN holds h ON h.show_id = b.show_id AND h.id = b.hold_id
         WHERE b.user_id <> h.user_id"""),
    ("an exchange event does not both give back and take seats (one event, each entry "
     "with its own state)",
     """SELECT ev.show_id, ev.id FROM seat_events ev WHERE ev.cause = 'exchange' AND NOT (
          EXISTS (SELECT 1 FROM jsonb_array_elements(ev.seats) e WHERE e->>'state' = 'available')
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(ev.seats) e WHERE e->>'state' = 'booked')
          AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(ev.seats) e
                           WHERE e->>'state' NOT IN ('available', 'booked') OR e ? 'area'))"""),
    # On Citus (issue 20) these join a key to its show's rows by the show (a key is
    # stored with the show it was used on, V14), and decode the body in a derived table:
    # Citus refuses joins across shows and a LATERAL subquery without FROM that calls a
    # function that is not IMMUTABLE. On plain PostgreSQL the same rows.
    ("an idempotency record names a hold that does not exist or is another user's",
     """SELECT k.key FROM (SELECT k.*, convert_from(k.body, 'UTF8')::jsonb AS doc
                  FROM idempotency_keys k) k
         WHERE k.status BETWEEN 200 AND 299 AND k.doc ? 'hold_id' AND NOT EXISTS
          (SELECT 1 FROM holds h WHERE h.show_id = k.show_id
              AND h.show_id::text || '-' || h.id::text = k.doc->>'hold_id'
              AND h.user_id = k.doc->>'user_id')"""),
    ("an idempotency record names a booking that does not exist or differs",
     """SELECT k.key FROM (SELECT k.*, convert_from(k.body, 'UTF8')::jsonb AS doc
                  FROM idempotency_keys k) k
         WHERE k.status BETWEEN 200 AND 299 AND k.doc ? 'booking_id' AND NOT EXISTS
          (SELECT 1 FROM bookings b WHERE b.show_id = k.show_id
              AND b.show_id::text || '-' || b.id::text = k.doc->>'booking_id'
              AND b.show_id::text || '-' || b.hold_id::text = k.doc->>'hold_id'
              AND b.user_id = k.doc->>'user_id')"""),
    ("an idempotency record names a block whose seats differ",
     """SELECT k.key, k.doc->>'block_id' AS block FROM (SELECT k.*, convert_from(k.body, 'UTF8')::jsonb AS doc
                  FROM idempotency_keys k) k
          JOIN blocks b ON b.show_id = k.show_id AND b.show_id::text = k.doc->>'show_id' AND b.id::text = k.doc->>'block_id'
         WHERE k.status BETWEEN 200 AND 299 AND k.doc ? 'block_id'
           AND (SELECT array_agg(s.label ORDER BY s.label) FROM seats s
                 WHERE s.show_id = b.show_id AND s.block_id = b.id)
               IS DISTINCT FROM
               (SELECT array_agg(x ORDER BY x) FROM jsonb_array_elements_text(k.doc->'seats') x)"""),
    ("a standing area's place is blocked, or has a row or section",
     """SELECT s.show_id, s.label FROM seats s WHERE s.area IS NOT NULL
          AND (s.block_id IS NOT NULL OR s.row_label IS NOT NULL OR s.section IS NOT NULL)"""),
]

# Seats and places of a hold, or of a booking (its live rows, or what it had when
# cancelled), beyond the server's MAX_SEATS_PER_HOLD (formatted with --max-per-hold).
OVERSIZED = """
SELECT 'hold' AS what, show_id, hold_id::text AS id, count(*) AS n FROM hold_seats
 GROUP BY show_id, hold_id HAVING count(*) > {max}
UNION ALL
SELECT 'booking', bs.show_id, bs.booking_id::text, count(*) FROM booking_seats bs
  JOIN bookings b ON b.show_id = bs.show_id AND b.id = bs.booking_id
 WHERE bs.live OR bs.ended_at = b.cancelled_at
 GROUP BY bs.show_id, bs.booking_id HAVING count(*) > {max}
"""

# Each standing area with its place rows counted as the server counts them (held: rows
# pointing at a hold, lapsed or not; booked: rows pointing at a booking), and what the
# rows should be (one per number 1..capacity, labelled {area}-{n}, of its category).
AREA_COUNTS = """
SELECT a.show_id::text AS show, a.area, a.position, a.capacity, a.category,
       tp.price,
       count(s.id) AS places, count(DISTINCT s.number) AS numbers,
       coalesce(min(s.number), 0) AS min_number, coalesce(max(s.number), 0) AS max_number,
       count(s.id) FILTER (WHERE s.hold_id IS NOT NULL) AS held,
       count(s.id) FILTER (WHERE s.booking_id IS NOT NULL) AS booked,
       count(s.id) FILTER (WHERE s.hold_id IS NOT NULL AND h.expires_at <= now()) AS held_lapsed,
       count(s.id) FILTER (WHERE s.label IS DISTINCT FROM a.area || '-' || s.number
                              OR s.category IS DISTINCT FROM a.category) AS misnamed
  FROM areas a
  JOIN shows sh ON sh.id = a.show_id
  LEFT JOIN ticket_prices tp ON tp.show_id = a.show_id AND tp.type = sh.default_ticket_type
       AND tp.category = a.category
  LEFT JOIN seats s ON s.show_id = a.show_id AND s.area = a.area
  LEFT JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
 GROUP BY a.show_id, a.area, a.position, a.capacity, a.category, tp.price
 ORDER BY a.show_id, a.position
"""

# Every place change of the feed: one row per place of each event.
FEED_PLACES = """
SELECT ev.show_id::text AS show, ev.xid::text || '.' || ev.id AS pos, ev.cause,
       e->>'area' AS area, e->>'state' AS state, e->>'was' AS was
  FROM seat_events ev, jsonb_array_elements(ev.seats) e
 WHERE e ? 'area'
"""

# What a place was before a change of each cause, unless its event says (`was`).
PLACE_WAS = {"hold": "available", "confirm": "held", "release": "held", "expire": "held",
             "cancel": "booked", "block": "available", "unblock": "available",
             "add": "available", "remove": "held", "exchange": "booked",
             # Issue 17: its entries always say.
             "show_cancel": "held"}

# The state each cause gives a seat (an exchange frees some and books others).
CAUSE_STATES = {"hold": {"held"}, "add": {"held"}, "confirm": {"booked"},
                "release": {"available"}, "expire": {"available"}, "remove": {"available"},
                "cancel": {"available"}, "exchange": {"available", "booked"},
                "block": {"blocked"}, "unblock": {"available"},
                # Issue 17: a show's cancellation lists every seat, blocked ones as such.
                "show_cancel": {"available", "blocked"}}

# Seat changes the tables imply. Every hold_seats row was written by a hold or an add,
# and a remove deletes the rows it frees (so hold + add = these rows + remove); a
# release or an expiry leaves the rows. Issue 17: a show's cancellation releases holds
# and ends booking rows (`released_at`, `ended_at` the show's `cancelled_at`) in its one
# `show_cancel` event, not in `release` or `cancel` ones. A booking's rows of its hold's seats were
# written by its confirm; its other rows by exchanges that took seats; a row ends by
# a cancel or an exchange (ended_by), and an exchange may take back a seat the booking
# had (the row lives again), so the ends and exchange takes are at least these rows.
EXPECTED_EVENTS = """
SELECT 'hold_rows' AS what, count(*) AS n FROM hold_seats
UNION ALL SELECT 'confirm', count(*) FROM booking_seats bs
  JOIN bookings b ON b.show_id = bs.show_id AND b.id = bs.booking_id
  JOIN hold_seats hs ON hs.show_id = b.show_id AND hs.hold_id = b.hold_id AND hs.seat_id = bs.seat_id
UNION ALL SELECT 'exchange_rows', count(*) FROM booking_seats bs
  JOIN bookings b ON b.show_id = bs.show_id AND b.id = bs.booking_id
 WHERE NOT EXISTS (SELECT 1 FROM hold_seats hs WHERE hs.show_id = b.show_id
                      AND hs.hold_id = b.hold_id AND hs.seat_id = bs.seat_id)
UNION ALL SELECT 'ended_by_cancel', count(*) FROM booking_seats WHERE ended_by = 'cancel'
UNION ALL SELECT 'ended_by_exchange', count(*) FROM booking_seats WHERE ended_by = 'exchange'
UNION ALL SELECT 'live_rows', count(*) FROM booking_seats WHERE live
UNION ALL SELECT 'release', count(*) FROM hold_seats hs JOIN holds h
           ON h.show_id = hs.show_id AND h.id = hs.hold_id WHERE h.status = 'released'
           AND NOT coalesce(h.released_at = (SELECT sh.cancelled_at FROM shows sh
                                               WHERE sh.id = h.show_id), false)
UNION ALL SELECT 'ended_by_show_cancel', count(*) FROM booking_seats bs
  JOIN bookings b ON b.show_id = bs.show_id AND b.id = bs.booking_id
  JOIN shows sh ON sh.id = b.show_id
 WHERE bs.ended_by = 'cancel' AND bs.ended_at = sh.cancelled_at
   AND b.cancelled_at = sh.cancelled_at
UNION ALL SELECT 'expire', count(*) FROM hold_seats hs JOIN holds h
           ON h.show_id = hs.show_id AND h.id = hs.hold_id WHERE h.status = 'expired'
UNION ALL SELECT 'expire_then_late_confirm', count(*) FROM hold_seats hs
  JOIN holds h ON h.show_id = hs.show_id AND h.id = hs.hold_id
  JOIN bookings b ON b.show_id = h.show_id AND b.hold_id = h.id
 WHERE h.status = 'confirmed' AND b.confirmed_at >= h.expires_at
"""

# Seat changes of the feed per cause and state.
FEED_EVENTS = """
SELECT show_id, cause, e->>'state' AS state, count(*) AS n
  FROM seat_events, jsonb_array_elements(seats) e
 GROUP BY show_id, cause, e->>'state'
"""

FEED_EVENTS_IN_ORDER = """
SELECT ev.show_id, ev.cause, e.seat->>'label' AS label, e.seat->>'state' AS state,
       e.seat->>'version' AS version, e.seat->>'area' AS area
  FROM seat_events ev, jsonb_array_elements(ev.seats) e(seat)
 ORDER BY ev.xid, ev.id
"""

SEAT_STATES = """
SELECT show_id, label,
       CASE WHEN booking_id IS NOT NULL THEN 'booked'
            WHEN hold_id IS NOT NULL THEN 'held'
            WHEN block_id IS NOT NULL THEN 'blocked' ELSE 'available' END AS state,
       xmin::text AS version, area
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

# Stored 2xx answers naming a hold or a booking: what they list, for the Python checks
# (check_records): the key (the load's keys start with the operation's name), when.
RECORDS = """
SELECT k.scope, k.key, k.status, (extract(epoch FROM k.created_at) * 1000000)::bigint AS at,
       k.doc->>'hold_id' AS hold, k.doc->>'booking_id' AS booking,
       k.doc->>'status' AS doc_status, k.doc ? 'difference' AS exchange,
       k.doc ? 'cancelled' AS cancel,
       (SELECT array_agg(t->>'seat' ORDER BY t->>'seat')
          FROM jsonb_array_elements(k.doc->'tickets') t) AS labels,
       k.doc->'areas' AS areas
  FROM (SELECT k.*, convert_from(k.body, 'UTF8')::jsonb AS doc
          FROM idempotency_keys k) k
 WHERE k.status BETWEEN 200 AND 299 AND jsonb_typeof(k.doc) = 'object'
   AND (k.doc ? 'hold_id' OR k.doc ? 'booking_id') AND k.doc ? 'tickets'
"""


# ------------------------------------------------------- changes of holds and bookings

# The changes the load makes to a hold (issue 16) and to a booking, as its log names them.
HOLD_CHANGES = ("add", "remove", "retype")
BOOKING_CHANGES = ("cancel_part", "cancel_repeat", "exchange", "cancel")


def number(place):
    return int(place.rsplit("-", 1)[1])


def highest(places, area, n):
    """The `n` highest-numbered places of `area` among `places` (what a remove or a
    partial cancel of n places of the area gives back)."""
    mine = sorted((l for l in places if l.rsplit("-", 1)[0] == area), key=number)
    return set(mine[len(mine) - n:]) if n > 0 else set()


def counts_by_area(places):
    return dict(Counter(l.rsplit("-", 1)[0] for l in places or []))


def state_from_ack(r):
    """A hold's or booking's state from the load's `ack` of it: a change's `state`, or
    the fields of a hold's or confirm's acknowledgement."""
    if "state" in r:
        st = dict(r["state"])
    else:
        st = {k: r.get(k) for k in ("seats", "places", "areas", "tickets", "total")}
        st["status"] = "confirmed" if r["what"] == "confirm" else "active"
    st["seats"] = sorted(st.get("seats") or [])
    st["places"] = sorted(st.get("places") or [])
    st["areas"] = st.get("areas") or {}
    st["tickets"] = st.get("tickets") or []
    return st


def after(what, prev, body):
    """What a change leaves, from the state before it and what it asked: (status,
    seats, area counts, place labels or None when not known: an add's new numbers).
    Removing or cancelling everything leaves the seats listed as they were, released
    or cancelled."""
    body = body or {}
    seats, places = set(prev["seats"]), set(prev["places"])
    areas = Counter(prev["areas"])
    status = prev["status"]
    asked_seats = set(body.get("seats") or [])
    asked_areas = body.get("areas") or {}
    if what == "add":
        seats |= asked_seats
        for c, n in asked_areas.items():
            areas[c] += n
        places = None
    elif what in ("remove", "cancel_part"):
        seats -= asked_seats
        for c, n in asked_areas.items():
            places -= highest(prev["places"], c, n)
            areas[c] -= n
        if not seats and not places:
            return ("released" if what == "remove" else "cancelled", prev["seats"],
                    prev["areas"], prev["places"])
    elif what == "exchange":
        seats = (seats - set(body.get("release") or [])) | set(body.get("take") or [])
    elif what == "cancel":
        return "cancelled", prev["seats"], prev["areas"], prev["places"]
    return (status, sorted(seats), {c: n for c, n in areas.items() if n > 0},
            None if places is None else sorted(places))


def shape(st):
    return st["status"], st["seats"], st["areas"], st["places"]


def matches(st, want):
    """Whether a state has the status, seats, area counts and (when known) places of
    `want` (as `after` returns)."""
    status, seats, areas, places = want
    return (st["status"] == status and st["seats"] == seats and st["areas"] == areas
            and (places is None or st["places"] == places))


def priced(st):
    return sum(t.get("price") or 0 for t in st["tickets"])


def follow_changes(recs, problems):
    """Follows every hold and booking the load changed through its log, in order: each
    acknowledged change must be the state before it plus what it asked (nothing done
    twice, nothing left out), a refused one changes nothing. Returns, per hold id and
    per booking id, (the state the database must show, the other state it may show
    when the last change's answer never came, or None), the seat changes the feed
    must have for adds, removes and exchanges ({what: [least, most]}), and whether an
    exchange may have taken back a seat its booking had before."""
    per = defaultdict(list)
    for r in recs:
        if r.get("op") not in ("try", "ack", "refused"):
            continue
        what = r.get("what")
        if what in ("hold",) + HOLD_CHANGES:
            per[("hold", r.get("hold_id"))].append(r)
        elif what == "confirm":
            per[("hold", r.get("hold_id"))].append(r)
            if r["op"] == "ack":
                per[("booking", r["booking_id"])].append(r)
        elif what in BOOKING_CHANGES:
            per[("booking", r.get("booking_id"))].append(r)
    finals = {"hold": {}, "booking": {}}
    feed = defaultdict(lambda: [0, 0])
    took_back = 0
    for (kind, oid), ops in per.items():
        first = "hold" if kind == "hold" else "confirm"
        start = next((i for i, r in enumerate(ops) if r["op"] == "ack" and r["what"] == first),
                     None)
        if start is None:
            continue
        st = state_from_ack(ops[start])
        ever = set(st["seats"])
        pending = None
        changed = False
        for r in ops[start + 1:]:
            what, op = r["what"], r["op"]
            changes = HOLD_CHANGES if kind == "hold" else BOOKING_CHANGES
            if what not in changes:
                continue
            if op == "try":
                pending = r
                if what == "exchange" and set(r["body"].get("take") or []) & ever:
                    took_back += 1
                continue
            if pending is None or pending["what"] != what:
                problems.append(f"{kind} {oid}: a {op} of {what} without its try")
                continue
            body = pending.get("body")
            pending = None
            if op == "refused":
                continue
            new = state_from_ack(r)
            want = after(what, st, body)
            why = None
            if not matches(new, want):
                why = f"{shape(new)}, expected {want}"
            elif new["total"] != priced(new):
                why = f"total {new['total']}, its tickets {priced(new)}"
            elif what == "exchange" and new["total"] != st["total"] + (r.get("difference") or 0):
                why = f"total {new['total']}, was {st['total']}, difference {r.get('difference')}"
            elif what in ("cancel_part", "cancel") and new["status"] == "cancelled" \
                    and new["total"] != st["total"]:
                why = f"cancelled at total {new['total']}, it had {st['total']}"
            elif what == "cancel_repeat" and (new["tickets"] != st["tickets"]
                                              or new["total"] != st["total"]):
                why = "a repeat changed the booking"
            if why:
                problems.append(f"acknowledged {what} of {kind} {oid} is not the {kind} before "
                                f"it with what was asked: {why} (asked {body})")
            # Seat changes this change wrote to the feed.
            if what == "add":
                n = (len(new["seats"]) - len(st["seats"])
                     + sum(new["areas"].values()) - sum(st["areas"].values()))
                feed["add"][0] += n
                feed["add"][1] += n
            elif what == "remove" and new["status"] == "active":
                n = len(st["seats"]) - len(new["seats"]) + len(st["places"]) - len(new["places"])
                feed["remove"][0] += n
                feed["remove"][1] += n
            elif what == "exchange":
                for k, n in (("given", len(body.get("release") or [])),
                             ("taken", len(body.get("take") or []))):
                    feed[k][0] += n
                    feed[k][1] += n
                ever |= set(new["seats"])
            st = new
            changed = True
        doubt = None
        if pending is not None:
            # The last change's answer never came (the load gave up after its stop): it
            # may have committed or not.
            what, body = pending["what"], pending.get("body") or {}
            doubt = after(what, st, body)
            if what == "add":
                feed["add"][1] += (len(set(body.get("seats") or []) - set(st["seats"]))
                                   + sum((body.get("areas") or {}).values()))
            elif what == "remove" and doubt[0] == "active":
                feed["remove"][1] += (len(set(body.get("seats") or []) & set(st["seats"]))
                                      + sum((body.get("areas") or {}).values()))
            elif what == "exchange":
                feed["given"][1] += len(body.get("release") or [])
                feed["taken"][1] += len(body.get("take") or [])
        finals[kind][oid] = (st, doubt, changed or doubt is not None)
    return finals, dict(feed), took_back


def check_final(kind, oid, row, final, problems):
    """The database's hold or booking `row` against the state the log left it in.
    Returns how many acknowledged places it lacks (None when it matches)."""
    st, doubt, _ = final
    have = {"status": row["status"], "seats": sorted(row["seats"] or []),
            "places": sorted(row["places"] or []), "tickets": row["tickets"] or [],
            "total": row["total"]}
    have["areas"] = counts_by_area(have["places"])
    tickets = lambda ts: sorted((t["seat"], t["type"], t.get("price")) for t in ts or [])
    # A lapsed hold reads `expired` (or `active` until the sweeper comes); a hold left
    # active by its changes may since have been confirmed, released or expired.
    status_ok = (have["status"] == st["status"] or kind == "hold")
    if (status_ok and have["seats"] == st["seats"] and have["places"] == st["places"]
            and tickets(have["tickets"]) == tickets(st["tickets"]) and have["total"] == st["total"]):
        return None
    if doubt is not None:
        d_status, d_seats, d_areas, d_places = doubt
        if ((kind == "hold" or have["status"] == d_status) and have["seats"] == d_seats
                and have["areas"] == d_areas and (d_places is None or have["places"] == d_places)):
            return None
    problems.append(f"{kind} {oid} is not as the load last had it acknowledged: "
                    f"{have['status']} {have['seats']} {have['places']} {have['total']}, "
                    f"acknowledged {st['status']} {st['seats']} {st['places']} {st['total']}"
                    + (f" (or, the last change in doubt, {doubt})" if doubt else ""))
    return len(set(st["places"]) - set(have["places"]))


def check_records(record_rows, holds, bookings, logged, problems):
    """Stored idempotency answers of holds and bookings against the rows: the answer
    of a confirm that made a booking (201) lists exactly its hold's seats, places and
    area counts (a hold's rows stay as they were confirmed). With the load's log (then
    every change is keyed), also the latest answer of each hold and of each booking
    lists exactly what it has now, so holds and bookings whose last answer was lost
    are checked too. Returns how many answers were compared."""
    def listed(r):
        return sorted(r["labels"] or []), r["areas"] or {}

    def has(row):
        labels = sorted((row["seats"] or []) + (row["places"] or []))
        return labels, counts_by_area(row["places"])

    latest = {}
    compared = 0
    wrong = []
    for r in record_rows:
        if r["booking"]:
            b = bookings.get(r["booking"])
            if b is None:
                continue  # a TABLE_CHECKS query names it
            if r["status"] == 201 and not r["exchange"] and not r["cancel"]:
                h = holds.get(b["hid"])
                compared += 1
                if h is None or listed(r) != has(h):
                    wrong.append((r["key"], r["booking"], listed(r), h and has(h)))
            key = ("booking", r["booking"])
        elif r["hold"]:
            key = ("hold", r["hold"])
        else:
            continue
        if key not in latest or r["at"] > latest[key]["at"]:
            latest[key] = r
    if logged:
        for (kind, oid), r in latest.items():
            row = (bookings if kind == "booking" else holds).get(oid)
            if row is None:
                continue
            compared += 1
            if listed(r) != has(row):
                wrong.append((r["key"], oid, listed(r), has(row)))
    if wrong:
        problems.append(f"{len(wrong)} stored idempotency answers of holds or bookings list "
                        f"other seats, places or area counts than they have, e.g. {wrong[:3]}")
    return compared


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


def fold_places(rows):
    """The feed's place changes folded into count deltas: per (show, area) in all, and
    per (show, event position) per area. Each place counts +1 in its new state and -1
    in its old one (the event's `was`, else the cause's usual one)."""
    total = defaultdict(Counter)
    per_event = defaultdict(lambda: defaultdict(Counter))
    for r in rows:
        was = r["was"] or PLACE_WAS[r["cause"]]
        for c in (total[(r["show"], r["area"])], per_event[(r["show"], r["pos"])][r["area"]]):
            c[r["state"]] += 1
            c[was] -= 1
    return total, per_event


def counts_of(row):
    return {"available": row["capacity"] - row["held"] - row["booked"],
            "held": row["held"], "booked": row["booked"]}


def check_areas(area_rows, feed_place_rows, problems):
    """Capacity, numbering and counts of every standing area, and the feed's place
    changes summed from the capacity against the counts. Returns ({(show, area):
    counts}, a summary per area)."""
    total, _ = fold_places(feed_place_rows)
    counts, summary = {}, []
    for r in area_rows:
        key = (r["show"], r["area"])
        cap = r["capacity"]
        now = counts_of(r)
        counts[key] = now
        summary.append(dict(show=r["show"], area=r["area"], capacity=cap, **now,
                            held_lapsed=r["held_lapsed"]))
        if (r["places"], r["numbers"], r["min_number"], r["max_number"]) != (cap, cap, 1, cap):
            problems.append(f"area {key}: {r['places']} place rows numbered "
                            f"{r['min_number']}..{r['max_number']} ({r['numbers']} distinct) "
                            f"for a capacity of {cap}")
        if r["misnamed"]:
            problems.append(f"area {key}: {r['misnamed']} place rows not labelled "
                            f"{r['area']}-<n> or not of the area's category")
        if r["held"] + r["booked"] > cap:
            problems.append(f"area {key} is over capacity: {r['held']} held + {r['booked']} "
                            f"booked > {cap}")
        fold = total.get(key, Counter())
        replayed = {"available": cap + fold["available"], "held": fold["held"],
                    "booked": fold["booked"]}
        if replayed != now:
            problems.append(f"area {key}: the feed's place changes sum to {replayed}, "
                            f"the place rows count {now}")
    known = set(counts)
    for key in total:
        if key not in known:
            problems.append(f"the feed has place changes of {key}, which is not an area")
    return counts, summary


def sse_area_deltas(doc):
    """The `areas` of an event's JSON as {area: Counter of deltas} (missing = 0)."""
    out = {}
    for a in doc.get("areas") or []:
        out[a["area"]] = Counter({k: a.get(k, 0) for k in ("available", "held", "booked")})
    return out


def check_stream_areas(args, path, show_positions, feed_place_rows, area_counts, problems):
    """A stream's event JSON (probe.py sse --data) against the table: each event's
    `areas` deltas are the fold of its place changes, and the deltas of every event of
    the audit's snapshot, from the stream's start, sum to the counts of that snapshot."""
    show = str(int(args.show))
    capacities = {a: 0 for (sh, a) in area_counts if sh == show}
    if not capacities:
        return None
    _, per_event = fold_places(r for r in feed_place_rows if r["show"] == show)
    want = set(show_positions)
    deadline = time.time() + 20
    while True:
        got, torn, twice = {}, 0, 0
        try:
            for line in open(path):
                pos, _, body = line.strip().partition(" ")
                try:
                    doc = json.loads(body)
                except ValueError:
                    torn += 1
                    continue
                if pos in got:
                    twice += 1
                got[pos] = doc
        except OSError:
            pass
        missing = want - set(got)
        if not missing or time.time() > deadline:
            break
        time.sleep(0.25)
    if missing:
        problems.append(f"the event stream {path} did not bring {len(missing)} of the "
                        f"{len(want)} events of the audit's snapshot, e.g. {sorted(missing)[:3]}")
    if torn:
        problems.append(f"the event stream {path} has {torn} events whose JSON does not parse")
    wrong, summed = [], defaultdict(Counter)
    for pos in want & set(got):
        deltas = sse_area_deltas(got[pos])
        expected = {a: Counter({k: v for k, v in c.items()})
                    for a, c in per_event.get((show, pos), {}).items()}
        norm = lambda d: {a: {k: v for k, v in c.items() if v} for a, c in d.items()}
        if norm(deltas) != norm(expected):
            wrong.append({"event": pos, "sse": norm(deltas), "table": norm(expected)})
        for a, c in deltas.items():
            summed[a].update(c)
    if wrong:
        problems.append(f"the event stream {path} has {len(wrong)} events whose area deltas "
                        f"are not their place changes, e.g. {wrong[:3]}")
    mismatched = {}
    for (sh, a), now in area_counts.items():
        if sh != show:
            continue
        cap = now["available"] + now["held"] + now["booked"]
        from_stream = {"available": cap + summed[a]["available"], "held": summed[a]["held"],
                       "booked": summed[a]["booked"]}
        if from_stream != now:
            mismatched[a] = {"stream": from_stream, "table": now}
    if mismatched:
        problems.append(f"the event stream {path}'s area deltas from the start do not sum "
                        f"to the counts: {mismatched}")
    return {"events": len(want), "with_areas": sum(1 for p in want & set(got)
                                                    if got[p].get("areas")),
            "area_deltas_summed": {a: dict(c) for a, c in summed.items()},
            "repeated": twice}


def http_get(url, path):
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    except (OSError, http.client.HTTPException, ValueError) as e:
        return 0, str(e)
    finally:
        c.close()


def check_area_api(db, urls, problems, max_shows=100):
    """Each server's `GET /shows/{id}/areas` and seat map `areas` against the place rows
    (read before and after, equal: nothing changed meanwhile), retried for a while: the
    sweeper may still expire holds, and a server's map may trail the feed a moment."""
    shows = [str(r["show"]) for r in db.rows(
        f"SELECT DISTINCT show_id AS show FROM areas ORDER BY show_id LIMIT {max_shows}")]
    if not shows or not urls:
        return None
    fields = ("area", "category", "capacity", "available", "held", "booked", "price")

    def from_db():
        rows = db.rows(AREA_COUNTS)
        out = defaultdict(list)
        for r in rows:
            if r["show"] in shows:
                out[r["show"]].append(dict(area=r["area"], category=r["category"],
                                           capacity=r["capacity"], price=r["price"],
                                           **counts_of(r)))
        return dict(out)

    deadline = time.time() + 20
    tries = 0
    while True:
        tries += 1
        before = from_db()
        seen, bad = {}, []
        for url in urls:
            for show in shows:
                for what, path in (("areas", f"/shows/{show}/areas"),
                                   ("seat map", f"/shows/{show}/seats")):
                    status, doc = http_get(url, path)
                    got = ([{k: a.get(k) for k in fields} for a in doc.get("areas") or []]
                           if status == 200 and isinstance(doc, dict) else (status, doc))
                    seen[(url, show, what)] = got
        after = from_db()
        if before == after:
            bad = [(k, v, before.get(k[1])) for k, v in seen.items() if v != before.get(k[1])]
            if not bad:
                break
        if time.time() > deadline:
            if before != after:
                problems.append("the areas' counts kept changing for 20 s after the load")
            else:
                problems.append(f"{len(bad)} area reads differ from the database's counts, "
                                f"e.g. {bad[:2]}")
            break
        time.sleep(0.5)
    return {"shows": len(shows), "servers": len(urls), "reads": len(seen), "tries": tries}


def check_queue(db, show, log_paths, problems):
    """The queued show's waiting room against the log of `queue.py load` and against
    its own rules, in one snapshot: every acknowledged join has its entry (nobody
    lost); positions are exactly 1..n (nobody skipped or placed twice); the admitted
    are exactly positions 1..admitted_through (nobody skipped), each in a slot of its
    own at least one interval after the one before (nobody admitted twice); every hold
    of the show was taken during its buyer's admission; no buyer ever had more live
    seats than max_seats (at each of their holds' creation, counting their holds live
    then), nor has now; every acknowledged hold is in the database, its buyer's."""
    show = int(show)
    entries, holds, over_now = db.snapshot([
        f"""SELECT e.user_id, e.position, e.admitted_at, e.admission_expires_at,
                   extract(epoch FROM e.admitted_at) AS at_s, q.admitted_through,
                   sh.queue_admit_per_minute AS rate, sh.queue_max_seats AS max_seats
              FROM queue_entries e JOIN queues q ON q.show_id = e.show_id
              JOIN shows sh ON sh.id = e.show_id WHERE e.show_id = {show}""",
        f"""SELECT h.show_id::text || '-' || h.id::text AS hid, h.user_id,
                   extract(epoch FROM h.created_at) AS created_s,
                   extract(epoch FROM coalesce(least(h.released_at, h.expires_at),
                                               h.expires_at)) AS end_s,
                   h.status,
                   (SELECT count(*) FROM hold_seats hs
                     WHERE hs.show_id = h.show_id AND hs.hold_id = h.id) AS n,
                   (SELECT e.admitted_at <= h.created_at AND h.created_at < e.admission_expires_at
                      FROM queue_entries e
                     WHERE e.show_id = h.show_id AND e.user_id = h.user_id) AS admitted
              FROM holds h WHERE h.show_id = {show}""",
        f"""SELECT u.user_id, u.live FROM (
                SELECT e.user_id,
                       (SELECT count(*) FROM holds h JOIN hold_seats hs
                           ON hs.show_id = h.show_id AND hs.hold_id = h.id
                         WHERE h.show_id = e.show_id AND h.user_id = e.user_id
                           AND h.status = 'active' AND h.expires_at > now())
                     + (SELECT count(*) FROM bookings b JOIN booking_seats bs
                           ON bs.show_id = b.show_id AND bs.booking_id = b.id AND bs.live
                         WHERE b.show_id = e.show_id AND b.user_id = e.user_id
                           AND b.status = 'confirmed') AS live,
                       sh.queue_max_seats AS max_seats
                  FROM queue_entries e JOIN shows sh ON sh.id = e.show_id
                 WHERE e.show_id = {show}) u
             WHERE u.live > u.max_seats"""])
    recs = []
    for path in log_paths:
        with open(path) as f:
            recs += [json.loads(line) for line in f if line.strip()]
    by_user = {e["user_id"]: e for e in entries}
    joined = {r["user"] for r in recs if r.get("op") == "join"}
    lost = sorted(joined - set(by_user))
    if lost:
        problems.append(f"queue: {len(lost)} acknowledged joins have no entry, e.g. {lost[:3]}")
    positions = sorted(e["position"] for e in entries if e["position"] is not None)
    if positions != list(range(1, len(entries) + 1)):
        problems.append(f"queue: positions are not exactly 1..{len(entries)}: "
                        f"{len(positions)} given, first gaps "
                        f"{[p for p in range(1, len(entries) + 1) if p not in set(positions)][:5]}")
    through = entries[0]["admitted_through"] if entries else 0
    admitted = sorted(e["position"] for e in entries if e["admitted_at"] is not None)
    if admitted != list(range(1, through + 1)):
        problems.append(f"queue: the admitted are not exactly positions 1..{through}: "
                        f"{len(admitted)} admitted")
    slots = sorted((e["position"], float(e["at_s"])) for e in entries if e["at_s"] is not None)
    interval = 60.0 / entries[0]["rate"] if entries else 0
    close = [(a[0], b[0]) for a, b in zip(slots, slots[1:]) if b[1] - a[1] < interval - 1e-6]
    if close:
        problems.append(f"queue: {len(close)} admissions closer than {interval} s to the one "
                        f"before (two in one slot), e.g. {close[:3]}")
    unadmitted = [h["hid"] for h in holds if not h["admitted"]]
    if unadmitted:
        problems.append(f"queue: {len(unadmitted)} holds of the queued show were taken outside "
                        f"their buyer's admission, e.g. {unadmitted[:3]}")
    max_seats = entries[0]["max_seats"] if entries else 0
    over = []
    mine = defaultdict(list)
    for h in holds:
        mine[h["user_id"]].append(h)
    for user, hs in mine.items():
        for h in hs:
            t = float(h["created_s"])
            live = sum(o["n"] for o in hs
                       if float(o["created_s"]) <= t < float(o["end_s"]))
            if live > max_seats:
                over.append((user, h["hid"], live))
    if over:
        problems.append(f"queue: {len(over)} holds gave their buyer more than {max_seats} live "
                        f"seats, e.g. {over[:3]}")
    if over_now:
        problems.append(f"queue: buyers over {max_seats} live seats now: {over_now[:3]}")
    hold_ids = {h["hid"]: h for h in holds}
    acked = [r for r in recs if r.get("op") == "hold"]
    missing = [r["hold_id"] for r in acked
               if r["hold_id"] not in hold_ids or hold_ids[r["hold_id"]]["user_id"] != r["user"]]
    if missing:
        problems.append(f"queue: {len(missing)} acknowledged holds are not in the database "
                        f"as their buyer's, e.g. {missing[:3]}")
    refused = Counter(r.get("status") for r in recs if r.get("op", "").endswith("_refused"))
    if refused:
        problems.append(f"queue: unexpected refusals of joins or holds: {dict(refused)}")
    return {"entries": len(entries), "joins_acked": len(joined), "admitted": len(admitted),
            "holds": len(holds), "holds_acked": len(acked), "max_seats": max_seats,
            "most_live_seats": max([0] + [sum(o["n"] for o in hs
                                              if float(o["created_s"]) <= float(h["created_s"])
                                              < float(o["end_s"]))
                                          for hs in mine.values() for h in hs])}


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
    p.add_argument("--sse-data", action="append", default=[],
                   help="the event JSON a stream of --show received (probe.py sse --data)")
    p.add_argument("--url", action="append", default=[],
                   help="a server whose area counts are compared with the database's")
    p.add_argument("--queue-show", help="a queued show (scripts/faults/queue.py) to check")
    p.add_argument("--queue-log", action="append", default=[],
                   help="the log of queue.py load for --queue-show")
    p.add_argument("--max-per-hold", type=int, default=10,
                   help="the servers' MAX_SEATS_PER_HOLD (seats and places of one hold)")
    p.add_argument("--moved-show", action="append", default=[],
                   help="a show whose Citus shard group was moved: its feed is not replayed")
    p.add_argument("--any-external-ref", action="store_true",
                   help="the load is not load.py (the fuzzer): external_ref is whatever it sent")
    args = p.parse_args()
    table_checks = TABLE_CHECKS if args.any_external_ref else [EXTERNAL_REF_CHECK] + TABLE_CHECKS
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
                  coalesce(h.released_at = (SELECT sh.cancelled_at FROM shows sh
                                             WHERE sh.id = h.show_id), false) AS by_show_cancel,
                  (SELECT array_agg(s.label ORDER BY s.label) FROM hold_seats hs JOIN seats s
                     ON s.show_id = hs.show_id AND s.id = hs.seat_id
                    WHERE hs.show_id = h.show_id AND hs.hold_id = h.id AND s.area IS NULL) AS seats,
                  (SELECT array_agg(s.label ORDER BY s.label) FROM hold_seats hs JOIN seats s
                     ON s.show_id = hs.show_id AND s.id = hs.seat_id
                    WHERE hs.show_id = h.show_id AND hs.hold_id = h.id AND s.area IS NOT NULL) AS places,
                  (SELECT json_agg(json_build_object('seat', s.label, 'type', hs.ticket_type,
                                                     'price', hs.price, 'area', s.area))
                     FROM hold_seats hs JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
                    WHERE hs.show_id = h.show_id AND hs.hold_id = h.id) AS tickets
             FROM holds h"""
    # A booking's seats, places and tickets now (booking_seats: its live rows, or for a
    # cancelled booking the rows its cancel ended, what it had then), and the places
    # that point at it now.
    now_rows = ("(CASE WHEN b.status = 'confirmed' THEN bs.live "
                "ELSE bs.ended_at = b.cancelled_at AND bs.ended_by = 'cancel' END)")
    BOOKINGS = f"""SELECT b.show_id::text || '-' || b.id::text AS bid,
                  b.show_id::text || '-' || b.hold_id::text AS hid, b.user_id, b.status, b.total,
                  coalesce(b.cancelled_at = (SELECT sh.cancelled_at FROM shows sh
                                              WHERE sh.id = b.show_id), false) AS by_show_cancel,
                  (SELECT array_agg(s.label ORDER BY s.label) FROM booking_seats bs JOIN seats s
                     ON s.show_id = bs.show_id AND s.id = bs.seat_id
                    WHERE bs.show_id = b.show_id AND bs.booking_id = b.id AND s.area IS NULL
                      AND {now_rows}) AS seats,
                  (SELECT array_agg(s.label ORDER BY s.label) FROM booking_seats bs JOIN seats s
                     ON s.show_id = bs.show_id AND s.id = bs.seat_id
                    WHERE bs.show_id = b.show_id AND bs.booking_id = b.id AND s.area IS NOT NULL
                      AND {now_rows}) AS places,
                  (SELECT json_agg(json_build_object('seat', s.label, 'type', bs.ticket_type,
                                                     'price', bs.price, 'area', s.area))
                     FROM booking_seats bs JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
                    WHERE bs.show_id = b.show_id AND bs.booking_id = b.id AND {now_rows}) AS tickets,
                  (SELECT array_agg(s.label ORDER BY s.label) FROM seats s
                    WHERE s.show_id = b.show_id AND s.booking_id = b.id AND s.area IS NOT NULL) AS owned
             FROM bookings b"""
    show_events = (f"SELECT xid::text || '.' || id AS pos FROM seat_events "
                   f"WHERE show_id = {int(args.show)}" if args.show else "SELECT 1 AS x WHERE false")
    results = db.snapshot([sql for _, sql in table_checks] + [
        EXPECTED_EVENTS, FEED_EVENTS, FEED_EVENTS_IN_ORDER, SEAT_STATES, HOLDS, BOOKINGS,
        BLOCKS, BLOCKED_NOW, FEED_BLOCKS, SHOWS, OVERSIZED.format(max=args.max_per_hold),
        AREA_COUNTS, FEED_PLACES, show_events, RECORDS])
    checks = results[:len(table_checks)]
    # Known deviations from the documented contract, tolerated (each place that counts
    # one says which): reported, not failed.
    deviations = Counter()
    (expected_rows, feed_rows, events_in_order, seat_states, hold_rows,
     booking_rows, block_rows, blocked_now_rows, feed_block_rows,
     show_rows, oversized_rows, area_rows, feed_place_rows,
     show_event_rows, record_rows) = results[len(table_checks):]
    for (what, _), rows in zip(table_checks, checks):
        if rows:
            problems.append(f"{what}: {len(rows)} rows, e.g. {rows[:3]}")
    if oversized_rows:
        problems.append(f"{len(oversized_rows)} holds or bookings have more than "
                        f"{args.max_per_hold} seats and places, e.g. {oversized_rows[:3]}")
    area_counts, area_summary = check_areas(area_rows, feed_place_rows, problems)

    # One event per seat change: the feed's seat changes per cause (and, for exchanges,
    # per state) against what the tables imply (EXPECTED_EVENTS).
    implied = {r["what"]: r["n"] for r in expected_rows}
    feed = Counter()
    for r in feed_rows:
        feed[r["cause"]] += r["n"]
        if r["cause"] == "exchange":
            feed[f"exchange {r['state']}"] += r["n"]
    given, taken = feed["exchange available"], feed["exchange booked"]
    exact = [
        ("'confirm' seat changes", feed["confirm"], implied["confirm"],
         "booking rows of their holds' seats"),
        ("'release' seat changes", feed["release"], implied["release"],
         "seats of released holds"),
        ("'hold' + 'add' - 'remove' seat changes",
         feed["hold"] + feed["add"] - feed["remove"], implied["hold_rows"], "hold_seats rows"),
        ("'confirm' + exchange 'booked' - 'cancel' - exchange 'available' seat changes"
         " - rows ended by a show's cancellation",
         feed["confirm"] + taken - feed["cancel"] - given - implied["ended_by_show_cancel"],
         implied["live_rows"], "live booking rows"),
    ]
    for what, n, want, of in exact:
        if n != want:
            problems.append(f"the feed's {what} are {n}, the tables imply {want} ({of}; "
                            "one event per change)")
    # Rows end once each, but an exchange may take back a seat its booking gave up
    # (the row lives again and may end again): at least one change per row. With the
    # load's log (which never takes a seat back), exactly: see below.
    at_least = [("'cancel'", feed["cancel"],
                 implied["ended_by_cancel"] - implied["ended_by_show_cancel"],
                 "booking rows ended by a cancel (not a show's)"),
                ("exchange 'available'", given, implied["ended_by_exchange"],
                 "booking rows ended by an exchange"),
                ("exchange 'booked'", taken, implied["exchange_rows"],
                 "booking rows of seats their holds did not have")]
    for what, n, want, of in at_least:
        if n < want:
            problems.append(f"the feed has {n} {what} seat changes, fewer than the {want} "
                            f"{of}")
    # A lapsed hold's seat may be taken by a new hold before the sweeper comes: that
    # change is the new hold's event, and the sweeper has nothing left to publish. A
    # hold confirmed late may have been expired first.
    expire_max = implied["expire"] + implied["expire_then_late_confirm"]
    if feed["expire"] > expire_max:
        problems.append(f"the feed has {feed['expire']} 'expire' seat changes, more than the "
                        f"{expire_max} seats of expired holds and of holds confirmed late")
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
    # Issue 16: an exchange takes a free seat, and a late confirm takes back one its
    # expired hold had (freed by the sweeper): available -> booked, by those only. An
    # add holds like a hold, a remove frees like a release; each entry's state is its
    # cause's (an exchange's entries: available or booked).
    allowed_by = {("available", "booked"): {"confirm", "exchange"},
                  # Issue 17: a show's cancellation rewrites every seat, free and
                  # blocked ones too (a new version, the same state).
                  ("available", "available"): {"show_cancel"},
                  ("blocked", "blocked"): {"show_cancel"}}
    #
    # A standing area's place (issue 15) is held to the same, except for its order:
    # places are exempt from the seats' written-before-us rule (DESIGN.md: a claim may
    # take a place freed by a younger transaction), so two changes of one place can be
    # in the feed in the other order than they happened. Their counts are deltas and
    # commute (checked exactly in check_areas); for places the order is counted, not
    # failed, and instead of the last change in feed order, the place's current state
    # and version must be one that an event of it published. The same change twice
    # still fails.
    folded = {}
    published = defaultdict(set)
    broken, broken_places, misstated = [], [], []
    # A show whose shard group moved (Citus, --moved-show): the move rewrote its rows,
    # so every seat's version (xmin) changed without an event, and its later events
    # carry the new node's transaction ids, which do not order with the old node's.
    # Its seats are not replayed (counted instead); the counts above still hold.
    moved = {int(m) for m in args.moved_show}
    not_replayed = Counter()
    for e in events_in_order:
        if e["show_id"] in moved:
            not_replayed["events"] += 1
            continue
        key = (e["show_id"], e["label"])
        prev = folded.get(key, ("available", None))
        if e["state"] not in CAUSE_STATES.get(e["cause"], ()):
            misstated.append({"seat": e["label"], "cause": e["cause"], "state": e["state"]})
        move = (prev[0], e["state"])
        ok = move in allowed or e["cause"] in allowed_by.get(move, ())
        if prev[1] == e["version"] or (not ok and not e["area"]):
            broken.append({"seat": e["label"], "from": prev, "to": [e["state"], e["version"]]})
        elif not ok:
            broken_places.append({"place": e["label"], "from": prev,
                                  "to": [e["state"], e["version"]]})
        folded[key] = (e["state"], e["version"])
        published[key].add((e["state"], e["version"]))
    if broken:
        problems.append(f"the feed has {len(broken)} changes a seat cannot make "
                        f"(or the same change twice), e.g. {broken[:3]}")
    if misstated:
        problems.append(f"the feed has {len(misstated)} entries whose state is not their "
                        f"cause's, e.g. {misstated[:3]}")
    bad, bad_places = [], []
    for st in seat_states:
        if st["show_id"] in moved:
            not_replayed["seats"] += 1
            continue
        key = (st["show_id"], st["label"])
        last = folded.get(key)
        if last is None and st["state"] == "available":
            continue
        if last != (st["state"], st["version"]):
            if st["area"] and (st["state"], st["version"]) in published[key]:
                bad_places.append({"place": st["label"], "table": [st["state"], st["version"]],
                                   "feed": last})
            else:
                bad.append({"seat": st["label"], "table": [st["state"], st["version"]],
                            "feed": last})
    if bad:
        problems.append(f"replaying the feed contradicts {len(bad)} seats, e.g. {bad[:3]}")
    places_out_of_order = {"changes": len(broken_places), "last_not_current": len(bad_places),
                           "e.g.": (broken_places + bad_places)[:2]}

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
    # Holds asking for places (answers, by status) and 409s naming short areas.
    place_answers, short_areas = Counter(), Counter()
    place_requests_places = 0
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
            if r.get("what") == "hold" and r.get("places"):
                place_answers[r["status"]] += 1
                place_requests_places += r["places"]
            for a in r.get("short_areas") or []:
                short_areas[f"{r.get('show', '?')} {a}"] += 1
        elif op == "unexpected":
            unexpected.append(r)
        elif op == "crash":
            problems.append(f"a worker of the load crashed (its share of the load stopped): "
                            f"{r.get('error')}")
        elif op == "deviation":
            deviations[r.get("why", "?")] += 1

    def tickets_of(ts):
        return sorted((t["seat"], t["type"], t.get("price")) for t in ts or [])

    def areas_of(places):
        return dict(Counter(l.rsplit("-", 1)[0] for l in places or []))

    lost = 0
    # Places acknowledged (held, or booked and not cancelled) that the database does
    # not show as acknowledged.
    places_lost = 0
    place_acks = Counter()
    acked_blocks = {}
    # Issue 16: every hold and booking the load changed, followed through its log.
    finals, change_feed, took_back = follow_changes(recs, problems)
    changed_holds = {k for k, f in finals["hold"].items() if f[2]}
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
            elif h["user_id"] != r["user"]:
                problems.append(f"hold {r['hold_id']} is {h['user_id']}'s, acknowledged to "
                                f"{r['user']}")
            elif r["hold_id"] in changed_holds:
                # Changed since (adds, removes, new types): its final state is checked
                # against the last change acknowledged, below.
                pass
            elif sorted(h["seats"] or []) != r["seats"]:
                problems.append(f"hold {r['hold_id']} differs from its acknowledgement: "
                                f"{h['user_id']} {h['seats']} vs {r['user']} {r['seats']}")
            elif "places" in r and (sorted(h["places"] or []) != r["places"]
                                    or areas_of(h["places"]) != r["areas"]
                                    or areas_of(r["places"]) != r["areas"]):
                # All or none: a hold has every place it was acknowledged with.
                places_lost += len(set(r["places"]) - set(h["places"] or []))
                problems.append(f"hold {r['hold_id']}'s places differ from its acknowledgement: "
                                f"{h['places']} vs {r['places']} ({r['areas']})")
            elif "tickets" in r and (tickets_of(h["tickets"]) != tickets_of(r["tickets"])
                                     or h["total"] != r["total"]):
                problems.append(f"hold {r['hold_id']}'s tickets or total differ from its "
                                f"acknowledgement: {h['tickets']} {h['total']} vs "
                                f"{r['tickets']} {r['total']}")
            elif "tickets" in r:
                # Each ticket is of the type asked for its seat, or the show's default;
                # an area's places are of the types of its list (in some order), or all
                # of the default.
                asked = r.get("asked_types") or {}
                default = default_type.get(h["show"])
                wrong = [t for t in h["tickets"] or [] if t.get("area") is None
                         and t["type"] != asked.get(t["seat"], default)]
                by_area = defaultdict(list)
                for t in h["tickets"] or []:
                    if t.get("area") is not None:
                        by_area[t["area"]].append(t["type"])
                for area, types in by_area.items():
                    if sorted(types) != sorted(asked.get(area) or [default] * len(types)):
                        wrong.append({"area": area, "types": types})
                if wrong:
                    problems.append(f"hold {r['hold_id']} has tickets of types not asked for "
                                    f"{wrong} (asked {asked})")
            if h is not None and r.get("places"):
                place_acks["holds"] += 1
                place_acks["places_held"] += len(r["places"])
        elif what == "confirm":
            # A booking is confirmed with its hold's seats, places and tickets (the
            # hold's rows stay as they were then); what it has now is checked below,
            # against its last change acknowledged.
            b = bookings.get(r["booking_id"])
            h = holds.get(r["hold_id"])
            final = finals["booking"].get(r["booking_id"])
            if b is None:
                lost += 1
                problems.append(f"acknowledged booking {r['booking_id']} is not in the database")
            elif b["hid"] != r["hold_id"] or h is None or sorted(h["seats"] or []) != r["seats"]:
                problems.append(f"booking {r['booking_id']} differs from its acknowledgement")
            elif "tickets" in r and (h["total"] != r["total"]
                                     or tickets_of(h["tickets"]) != tickets_of(r["tickets"])):
                problems.append(f"booking {r['booking_id']}'s tickets or total differ from its "
                                f"acknowledgement: {r['tickets']} {r['total']}")
            elif "places" in r and (sorted(h["places"] or []) != r["places"]
                                    or areas_of(h["places"]) != r["areas"]):
                places_lost += len(set(r["places"]) - set(h["places"] or []))
                problems.append(f"booking {r['booking_id']}'s places differ from its "
                                f"acknowledgement: {h['places']} vs {r['places']}")
            elif (b["status"] != "confirmed" and r["booking_id"] not in tried["cancel"]
                  and r["booking_id"] not in tried["cancel_part"]):
                problems.append(f"booking {r['booking_id']} is {b['status']} but nobody cancelled it")
            elif final is not None:
                lacking = check_final("booking", r["booking_id"], b, final, problems)
                if lacking is not None:
                    lost += 1
                    places_lost += lacking
                elif (b["status"] == "confirmed"
                      and sorted(b["owned"] or []) != sorted(b["places"] or [])):
                    # A live booking owns its places now, exactly those acknowledged.
                    places_lost += len(set(b["places"] or []) - set(b["owned"] or []))
                    problems.append(f"booking {r['booking_id']} (confirmed) owns places "
                                    f"{b['owned']}, has {b['places']}")
            if b is not None and r.get("places"):
                place_acks["bookings"] += 1
                place_acks["places_booked"] += len(r["places"])
                if b["status"] == "confirmed":
                    place_acks["bookings_live"] += 1
                    place_acks["places_booked_live"] += len(r["places"])
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
    # Holds changed by the load (issue 16): each as its last change acknowledged left
    # it (or, that change's answer lost, as it would have left it).
    for hid in sorted(changed_holds):
        h = holds.get(hid)
        if h is not None:
            lacking = check_final("hold", hid, h, finals["hold"][hid], problems)
            if lacking is not None:
                lost += 1
                places_lost += lacking
    # Nothing happened that nobody asked for (only when this load was the only writer).
    if recs:
        for hid, h in holds.items():
            if h["status"] == "confirmed" and hid not in tried["confirm"]:
                problems.append(f"hold {hid} is confirmed but nobody asked to confirm it")
            if (h["status"] == "released" and hid not in tried["release"]
                    and hid not in tried["remove"] and not h["by_show_cancel"]):
                problems.append(f"hold {hid} is released but nobody asked to release it")
        for bid, b in bookings.items():
            if (b["status"] == "cancelled" and bid not in tried["cancel"]
                    and bid not in tried["cancel_part"] and not b["by_show_cancel"]):
                problems.append(f"booking {bid} is cancelled but nobody asked to cancel it")
        # The feed's adds, removes and exchanges are those the log acknowledged (and at
        # most those whose answer never came); a row ends once, and is taken by an
        # exchange once, since the load never takes back a seat a booking had.
        for what, n in (("add", feed["add"]), ("remove", feed["remove"]),
                        ("given", given), ("taken", taken)):
            lo, hi = change_feed.get(what, (0, 0))
            if not lo <= n <= hi:
                name = {"given": "exchange 'available'", "taken": "exchange 'booked'"}.get(
                    what, f"'{what}'")
                problems.append(f"the feed has {n} {name} seat changes; the load's log "
                                f"acknowledged {lo}" + (f" (and at most {hi - lo} more in doubt)"
                                                       if hi > lo else ""))
        if not took_back:
            for what, n, want, of in at_least:
                if n != want:
                    problems.append(f"the feed has {n} {what} seat changes, the tables imply "
                                    f"{want} ({of}; no seat was taken back)")
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
    # A 500 is the server failing, never a fault's answer (those are 503 or no answer).
    if answers.get(500):
        problems.append(f"{answers[500]} answers were 500 internal errors (see the server log); "
                        f"{place_answers.get(500, 0)} of them to holds of places")
    for u in unexpected[:5]:
        problems.append(f"an answer the load did not expect: {u}")
    if len(unexpected) > 5:
        problems.append(f"... and {len(unexpected) - 5} more answers the load did not expect")
    sse_summary = [check_stream(db, args, path, problems) for path in args.sse] or None
    show_positions = [r["pos"] for r in show_event_rows] if args.show else []
    sse_area_summary = [check_stream_areas(args, path, show_positions, feed_place_rows,
                                           area_counts, problems)
                        for path in args.sse_data if args.show] or None
    api_summary = check_area_api(db, args.url, problems)
    records_compared = check_records(record_rows, holds, bookings, bool(recs), problems)

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
        # Issue 16: seat changes of the feed by cause, holds and bookings the load
        # changed (and of those, whose last change is in doubt), stored answers checked.
        "feed_seat_changes": dict(sorted(feed.items())),
        "holds_changed": len(changed_holds),
        "bookings_changed": sum(1 for f in finals["booking"].values() if f[2]),
        "changes_in_doubt": sum(1 for k in finals.values() for f in k.values()
                                if f[1] is not None),
        "idempotency_answers_compared": records_compared,
        "holds_in_db": len(holds),
        "bookings_in_db": len(bookings),
        "problems": problems,
    }
    if area_summary:
        # Standing areas (issue 15): the counts of each area now, holds that asked for
        # places (their answers by status, the places asked), 409s naming a short area
        # (per "show area"), what was acknowledged, and what is wrong (lost places,
        # areas over capacity: both must be 0).
        summary["areas"] = area_summary
        summary["place_hold_answers"] = {str(k): v for k, v in sorted(place_answers.items())}
        summary["places_asked"] = place_requests_places
        summary["refusals_with_areas"] = dict(sorted(short_areas.items()))
        summary["place_acks"] = dict(place_acks)
        summary["places_lost"] = places_lost
        summary["areas_over_capacity"] = sum(1 for a in area_summary
                                             if a["held"] + a["booked"] > a["capacity"])
        if api_summary:
            summary["area_reads_checked"] = api_summary
    if deviations:
        summary["known_deviations"] = dict(deviations)
    if moved:
        summary["moved_shows_not_replayed"] = dict(not_replayed, shows=sorted(moved))
    if broken_places or bad_places:
        # Place changes in the feed in another order than they happened (allowed for
        # places, see the replay above): counted.
        summary["place_changes_out_of_feed_order"] = places_out_of_order
        if sse_area_summary:
            summary["event_stream_areas"] = sse_area_summary
    if sse_summary:
        summary["event_stream"] = sse_summary
    if args.queue_show:
        summary["queue"] = check_queue(db, args.queue_show, args.queue_log, problems)
        print(f"audit: queue: {summary['queue']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    print(f"audit: {summary['requests']} requests, answers {summary['answers_by_status']}, "
          f"acknowledged {dict(acks)} ({summary['holds_acked_unkeyed']} holds without a key), "
          f"lost {lost}, after retry {summary['acked_after_retry']} "
          f"(in-doubt commits replayed {summary['in_doubt_commits_replayed']}), "
          f"{len(holds)} holds and {len(bookings)} bookings in the database")
    changes = {w: acks[w] for w in HOLD_CHANGES + BOOKING_CHANGES if acks.get(w)}
    late = sum(1 for r in recs if r.get("op") == "ack" and r.get("late"))
    print(f"audit: changes acknowledged {changes}, late confirms {late}; holds changed "
          f"{summary['holds_changed']}, bookings changed {summary['bookings_changed']} "
          f"({summary['changes_in_doubt']} with the last change in doubt); feed seat changes "
          f"{summary['feed_seat_changes']}; {records_compared} stored answers compared")
    print(f"audit: refusals {summary['refusals']}; {len(blocks)} blocks "
          f"({summary['seats_blocked_now']} seats) in the database, feed seat changes "
          f"block {feed_block_total} / unblock {feed_unblock_total}")
    if sse_summary:
        print(f"audit: event stream: {sse_summary}")
    if area_summary:
        print(f"audit: areas {[(a['show'], a['area'], a['capacity'], a['available'], a['held'], a['booked']) for a in area_summary][:8]} "
              f"(show, area, capacity, available, held, booked); place holds answered "
              f"{summary['place_hold_answers']}, acknowledged {dict(place_acks)}; "
              f"409s naming areas {sum(short_areas.values())}; places lost {places_lost}; "
              f"over capacity {summary['areas_over_capacity']}")
        if api_summary:
            print(f"audit: area reads: {api_summary}")
        if sse_area_summary:
            print(f"audit: event stream areas: {sse_area_summary}")
    if broken_places or bad_places:
        print(f"audit: place changes out of the feed's (xid, id) order (allowed for places): "
              f"{places_out_of_order}")
    if moved:
        print(f"audit: shows moved between nodes, their feed not replayed seat by seat "
              f"(versions and order do not survive a move): {summary['moved_shows_not_replayed']}")
    if deviations:
        print(f"audit: WARNING: known deviations from the documented contract, tolerated: "
              f"{dict(deviations)}")
    for pr in problems:
        print(f"audit: PROBLEM: {pr}")
    if problems:
        sys.exit(1)
    print("audit: passed")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The fault suite's load: an on-sale's mix of requests, and a log of every answer.

    load.py --url URL [--url URL ...] --show ID [--show ID ...] --log FILE [--workers N]
            [--duration SECS | --stop-file PATH] [--seed N] [--admin-token T]

Each worker is one session of a user (`fault-<run>-<n>`, two workers per user: the
user's requests race each other) doing, again and again, on a random one of the
`--show`s: hold 1 to 3 random seats, naming a ticket type for some of them when the
show sells several (a type the seat's category is not sold as is refused `409
ticket_type_unavailable`); then confirm (and sometimes cancel the booking), release,
or abandon the hold to the sweeper with a short ttl. On a show with standing areas,
three holds in ten are of places only (`"areas": {"FLOOR": n}`, n 1 to 4, sometimes
of two areas) and two in ten mix 1 to 3 seats with 1 to 3 places, naming a list of
ticket types for an area now and then; they are confirmed, cancelled, released and
abandoned like the others. An area small enough to sell out answers `409
seats_unavailable` with `"areas"`; every answer is checked against the request (the
areas and counts asked, one ticket per place with its own number `{area}-{n}`, the
types asked), and the counts read (`GET /shows/{id}/areas`, the seat map's `areas`)
must add up to the capacity. On a show with a
`max_seats_per_user`, bookings are kept, so the user soon reaches the limit: a
`409 user_limit_reached` makes the worker cancel its oldest live booking of the show.
Load is spread over every `--url`, request by request, so several server processes
serve the same users.

Holds and bookings also change (issue 16). Before its fate, one hold in two (of the
ones still active) gets one or two changes: an add (`POST /holds/{id}/add`: 1 or 2
seats, or places of an area, sometimes with ticket types, now and then naming a seat it
has already, which is passed over), a remove (`/remove`: a seat, or places of an area,
one time in seven everything, which releases it; now and then also a seat it lacks,
`409 not_in_hold` and nothing removed) or new ticket types (`/tickets`). Some abandoned
holds are confirmed late, once lapsed (`{"allow_late": true}`: booked if nobody took a
seat meanwhile, else `410 hold_expired` naming those taken). After a round, three times
in ten, one of the session's live bookings of the show changes: a partial cancel
(`POST /bookings/{id}/cancel` with `{"seats": [...]}` or `{"areas": {...}}`, becoming
`cancelled` when nothing is left, sometimes repeated without a key: `200`, nothing
cancelled twice; now and then naming a seat never booked: `409 not_in_booking`) or an
exchange (`/exchange`: 1 or 2 of its seats given back for 1 or 2 seats it never had).
Each answer is checked against the state the session knows (the seats, places, area
counts, tickets and total of the hold or booking before), a refusal against what was
asked, and now and then a refused change is read back unchanged. All are keyed and
retried like the other POSTs (also on `409 idempotency_key_in_use`: the first attempt
is still running).

With an admin token (`--admin-token`, default $ADMIN_TOKEN), one more worker is the
box office: it blocks 1 to 4 random seats of a random show (`409 seats_unavailable`
when one is taken: a normal answer) and deletes random blocks of its own again,
keeping a handful at a time.

Every POST carries an `Idempotency-Key`, except three holds in ten: those take the
server's other path (hold batches, several users' holds in one statement; a show
with a buyer limit is held by the transaction path instead) and are not retried,
since without a key a retry is a new request. When a keyed request's answer is
not final (the connection failed, or a 5xx), the worker retries the same request with
the same key until it gets a final answer or the retry budget runs out: a request whose
COMMIT ended in doubt is thereby retried, and the audit checks that nothing was done
twice. Every acknowledged hold, keyed or not, must be in the database. A DELETE (a
release, an unblock) is retried as it is: an unblock retried after a lost answer may
find the block gone (`404 block_not_found`), which means it was done.

The log (JSON lines, flushed per line) has:
- one `answer` line per HTTP attempt: time, op, status (0 = no answer), the error code
  of a 4xx (and the short `areas` of a `409`), latency, the places a hold asked for;
- one `try` line before the first attempt of each confirm (`late` for a late one),
  release, cancel, block, unblock, and of each change (add, remove, retype,
  cancel_part, cancel_repeat, exchange: with its `body`), so the audit knows which
  outcomes the database may show even without an acknowledgement;
- one `refused` line when a change got a final 4xx (nothing changed: all or none);
- one `ack` line per final 2xx: the op and what the answer said (ids, seats, places
  and area counts, tickets, total; for a change, the hold's or booking's `state` after
  it, and an exchange's `difference`, a cancel's `cancelled`), the number of attempts
  and when the last one was sent.
The audit (audit.py) checks every `ack` against the database, and each change's
acknowledged state against the one before it.
"""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from urllib.parse import urlparse


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, **rec):
        rec.setdefault("t", round(time.time(), 4))
        line = json.dumps(rec, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")


class Client:
    """Keep-alive HTTP/1.1 to the servers, one connection at a time, rotating URLs."""

    def __init__(self, urls, timeout):
        self.targets = [urlparse(u) for u in urls]
        self.timeout = timeout
        self.i = random.randrange(len(self.targets))
        self.conns = {}

    def _conn(self, i):
        c = self.conns.get(i)
        if c is None:
            t = self.targets[i]
            c = http.client.HTTPConnection(t.hostname, t.port, timeout=self.timeout)
            self.conns[i] = c
        return c

    def request(self, method, path, body=None, headers=None):
        """(status, json-or-None, headers); status 0 when no answer came."""
        self.i = (self.i + 1) % len(self.targets)
        c = self._conn(self.i)
        data = None if body is None else json.dumps(body).encode()
        h = dict(headers or {})
        if data is not None:
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            raw = r.read()
            doc = None
            if raw:
                try:
                    doc = json.loads(raw)
                except ValueError:
                    doc = {"_raw": raw[:200].decode("utf-8", "replace")}
            return r.status, doc, dict(r.getheaders())
        except (OSError, http.client.HTTPException):
            c.close()
            self.conns.pop(self.i, None)
            return 0, None, {}


class Show:
    """What the workers need of a show: its seats, ticket types and buyer limit."""

    def __init__(self, show_id, seat_map, show):
        self.id = show_id
        self.labels = [s["label"] for s in seat_map["seats"]]
        self.category = {s["label"]: s["category"] for s in seat_map["seats"]}
        self.types = [t["type"] for t in seat_map.get("ticket_types") or []]
        # The categories each type is sold for (the first type is the default).
        self.sells = {t["type"]: set(t["prices"]) for t in seat_map.get("ticket_types") or []}
        self.limit = show.get("max_seats_per_user")
        # Standing areas, in the show's order: code -> {"category", "capacity", ...}.
        self.areas = {a["area"]: a for a in seat_map.get("areas") or []}

    def unsold(self, seats, named, areas=None):
        """What of a hold the show does not sell: ("seat", label, type) for seats and
        ("area", code, type) for places (once per area and type, as the 409 lists
        them). `named` is the hold's ticket_types, `areas` its {code: count}."""
        default = self.types[0]
        out = {("seat", l, named.get(l, default)) for l in seats
               if self.category[l] not in self.sells.get(named.get(l, default), ())}
        for code, n in (areas or {}).items():
            for t in named.get(code) or [default] * n:
                if self.areas[code]["category"] not in self.sells.get(t, ()):
                    out.add(("area", code, t))
        return out

    def check_counts(self, areas):
        """Why a list of area counts (of GET /areas or the seat map) is wrong, or None."""
        if [a.get("area") for a in areas] != list(self.areas):
            return f"areas {[a.get('area') for a in areas]}, the show has {list(self.areas)}"
        for a in areas:
            cap = self.areas[a["area"]]["capacity"]
            if (a.get("capacity") != cap or min(a["available"], a["held"], a["booked"]) < 0
                    or a["available"] + a["held"] + a["booked"] != cap):
                return f"counts {a} do not add up to the capacity {cap}"
        return None


def place_tickets(doc):
    """A hold's or booking's place tickets: {area: [(number label, type), ...]}."""
    out = defaultdict(list)
    for t in doc.get("tickets") or []:
        if "area" in t:
            out[t["area"]].append((t["seat"], t["type"]))
    return out


def state_of(doc):
    """What the audit follows of a hold or booking answer: its seats, place labels, area
    counts, tickets, total, status (and a hold's expires_at)."""
    out = {"seats": sorted(doc.get("seats") or []),
           "places": sorted(l for ts in place_tickets(doc).values() for l, _ in ts),
           "areas": doc.get("areas") or {},
           "tickets": doc.get("tickets") or [],
           "total": doc.get("total"), "status": doc.get("status")}
    if doc.get("expires_at"):
        out["expires_at"] = doc["expires_at"]
    return out


def number(place):
    """A place label's number: `FLOOR-17` -> 17."""
    return int(place.rsplit("-", 1)[1])


def tickets_by_label(state):
    return {t["seat"]: t for t in state["tickets"]}


def summed(state):
    return sum(t.get("price") or 0 for t in state["tickets"])


def kept(before, after, gone=()):
    """Why a ticket of `before` (not in `gone`) is not in `after` unchanged, or None."""
    now = tickets_by_label(after)
    for t in before["tickets"]:
        if t["seat"] not in gone and now.get(t["seat"]) != t:
            return f"ticket {t} became {now.get(t['seat'])}"
    return None


def same(before, doc):
    """Why the answer `doc` does not have exactly the seats, places and tickets of
    `before`, or None."""
    after = state_of(doc)
    for k in ("seats", "places", "areas", "total"):
        if after[k] != before[k]:
            return f"{k} {after[k]}, expected {before[k]}"
    key = lambda t: t["seat"]
    if sorted(after["tickets"], key=key) != sorted(before["tickets"], key=key):
        return f"tickets {after['tickets']}, expected {before['tickets']}"
    return None


def highest(state, area, n):
    """The `n` highest-numbered places of `area` in `state` (what a remove or a partial
    cancel of n places of the area gives back)."""
    mine = sorted((l for l in state["places"] if l.rsplit("-", 1)[0] == area), key=number)
    return mine[len(mine) - n:] if n else []


class Caller:
    """One logical request, retried with the same key until a final answer."""

    def __init__(self, n, args, log, stop, headers):
        self.args = args
        self.log = log
        self.stop = stop
        self.headers = headers
        self.client = Client(args.url, args.http_timeout)
        self.rng = random.Random(args.seed * 1000 + n)
        self.give_up_at = None

    def call(self, op, method, path, body=None, key=True, extra=None):
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = f"{op}-{uuid.uuid4()}"
        attempts = 0
        while True:
            attempts += 1
            t0 = time.time()
            self.sent = t0
            status, doc, hdrs = self.client.request(method, path, body, headers)
            error = doc.get("error") if 400 <= status < 500 and isinstance(doc, dict) else None
            short = doc.get("areas") if error == "seats_unavailable" else None
            self.log.write(op="answer", what=op, status=status,
                           ms=round((time.time() - t0) * 1000, 2), attempt=attempts,
                           retry_after=hdrs.get("Retry-After") or hdrs.get("retry-after"),
                           **({"error": error} if error else {}),
                           **({"short_areas": short} if short else {}), **(extra or {}))
            # A retry answered from the idempotency record: the earlier attempt had
            # committed although its answer was lost (an in-doubt commit).
            self.replayed = (hdrs.get("Idempotent-Replayed") or hdrs.get("idempotent-replayed")) == "true"
            # A keyed request whose first attempt is still running (its answer was lost,
            # the server has not finished it): not final either.
            in_use = status == 409 and error == "idempotency_key_in_use"
            if 0 < status < 500 and not (key and in_use):
                return status, doc, attempts
            if not key:
                return status, doc, attempts
            # Not final: a 5xx, or no answer (maybe committed, maybe not). Retry with
            # the same key; stop only when the run is over and the budget is spent.
            if not self.keep_trying():
                return status, doc, attempts
            time.sleep(0.05 if status == 0 else 0.1)

    def keep_trying(self):
        """Whether to retry an answer that was not final: always during the run, for
        the retry budget after it."""
        if self.stop.is_set():
            if self.give_up_at is None:
                self.give_up_at = time.time() + self.args.retry_budget
            if time.time() > self.give_up_at:
                return False
        return True


class Crashing(threading.Thread):
    """A thread whose exception is logged (`crash`) and fails the load, instead of
    quietly ending its share of the load."""

    crashed = []

    def run(self):
        try:
            self.work()
        except Exception as e:  # noqa: BLE001 - any bug of the load itself
            import traceback
            Crashing.crashed.append(repr(e))
            self.log.write(op="crash", what=type(self).__name__, error=repr(e),
                           trace=traceback.format_exc()[-2000:])
            raise


class Worker(Crashing):
    def __init__(self, n, args, shows, log, stop):
        super().__init__(daemon=True)
        # Two sessions per user: their holds race for the user's buyer limit.
        self.user = f"fault-{args.run}-{n // 2}"
        self.args = args
        self.caller = Caller(n, args, log, stop, {"X-User-Id": self.user})
        self.call = self.caller.call
        self.rng = self.caller.rng
        self.shows = shows
        self.log = log
        self.stop = stop
        # This session's live bookings per show, oldest first, and the state of each
        # (as state_of, plus `ever`: every seat it ever had, which an exchange never
        # takes back).
        self.bookings = defaultdict(list)
        self.booked = {}
        # Abandoned holds to confirm late, once lapsed: (when, show, hold id, state).
        self.late = []

    def cancel(self, show, booking):
        self.bookings[show.id].remove(booking)
        cur = self.booked.pop(booking, None)
        self.log.write(op="try", what="cancel", booking_id=booking)
        status, doc, attempts = self.call(
            "cancel", "POST", f"/bookings/{booking}/cancel", {}, extra={"booking_id": booking})
        if status == 200:
            # Everything left is cancelled: the booking lists what it had, at its total.
            if cur is not None and doc.get("status") == "cancelled":
                wrong = same(dict(cur, status="cancelled"), doc)
                if wrong:
                    self.unexpected("cancel", status, doc, wrong)
            self.log.write(op="ack", what="cancel", booking_id=booking,
                           status=doc.get("status"), state=state_of(doc), attempts=attempts,
                           sent=self.caller.sent, replayed=self.caller.replayed)
        elif status not in (0,) and status < 500:
            self.log.write(op="unexpected", what="cancel", status=status, body=doc)

    def unexpected(self, what, status, doc, why=None):
        self.log.write(op="unexpected", what=what, status=status, body=doc,
                       **({"why": why} if why else {}))

    def plan_hold(self, show):
        """A hold's body: seats only, places only, or both (on a show with areas)."""
        kind = "seats"
        if show.areas:
            r = self.rng.random()
            kind = "places" if r < 0.3 else "mixed" if r < 0.5 else "seats"
        seats = [] if kind == "places" else self.rng.sample(show.labels, self.rng.randint(1, 3))
        areas = {}
        if kind != "seats":
            codes = list(show.areas)
            picked = self.rng.sample(codes, 2 if len(codes) > 1 and self.rng.random() < 0.2 else 1)
            for code in picked:
                areas[code] = self.rng.randint(1, 4 if kind == "places" else 3)
        body = {"ttl_seconds": None}
        if seats or self.rng.random() < 0.5:
            body["seats"] = seats  # a hold of places only sends `[]` or no `seats`
        if areas:
            body["areas"] = areas
        if len(show.types) > 1 and self.rng.random() < 0.4:
            # Some seats named as a type (a child ticket, say), and for an area a list
            # of types, one a place; the others get the show's default.
            named = {l: self.rng.choice(show.types) for l in seats if self.rng.random() < 0.6}
            for code, n in areas.items():
                if self.rng.random() < 0.6:
                    named[code] = [self.rng.choice(show.types) for _ in range(n)]
            if named:
                body["ticket_types"] = named
        return body, seats, areas

    def check_held(self, show, body, seats, areas, doc):
        """Why a 201 (or a confirm's 200/201) does not answer what was asked, or None."""
        if sorted(doc.get("seats") or []) != sorted(seats):
            return f"seats {doc.get('seats')}, asked {seats}"
        if (doc.get("areas") or {}) != areas:
            return f"areas {doc.get('areas')}, asked {areas}"
        got = place_tickets(doc)
        named = body.get("ticket_types") or {}
        for code, n in areas.items():
            labels = [l for l, _ in got.get(code, [])]
            numbers = [l.rsplit("-", 1)[1] for l in labels if l.startswith(code + "-")]
            if (len(labels) != n or len(set(labels)) != n or len(numbers) != n
                    or not all(x.isdigit() and 1 <= int(x) <= show.areas[code]["capacity"]
                               for x in numbers)):
                return f"{code}: place tickets {got.get(code)}, {n} asked"
            want = named.get(code) or [show.types[0]] * n if show.types else None
            if want is not None and sorted(t for _, t in got[code]) != sorted(want):
                return f"{code}: ticket types {got[code]}, asked {want}"
        if set(got) - set(areas):
            return f"place tickets of areas not asked: {sorted(set(got) - set(areas))}"
        return None

    # ---------------------------------------------------------------- changes (issue 16)

    def change(self, what, path, body, ids, key=True):
        """A keyed POST changing a hold or booking: `try` logged before, `refused` after
        a final 4xx. (status, doc, attempts), as Caller.call."""
        self.log.write(op="try", what=what, body=body, **ids)
        status, doc, attempts = self.call(what, "POST", path, body, key=key, extra=ids)
        if 400 <= status < 500:
            self.log.write(op="refused", what=what, status=status,
                           error=doc.get("error") if isinstance(doc, dict) else None, **ids)
        return status, doc, attempts

    def acked(self, what, ids, doc, attempts, **more):
        self.log.write(op="ack", what=what, **ids, state=state_of(doc), attempts=attempts,
                       sent=self.caller.sent, replayed=self.caller.replayed, **more)

    def unchanged(self, what, path, cur):
        """Now and then, after a refusal, the hold or booking read back: nothing of the
        refused change may show (all or none)."""
        if self.rng.random() >= 0.2:
            return
        status, doc, _ = self.call(f"{what}_read", "GET", path, key=False)
        if status == 200:
            wrong = same(cur, doc)
            if wrong:
                self.unexpected(what, status, doc, f"changed by a refused {what}: {wrong}")

    def refusal(self, show, status, doc, asked_seats=(), asked_areas=(), unsold=(),
                limit_ok=False):
        """Whether a final non-2xx answer to a change is one the load expects (the
        others are logged as unexpected): taken seats and short areas among those asked,
        refused types exactly the unsold ones, a buyer limit that exists."""
        error = doc.get("error") if isinstance(doc, dict) else None
        if status == 409 and error == "seats_unavailable":
            taken, short = doc.get("seats"), doc.get("areas")
            return (isinstance(taken, list) and set(taken) <= set(asked_seats)
                    and set(short or []) <= set(asked_areas) and bool(taken or short))
        if status == 409 and error == "ticket_type_unavailable":
            refused = {("area", t.get("area"), t.get("type")) if "area" in t
                       else ("seat", t.get("seat"), t.get("type"))
                       for t in doc.get("tickets") or []}
            return bool(unsold) and refused == set(unsold)
        if status == 409 and error == "user_limit_reached":
            return limit_ok and show.limit is not None and doc.get("limit") == show.limit
        return False

    def change_hold(self, show, hold, cur):
        """One change of this session's active hold: an add, a remove or new ticket
        types. The hold's state after it; None once the hold is gone (released by
        removing everything, lapsed) or an answer never came."""
        ops = ["add"] * 5 + ["remove"] * 3 + (["retype"] * 2 if len(show.types) > 1 else [])
        return getattr(self, "hold_" + self.rng.choice(ops))(show, hold, cur)

    def hold_add(self, show, hold, cur):
        room = self.args.max_per_hold - len(cur["seats"]) - len(cur["places"])
        if room <= 0:
            return cur
        areas, seats = {}, []
        if show.areas and self.rng.random() < 0.35:
            areas[self.rng.choice(list(show.areas))] = self.rng.randint(1, min(2, room))
        left = room - sum(areas.values())
        if left > 0 and (not areas or self.rng.random() < 0.5):
            pool = [l for l in show.labels if l not in cur["seats"]]
            seats = self.rng.sample(pool, self.rng.randint(1, min(2, left)))
        if not seats and not areas:
            return cur
        # Now and then a seat the hold has already: passed over, nothing added twice.
        again = [self.rng.choice(cur["seats"])] if cur["seats"] and self.rng.random() < 0.2 else []
        body = {}
        if seats or again or self.rng.random() < 0.5:
            body["seats"] = seats + again
        if areas:
            body["areas"] = areas
        named = {}
        if len(show.types) > 1 and self.rng.random() < 0.4:
            named = {l: self.rng.choice(show.types) for l in seats if self.rng.random() < 0.6}
            for code, n in areas.items():
                if self.rng.random() < 0.5:
                    named[code] = [self.rng.choice(show.types) for _ in range(n)]
            if named:
                body["ticket_types"] = named
        ids = {"hold_id": hold}
        status, doc, attempts = self.change("add", f"/holds/{hold}/add", body, ids)
        unsold = show.unsold(seats, named, areas) if show.types else set()
        if status == 200:
            new = state_of(doc)
            wrong = self.check_added(show, cur, new, seats, areas, named)
            if not wrong and unsold:
                wrong = f"added {sorted(unsold)}, not sold as those types"
            if wrong:
                self.unexpected("add", status, doc, wrong)
            self.acked("add", ids, doc, attempts)
            return new
        if status == 410 or status == 0 or status >= 500:
            return None
        if not self.refusal(show, status, doc, seats, areas, unsold, limit_ok=True):
            self.unexpected("add", status, doc, f"asked {body}")
        self.unchanged("add", f"/holds/{hold}", cur)
        return cur

    def check_added(self, show, cur, new, seats, areas, named):
        """Why an add's answer is not the hold before plus what was asked, or None."""
        if new["seats"] != sorted(set(cur["seats"]) | set(seats)):
            return f"seats {new['seats']}, had {cur['seats']} and added {seats}"
        for code in set(cur["areas"]) | set(areas) | set(new["areas"]):
            if new["areas"].get(code, 0) != cur["areas"].get(code, 0) + areas.get(code, 0):
                return f"areas {new['areas']}, had {cur['areas']} and added {areas}"
        if (not set(cur["places"]) <= set(new["places"])
                or len(set(new["places"])) != len(new["places"])):
            return f"places {new['places']}, had {cur['places']}"
        wrong = kept(cur, new)
        if wrong:
            return wrong
        if show.types:
            now = tickets_by_label(new)
            default = show.types[0]
            for l in seats:
                if now.get(l, {}).get("type") != named.get(l, default):
                    return f"{l} sold as {now.get(l)}, asked {named.get(l, default)}"
            for code, n in areas.items():
                added = [now[l]["type"] for l in new["places"]
                         if l not in cur["places"] and l.startswith(code + "-")]
                if sorted(added) != sorted(named.get(code) or [default] * n):
                    return f"{code}: added places sold as {added}, asked {named.get(code)}"
        if new["total"] != summed(new) or new["status"] != "active":
            return f"total {new['total']} (tickets {summed(new)}), status {new['status']}"
        if new.get("expires_at") != cur.get("expires_at"):
            return f"expires_at {new.get('expires_at')}, was {cur.get('expires_at')}"
        return None

    def hold_remove(self, show, hold, cur):
        seats, areas = [], {}
        if self.rng.random() < 0.15:
            seats, areas = list(cur["seats"]), dict(cur["areas"])
        else:
            kind, x = self.rng.choice([("seat", l) for l in cur["seats"]]
                                      + [("area", c) for c in cur["areas"]])
            if kind == "seat":
                seats = [x]
            else:
                areas = {x: self.rng.randint(1, cur["areas"][x])}
        everything = set(seats) == set(cur["seats"]) and areas == cur["areas"]
        # Now and then a seat the hold does not have too: refused, nothing removed.
        bogus = None
        if not everything and self.rng.random() < 0.1:
            bogus = self.rng.choice([l for l in show.labels if l not in cur["seats"]])
        body = {}
        if seats or bogus:
            body["seats"] = seats + ([bogus] if bogus else [])
        if areas:
            body["areas"] = areas
        ids = {"hold_id": hold}
        status, doc, attempts = self.change("remove", f"/holds/{hold}/remove", body, ids)
        if status == 200:
            new = state_of(doc)
            gone = set(seats) | {l for c, n in areas.items() for l in highest(cur, c, n)}
            left = {c: cur["areas"][c] - areas.get(c, 0) for c in cur["areas"]
                    if cur["areas"][c] - areas.get(c, 0)}
            if bogus:
                wrong = f"removed although {bogus} is not in the hold"
            elif everything:
                # Nothing left: released, its seats listed as they were.
                wrong = (None if new["status"] == "released"
                         else f"status {new['status']} after removing everything")
            else:
                wrong = (kept(cur, new, gone)
                         or (new["seats"] != sorted(set(cur["seats"]) - set(seats))
                             and f"seats {new['seats']}, had {cur['seats']}, removed {seats}")
                         or (new["places"] != sorted(set(cur["places"]) - gone)
                             and f"places {new['places']}, had {cur['places']}, "
                                 f"removed {areas} (the highest-numbered go)")
                         or (new["areas"] != left
                             and f"areas {new['areas']}, had {cur['areas']}, removed {areas}")
                         or ((new["total"] != summed(new) or new["status"] != "active"
                              or new.get("expires_at") != cur.get("expires_at"))
                             and f"total {new['total']}, status {new['status']}, "
                                 f"expires_at {new.get('expires_at')}"))
            if wrong:
                self.unexpected("remove", status, doc, wrong)
            self.acked("remove", ids, doc, attempts)
            return None if everything else new
        if status == 410 or status == 0 or status >= 500:
            return None
        error = doc.get("error") if isinstance(doc, dict) else None
        if not (bogus and status == 409 and error == "not_in_hold"
                and doc.get("seats") == [bogus] and not doc.get("areas")):
            self.unexpected("remove", status, doc, f"asked {body}")
        self.unchanged("remove", f"/holds/{hold}", cur)
        return cur

    def hold_retype(self, show, hold, cur):
        named = {}
        if cur["seats"] and (not cur["areas"] or self.rng.random() < 0.6):
            named[self.rng.choice(cur["seats"])] = self.rng.choice(show.types)
        else:
            code = self.rng.choice(list(cur["areas"]))
            named[code] = [self.rng.choice(show.types) for _ in range(cur["areas"][code])]
        body = {"ticket_types": named}
        ids = {"hold_id": hold}
        status, doc, attempts = self.change("retype", f"/holds/{hold}/tickets", body, ids)
        seats = [l for l in named if l in cur["seats"]]
        areas = {c: cur["areas"][c] for c in named if c in cur["areas"]}
        unsold = show.unsold(seats, named, areas)
        if status == 200:
            new = state_of(doc)
            now = tickets_by_label(new)
            retyped = set(seats) | {l for c in areas for l in cur["places"]
                                    if l.startswith(c + "-")}
            wrong = (kept(cur, new, retyped)
                     or ((new["seats"], new["places"], new["areas"])
                         != (cur["seats"], cur["places"], cur["areas"])
                         and f"seats/places {new['seats']} {new['places']}, had "
                             f"{cur['seats']} {cur['places']}")
                     or next((f"{l} sold as {now.get(l)}, asked {named[l]}" for l in seats
                              if now.get(l, {}).get("type") != named[l]), None)
                     or next((f"{c}: places sold as {got}, asked {named[c]} in number order"
                              for c in areas
                              for got in [[now[l]["type"] for l in sorted(
                                  (l for l in new["places"] if l.startswith(c + "-")),
                                  key=number)]]
                              if got != named[c]), None)
                     or (new["total"] != summed(new) and f"total {new['total']}")
                     or (unsold and f"sold {sorted(unsold)}, not sold as those types"))
            if wrong:
                self.unexpected("retype", status, doc, wrong)
            self.acked("retype", ids, doc, attempts)
            return new
        if status == 410 or status == 0 or status >= 500:
            return None
        if not self.refusal(show, status, doc, unsold=unsold):
            self.unexpected("retype", status, doc, f"asked {body}")
        self.unchanged("retype", f"/holds/{hold}", cur)
        return cur

    def confirm_late(self):
        """The oldest abandoned hold kept for it, once lapsed: confirmed late."""
        _, show, hold, cur = self.late.pop(0)
        ids = {"hold_id": hold, "late": True}
        self.log.write(op="try", what="confirm", **ids)
        status, doc, attempts = self.call(
            "confirm", "POST", f"/holds/{hold}/confirm", {"allow_late": True}, extra=ids)
        error = doc.get("error") if isinstance(doc, dict) else None
        if status in (200, 201):
            wrong = same(cur, doc)
            if wrong:
                self.unexpected("confirm", status, doc, f"late: {wrong}")
            self.booking_confirmed(show, hold, doc, status, attempts, late=True)
        elif status == 410 and error == "hold_expired":
            # Someone took some of its seats meanwhile: only its own are named.
            if not set(doc.get("seats") or []) <= set(cur["seats"]) | set(cur["places"]):
                self.unexpected("confirm", status, doc, f"late: the hold had {cur}")
        elif status == 409 and error == "user_limit_reached" and show.limit is not None:
            pass
        elif status not in (0,) and status < 500:
            self.unexpected("confirm", status, doc, "late")

    def booking_confirmed(self, show, hold, doc, status, attempts, late=False):
        booking = doc["booking_id"]
        self.log.write(op="ack", what="confirm", hold_id=hold, booking_id=booking,
                       seats=sorted(doc["seats"]), areas=doc.get("areas") or {},
                       places=sorted(l for ts in place_tickets(doc).values() for l, _ in ts),
                       tickets=doc.get("tickets"),
                       total=doc.get("total"), status=status, attempts=attempts,
                       sent=self.caller.sent, replayed=self.caller.replayed,
                       **({"late": True} if late else {}))
        self.bookings[show.id].append(booking)
        self.booked[booking] = dict(state_of(doc), ever=set(doc["seats"]))
        return booking

    def change_booking(self, show):
        """A partial cancel or an exchange of one of this session's live bookings."""
        live = [b for b in self.bookings[show.id] if b in self.booked]
        if not live:
            return
        b = self.rng.choice(live)
        cur = self.booked[b]
        if cur["seats"] and self.rng.random() < 0.5:
            self.exchange(show, b, cur)
        else:
            self.cancel_part(show, b, cur)

    def cancel_part(self, show, booking, cur):
        seats, areas = [], {}
        kind, x = self.rng.choice([("seat", l) for l in cur["seats"]]
                                  + [("area", c) for c in cur["areas"]])
        if kind == "seat":
            seats = [x]
            others = [l for l in cur["seats"] if l != x]
            if others and self.rng.random() < 0.3:
                seats.append(self.rng.choice(others))
        else:
            areas = {x: self.rng.randint(1, cur["areas"][x])}
        everything = set(seats) == set(cur["seats"]) and areas == cur["areas"]
        # Now and then a seat the booking never had too: refused, nothing cancelled.
        bogus = None
        if not everything and self.rng.random() < 0.1:
            bogus = self.rng.choice([l for l in show.labels if l not in cur["ever"]])
        body = {}
        if seats or bogus:
            body["seats"] = seats + ([bogus] if bogus else [])
        if areas:
            body["areas"] = areas
        ids = {"booking_id": booking}
        path = f"/bookings/{booking}/cancel"
        status, doc, attempts = self.change("cancel_part", path, body, ids)
        if status == 200:
            new = state_of(doc)
            gone = set(seats) | {l for c, n in areas.items() for l in highest(cur, c, n)}
            before = tickets_by_label(cur)
            cancelled = doc.get("cancelled")
            if bogus:
                wrong = f"cancelled although {bogus} was never booked"
            elif (not isinstance(cancelled, list)
                  or sorted(t.get("seat") for t in cancelled) != sorted(gone)
                  or any(before.get(t.get("seat")) != t for t in cancelled)):
                wrong = f"cancelled {cancelled}, expected the tickets of {sorted(gone)}"
            elif everything:
                # Nothing left: cancelled, listing what it had, at the total it had.
                wrong = same(cur, doc) or (new["status"] != "cancelled"
                                           and f"status {new['status']}")
            else:
                price = sum(t.get("price") or 0 for t in cancelled)
                wrong = (kept(cur, new, gone)
                         or ((new["seats"] != sorted(set(cur["seats"]) - gone)
                              or new["places"] != sorted(set(cur["places"]) - gone))
                             and f"seats {new['seats']} {new['places']}, had {cur['seats']} "
                                 f"{cur['places']}, cancelled {sorted(gone)}")
                         or ((new["total"] != cur["total"] - price
                              or new["total"] != summed(new) or new["status"] != "confirmed")
                             and f"total {new['total']}, had {cur['total']}, "
                                 f"status {new['status']}"))
            if wrong:
                self.unexpected("cancel_part", status, doc, wrong)
            self.acked("cancel_part", ids, doc, attempts,
                       cancelled=sorted(t.get("seat") for t in cancelled or []))
            if new["status"] == "cancelled":
                self.bookings[show.id].remove(booking)
                self.booked.pop(booking, None)
            else:
                self.booked[booking] = dict(new, ever=cur["ever"])
            if seats and not areas and self.rng.random() < 0.3:
                # The same seats again without a key: 200, nothing cancelled twice.
                self.log.write(op="try", what="cancel_repeat", body=body, **ids)
                status, doc2, attempts = self.call("cancel_repeat", "POST", path, body,
                                                   key=False, extra=ids)
                if status == 200:
                    wrong = same(new, doc2) or (doc2.get("cancelled") != []
                                                and f"cancelled {doc2.get('cancelled')}")
                    if wrong:
                        self.unexpected("cancel_repeat", status, doc2, wrong)
                    self.acked("cancel_repeat", ids, doc2, attempts)
                elif status not in (0,) and status < 500:
                    self.unexpected("cancel_repeat", status, doc2)
            return
        if status == 0 or status >= 500:
            return
        error = doc.get("error") if isinstance(doc, dict) else None
        if not (bogus and status == 409 and error == "not_in_booking"
                and doc.get("seats") == [bogus] and not doc.get("areas")):
            self.unexpected("cancel_part", status, doc, f"asked {body}")
        self.unchanged("cancel_part", f"/bookings/{booking}", cur)

    def exchange(self, show, booking, cur):
        release = self.rng.sample(cur["seats"], 2 if len(cur["seats"]) > 1
                                  and self.rng.random() < 0.3 else 1)
        room = self.args.max_per_hold - len(cur["seats"]) - len(cur["places"]) + len(release)
        pool = [l for l in show.labels if l not in cur["ever"]]
        take = self.rng.sample(pool, max(1, min(room, self.rng.choice([1, 1, 2]))))
        body = {"release": release, "take": take}
        named = {}
        if len(show.types) > 1 and self.rng.random() < 0.4:
            named = {l: self.rng.choice(show.types) for l in take if self.rng.random() < 0.6}
            if named:
                body["ticket_types"] = named
        ids = {"booking_id": booking}
        status, doc, attempts = self.change("exchange", f"/bookings/{booking}/exchange",
                                            body, ids)
        unsold = show.unsold(take, named) if show.types else set()
        if status == 200:
            new = state_of(doc)
            now, before = tickets_by_label(new), tickets_by_label(cur)
            diff = doc.get("difference")
            default = show.types[0] if show.types else None
            wrong = (kept(cur, new, set(release))
                     or ((new["seats"] != sorted(set(cur["seats"]) - set(release) | set(take))
                          or new["places"] != cur["places"])
                         and f"seats {new['seats']} {new['places']}, had {cur['seats']}, gave "
                             f"back {release}, took {take}")
                     or next((f"{l} sold as {now.get(l)}, asked {named.get(l, default)}"
                              for l in take if default is not None
                              and now.get(l, {}).get("type") != named.get(l, default)), None)
                     or ((not isinstance(diff, int) or new["total"] != cur["total"] + diff
                          or new["total"] != summed(new)
                          or diff != sum(now.get(l, {}).get("price") or 0 for l in take)
                          - sum(before[l].get("price") or 0 for l in release)
                          or new["status"] != "confirmed")
                         and f"total {new['total']}, had {cur['total']}, difference {diff}, "
                             f"status {new['status']}")
                     or (unsold and f"took {sorted(unsold)}, not sold as those types"))
            if wrong:
                self.unexpected("exchange", status, doc, wrong)
            self.acked("exchange", ids, doc, attempts, difference=diff)
            self.booked[booking] = dict(new, ever=cur["ever"] | set(take))
            return
        if status == 0 or status >= 500:
            return
        if not self.refusal(show, status, doc, take, (), unsold,
                            limit_ok=len(take) > len(release)):
            self.unexpected("exchange", status, doc, f"asked {body}")
        self.unchanged("exchange", f"/bookings/{booking}", cur)

    def work(self):
        while not self.stop.is_set():
            if self.late and self.late[0][0] <= time.time():
                self.confirm_late()
            show = self.rng.choice(self.shows)
            plan = self.rng.random()
            # Abandoned holds get a short life so that the sweeper has work.
            ttl = self.rng.choice([1, 2]) if plan > 0.75 else 30
            keyed = self.rng.random() >= 0.3
            body, seats, areas = self.plan_hold(show)
            body["ttl_seconds"] = ttl
            k = len(seats) + sum(areas.values())
            places = sum(areas.values())
            status, doc, attempts = self.call(
                "hold", "POST", f"/shows/{show.id}/holds", body, key=keyed,
                extra={"places": places, "show": show.id} if places else {"show": show.id})
            named = body.get("ticket_types") or {}
            unsold = show.unsold(seats, named, areas) if show.types else set()
            if status == 201 and unsold:
                self.unexpected("hold", status, doc, f"held {sorted(unsold)}, not sold as those types")
            if status != 201:
                error = doc.get("error") if isinstance(doc, dict) else None
                if status == 409 and error == "user_limit_reached":
                    # The answer says the limit, and that these seats would pass it.
                    if (show.limit is None or doc.get("limit") != show.limit
                            or not isinstance(doc.get("current"), int)
                            or doc["current"] + k <= show.limit):
                        self.unexpected("hold", status, doc,
                                        f"limit {show.limit}, {k} seats and places asked")
                    # Make room: the oldest booking of this session goes.
                    if self.bookings[show.id]:
                        self.cancel(show, self.bookings[show.id][0])
                    continue
                if status == 409 and error == "ticket_type_unavailable":
                    refused = {("area", t.get("area"), t.get("type")) if "area" in t
                               else ("seat", t.get("seat"), t.get("type"))
                               for t in doc.get("tickets") or []}
                    if not unsold or refused != unsold:
                        self.unexpected("hold", status, doc,
                                        f"asked {named}, unsold {sorted(unsold)}")
                    continue
                if status == 409 and error == "seats_unavailable":
                    # Only seats and areas asked for are refused, and something is.
                    taken, short = doc.get("seats"), doc.get("areas")
                    if (not isinstance(taken, list) or not set(taken) <= set(seats)
                            or not set(short or []) <= set(areas) or (not taken and not short)
                            or (short is not None and not short)):
                        self.unexpected("hold", status, doc, f"asked {seats} and {areas}")
                    continue
                if status == 410:
                    continue
                if status == 0 or status >= 500:
                    continue
                self.unexpected("hold", status, doc)
                continue
            hold = doc["hold_id"]
            wrong = self.check_held(show, body, seats, areas, doc)
            if wrong:
                self.unexpected("hold", status, doc, wrong)
            self.log.write(op="ack", what="hold", hold_id=hold, user=self.user,
                           seats=sorted(doc["seats"]), areas=doc.get("areas") or {},
                           places=sorted(l for ts in place_tickets(doc).values() for l, _ in ts),
                           tickets=doc.get("tickets"), total=doc.get("total"),
                           asked_types=body.get("ticket_types"),
                           attempts=attempts, sent=self.caller.sent,
                           replayed=self.caller.replayed, keyed=keyed)
            # Issue 16: the hold changes before its fate (one hold in two), keyed.
            cur = state_of(doc)
            changed = False
            if self.rng.random() < self.args.changes:
                for _ in range(self.rng.choice([1, 1, 2])):
                    cur = self.change_hold(show, hold, cur)
                    if cur is None:
                        break
                    changed = True
                if cur is None:
                    continue
            if plan < 0.55:
                self.log.write(op="try", what="confirm", hold_id=hold)
                # Issue 17: one confirm in two names the integrator's order (its own
                # per hold, so never taken) and metadata; the audit checks the booking
                # kept them.
                order = {}
                if self.rng.random() < 0.5:
                    order = {"external_ref": f"order-{hold}", "metadata": {"load": True}}
                status, doc, attempts = self.call(
                    "confirm", "POST", f"/holds/{hold}/confirm", order,
                    extra={"hold_id": hold})
                if status in (200, 201):
                    # The booking has what the hold had: as asked, or as last changed.
                    wrong = (same(cur, doc) if changed
                             else self.check_held(show, body, seats, areas, doc))
                    if not wrong and status == 201 and order and (
                            doc.get("external_ref") != order["external_ref"]
                            or doc.get("metadata") != order["metadata"]):
                        wrong = f"the booking lost its reference: {doc}"
                    if wrong:
                        self.unexpected("confirm", status, doc, wrong)
                    booking = self.booking_confirmed(show, hold, doc, status, attempts)
                    # A show with a buyer limit keeps its bookings until the limit
                    # asks for room.
                    if show.limit is None and self.rng.random() < 0.25:
                        self.cancel(show, booking)
                elif status not in (0, 410) and status < 500:
                    self.unexpected("confirm", status, doc)
            elif plan < 0.75:
                self.log.write(op="try", what="release", hold_id=hold)
                status, doc, attempts = self.call(
                    "release", "DELETE", f"/holds/{hold}", None, key=False,
                    extra={"hold_id": hold})
                # DELETE is idempotent by itself: retry it the same way.
                while (status == 0 or status >= 500) and not self.stop.is_set():
                    time.sleep(0.05)
                    status, doc, attempts = self.call(
                        "release", "DELETE", f"/holds/{hold}", None, key=False,
                        extra={"hold_id": hold})
                if status == 204:
                    self.log.write(op="ack", what="release", hold_id=hold)
                elif status not in (0,) and status < 500:
                    self.unexpected("release", status, doc)
            elif self.rng.random() < self.args.changes * 0.7 and len(self.late) < 4:
                # Abandoned, but paid a moment too late: confirmed once lapsed.
                self.late.append((time.time() + ttl + self.rng.uniform(0.1, 1.5),
                                  show, hold, cur))
            if self.rng.random() < self.args.changes * 0.6:
                self.change_booking(show)
            r = self.rng.random()
            if r < 0.2:
                status, doc, _ = self.call("seats", "GET", f"/shows/{show.id}/seats", key=False,
                                           extra={"show": show.id})
                if status == 200 and show.areas:
                    wrong = show.check_counts(doc.get("areas") or [])
                    if wrong:
                        self.unexpected("seats", status, doc.get("areas"), wrong)
            elif r < 0.3 and show.areas:
                status, doc, _ = self.call("areas", "GET", f"/shows/{show.id}/areas", key=False,
                                           extra={"show": show.id})
                if status == 200:
                    wrong = show.check_counts(doc.get("areas") or [])
                    if wrong:
                        self.unexpected("areas", status, doc, wrong)
                elif status not in (0,) and status < 500:
                    self.unexpected("areas", status, doc)


class BoxOffice(Crashing):
    """The admin: blocks random seats and deletes its blocks again during the load."""

    REASON = "fault suite"

    def __init__(self, args, shows, log, stop):
        super().__init__(daemon=True)
        self.caller = Caller(10_000, args, log, stop,
                             {"Authorization": "Bearer " + args.admin_token})
        self.call = self.caller.call
        self.rng = self.caller.rng
        self.shows = shows
        self.log = log
        self.stop = stop
        self.blocks = []  # (show id, block id) of blocks made and not deleted
        self.free = {}  # show id -> seats available in its last seat map read
        self.reads = Counter()

    def block(self):
        show = self.rng.choice(self.shows)
        n = self.rng.randint(1, 4)
        if self.rng.random() < 0.5:
            # Seats free a moment ago (the admin seat map, read from the database every
            # tenth time); taken by now, some of them.
            if self.reads[show.id] % 10 == 0 or len(self.free.get(show.id, ())) < n:
                status, doc, _ = self.call("seats", "GET", f"/shows/{show.id}/seats", key=False,
                                           extra={"show": show.id})
                if status == 200:
                    self.free[show.id] = [s["label"] for s in doc["seats"]
                                          if s["state"] == "available"]
            self.reads[show.id] += 1
            pool = self.free.get(show.id) or show.labels
        else:
            pool = show.labels
        seats = self.rng.sample(pool, min(n, len(pool)))
        self.log.write(op="try", what="block", show=show.id, seats=sorted(seats))
        status, doc, attempts = self.call(
            "block", "POST", f"/shows/{show.id}/blocks", {"seats": seats, "reason": self.REASON},
            extra={"show": show.id})
        if status == 201:
            self.blocks.append((show.id, doc["block_id"]))
            self.log.write(op="ack", what="block", show=show.id, block_id=doc["block_id"],
                           seats=sorted(doc["seats"]), reason=doc.get("reason"),
                           attempts=attempts, sent=self.caller.sent,
                           replayed=self.caller.replayed)
        elif status == 409 and isinstance(doc, dict) and doc.get("error") == "seats_unavailable":
            pass
        elif status not in (0,) and status < 500:
            self.log.write(op="unexpected", what="block", status=status, body=doc)

    def unblock(self):
        show, block = self.blocks.pop(self.rng.randrange(len(self.blocks)))
        self.log.write(op="try", what="unblock", show=show, block_id=block)
        lost = 0
        while True:
            status, doc, attempts = self.call(
                "unblock", "DELETE", f"/shows/{show}/blocks/{block}", None, key=False,
                extra={"show": show, "block_id": block})
            if status == 0 or status >= 500:
                lost += 1
                if self.caller.keep_trying():
                    time.sleep(0.05)
                    continue
            break
        error = doc.get("error") if isinstance(doc, dict) else None
        if status == 204 or (status == 404 and error == "block_not_found" and lost):
            # A 404 after an attempt whose answer was lost: that attempt deleted it.
            self.log.write(op="ack", what="unblock", show=show, block_id=block,
                           status=status, attempts=lost + 1)
        elif status not in (0,) and status < 500:
            self.log.write(op="unexpected", what="unblock", status=status, body=doc)

    def work(self):
        while not self.stop.is_set():
            time.sleep(self.rng.uniform(0.01, 0.1))
            if self.blocks and (len(self.blocks) >= 12 or self.rng.random() < 0.3):
                self.unblock()
            else:
                self.block()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", action="append", required=True)
    p.add_argument("--show", action="append", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--duration", type=float)
    p.add_argument("--stop-file", help="stop when this file exists")
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--run", default=uuid.uuid4().hex[:8])
    p.add_argument("--http-timeout", type=float, default=15.0)
    p.add_argument("--retry-budget", type=float, default=30.0,
                   help="after the stop, seconds a worker keeps retrying an unanswered request")
    p.add_argument("--admin-token", default=os.environ.get("ADMIN_TOKEN"),
                   help="the box office worker blocks and unblocks seats (default $ADMIN_TOKEN)")
    p.add_argument("--no-blocks", action="store_true", help="no box office worker")
    p.add_argument("--changes", type=float, default=0.5,
                   help="how often a hold or booking changes (issue 16; 0: never)")
    p.add_argument("--max-per-hold", type=int, default=10,
                   help="the servers' MAX_SEATS_PER_HOLD (adds and exchanges stay within)")
    args = p.parse_args()

    c = Client(args.url, 10)
    shows = []
    for show_id in args.show:
        for _ in range(100):
            status, seat_map, _ = c.request("GET", f"/shows/{show_id}/seats")
            status2, show, _ = c.request("GET", f"/shows/{show_id}")
            if status == 200 and status2 == 200:
                break
            time.sleep(0.1)
        else:
            sys.exit(f"load.py: cannot read show {show_id} and its seat map")
        shows.append(Show(show_id, seat_map, show))

    log = Log(args.log)
    stop = threading.Event()
    workers = [Worker(n, args, shows, log, stop) for n in range(args.workers)]
    if args.admin_token and not args.no_blocks:
        workers.append(BoxOffice(args, shows, log, stop))
    t0 = time.time()
    log.write(op="start", workers=args.workers, urls=args.url, shows=args.show,
              limits={s.id: s.limit for s in shows}, types={s.id: s.types for s in shows},
              areas={s.id: {c: a["capacity"] for c, a in s.areas.items()} for s in shows},
              box_office=len(workers) > args.workers)
    for w in workers:
        w.start()
    while True:
        time.sleep(0.05)
        if args.duration is not None and time.time() - t0 >= args.duration:
            break
        if args.stop_file and os.path.exists(args.stop_file):
            break
    stop.set()
    for w in workers:
        w.join(args.retry_budget + args.http_timeout + 5)
    log.write(op="stop", seconds=round(time.time() - t0, 2))
    if Crashing.crashed:
        sys.exit(f"load.py: {len(Crashing.crashed)} workers crashed: {Crashing.crashed[:3]}")


if __name__ == "__main__":
    main()

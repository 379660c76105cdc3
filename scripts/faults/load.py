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
- one `try` line before the first attempt of each confirm, release, cancel, block and
  unblock (so the audit knows which outcomes the database may show even without an
  acknowledgement);
- one `ack` line per final 2xx: the op and what the answer said (ids, seats, places
  and area counts, tickets, total), the number of attempts and when the last one was
  sent.
The audit (audit.py) checks every `ack` against the database.
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
            if 0 < status < 500:
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


class Worker(threading.Thread):
    def __init__(self, n, args, shows, log, stop):
        super().__init__(daemon=True)
        # Two sessions per user: their holds race for the user's buyer limit.
        self.user = f"fault-{args.run}-{n // 2}"
        self.caller = Caller(n, args, log, stop, {"X-User-Id": self.user})
        self.call = self.caller.call
        self.rng = self.caller.rng
        self.shows = shows
        self.log = log
        self.stop = stop
        # This session's live bookings per show, oldest first.
        self.bookings = defaultdict(list)

    def cancel(self, show, booking):
        self.bookings[show.id].remove(booking)
        self.log.write(op="try", what="cancel", booking_id=booking)
        status, doc, attempts = self.call(
            "cancel", "POST", f"/bookings/{booking}/cancel", {}, extra={"booking_id": booking})
        if status == 200:
            self.log.write(op="ack", what="cancel", booking_id=booking,
                           status=doc.get("status"), attempts=attempts,
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

    def run(self):
        while not self.stop.is_set():
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
            if plan < 0.55:
                self.log.write(op="try", what="confirm", hold_id=hold)
                status, doc, attempts = self.call(
                    "confirm", "POST", f"/holds/{hold}/confirm", {}, extra={"hold_id": hold})
                if status in (200, 201):
                    booking = doc["booking_id"]
                    wrong = self.check_held(show, body, seats, areas, doc)
                    if wrong:
                        self.unexpected("confirm", status, doc, wrong)
                    self.log.write(op="ack", what="confirm", hold_id=hold, booking_id=booking,
                                   seats=sorted(doc["seats"]), areas=doc.get("areas") or {},
                                   places=sorted(l for ts in place_tickets(doc).values()
                                                 for l, _ in ts),
                                   tickets=doc.get("tickets"),
                                   total=doc.get("total"), status=status, attempts=attempts,
                                   sent=self.caller.sent, replayed=self.caller.replayed)
                    self.bookings[show.id].append(booking)
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
            r = self.rng.random()
            if r < 0.2:
                status, doc, _ = self.call("seats", "GET", f"/shows/{show.id}/seats", key=False)
                if status == 200 and show.areas:
                    wrong = show.check_counts(doc.get("areas") or [])
                    if wrong:
                        self.unexpected("seats", status, doc.get("areas"), wrong)
            elif r < 0.3 and show.areas:
                status, doc, _ = self.call("areas", "GET", f"/shows/{show.id}/areas", key=False)
                if status == 200:
                    wrong = show.check_counts(doc.get("areas") or [])
                    if wrong:
                        self.unexpected("areas", status, doc, wrong)
                elif status not in (0,) and status < 500:
                    self.unexpected("areas", status, doc)


class BoxOffice(threading.Thread):
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
                status, doc, _ = self.call("seats", "GET", f"/shows/{show.id}/seats", key=False)
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

    def run(self):
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


if __name__ == "__main__":
    main()

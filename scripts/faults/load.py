#!/usr/bin/env python3
"""The fault suite's load: an on-sale's mix of requests, and a log of every answer.

    load.py --url URL [--url URL ...] --show ID --log FILE [--workers N]
            [--duration SECS | --stop-file PATH] [--seed N]

Each worker is one user (`fault-<run>-<n>`) doing, again and again: hold 1 to 3
random seats; then confirm (and sometimes cancel the booking), release, or abandon
the hold to the sweeper with a short ttl. Load is spread over every `--url`, request
by request, so several server processes serve the same users.

Every POST carries an `Idempotency-Key`, except three holds in ten: those take the
server's other path (hold batches, several users' holds in one statement) and are not
retried, since without a key a retry is a new request. When a keyed request's answer is
not final (the connection failed, or a 5xx), the worker retries the same request with
the same key until it gets a final answer or the retry budget runs out: a request whose
COMMIT ended in doubt is thereby retried, and the audit checks that nothing was done
twice. Every acknowledged hold, keyed or not, must be in the database.

The log (JSON lines, flushed per line) has:
- one `answer` line per HTTP attempt: time, op, status (0 = no answer), latency;
- one `try` line before the first attempt of each confirm, release and cancel (so the
  audit knows which outcomes the database may show even without an acknowledgement);
- one `ack` line per final 2xx: the op and what the answer said (ids, seats), the
  number of attempts and when the last one was sent.
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


class Worker(threading.Thread):
    def __init__(self, n, args, labels, log, stop):
        super().__init__(daemon=True)
        self.user = f"fault-{args.run}-{n}"
        self.args = args
        self.labels = labels
        self.log = log
        self.stop = stop
        self.client = Client(args.url, args.http_timeout)
        self.rng = random.Random(args.seed * 1000 + n)
        self.give_up_at = None

    def call(self, op, method, path, body=None, key=True, extra=None):
        """One logical request, retried with the same key until a final answer."""
        headers = {"X-User-Id": self.user}
        if key:
            headers["Idempotency-Key"] = f"{op}-{uuid.uuid4()}"
        attempts = 0
        while True:
            attempts += 1
            t0 = time.time()
            self.sent = t0
            status, doc, hdrs = self.client.request(method, path, body, headers)
            self.log.write(op="answer", what=op, status=status,
                           ms=round((time.time() - t0) * 1000, 2), attempt=attempts,
                           retry_after=hdrs.get("Retry-After") or hdrs.get("retry-after"),
                           **(extra or {}))
            # A retry answered from the idempotency record: the earlier attempt had
            # committed although its answer was lost (an in-doubt commit).
            self.replayed = (hdrs.get("Idempotent-Replayed") or hdrs.get("idempotent-replayed")) == "true"
            if 0 < status < 500:
                return status, doc, attempts
            if not key:
                return status, doc, attempts
            # Not final: a 5xx, or no answer (maybe committed, maybe not). Retry with
            # the same key; stop only when the run is over and the budget is spent.
            if self.stop.is_set():
                if self.give_up_at is None:
                    self.give_up_at = time.time() + self.args.retry_budget
                if time.time() > self.give_up_at:
                    return status, doc, attempts
            time.sleep(0.05 if status == 0 else 0.1)

    def run(self):
        show = self.args.show
        while not self.stop.is_set():
            k = self.rng.randint(1, 3)
            seats = self.rng.sample(self.labels, k)
            plan = self.rng.random()
            # Abandoned holds get a short life so that the sweeper has work.
            ttl = self.rng.choice([1, 2]) if plan > 0.75 else 30
            keyed = self.rng.random() >= 0.3
            status, doc, attempts = self.call(
                "hold", "POST", f"/shows/{show}/holds", {"seats": seats, "ttl_seconds": ttl},
                key=keyed)
            if status != 201:
                if status == 409 or status == 410:
                    continue
                if status == 0 or status >= 500:
                    continue
                self.log.write(op="unexpected", what="hold", status=status, body=doc)
                continue
            hold = doc["hold_id"]
            self.log.write(op="ack", what="hold", hold_id=hold, user=self.user,
                           seats=sorted(doc["seats"]), attempts=attempts, sent=self.sent,
                           replayed=self.replayed, keyed=keyed)
            if plan < 0.55:
                self.log.write(op="try", what="confirm", hold_id=hold)
                status, doc, attempts = self.call(
                    "confirm", "POST", f"/holds/{hold}/confirm", {}, extra={"hold_id": hold})
                if status in (200, 201):
                    booking = doc["booking_id"]
                    self.log.write(op="ack", what="confirm", hold_id=hold, booking_id=booking,
                                   seats=sorted(doc["seats"]), status=status, attempts=attempts,
                                   sent=self.sent, replayed=self.replayed)
                    if self.rng.random() < 0.25:
                        self.log.write(op="try", what="cancel", booking_id=booking)
                        status, doc, attempts = self.call(
                            "cancel", "POST", f"/bookings/{booking}/cancel", {},
                            extra={"booking_id": booking})
                        if status == 200:
                            self.log.write(op="ack", what="cancel", booking_id=booking,
                                           status=doc.get("status"), attempts=attempts,
                                           sent=self.sent, replayed=self.replayed)
                        elif status not in (0,) and status < 500:
                            self.log.write(op="unexpected", what="cancel", status=status, body=doc)
                elif status not in (0, 410) and status < 500:
                    self.log.write(op="unexpected", what="confirm", status=status, body=doc)
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
                    self.log.write(op="unexpected", what="release", status=status, body=doc)
            if self.rng.random() < 0.2:
                self.call("seats", "GET", f"/shows/{show}/seats", key=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", action="append", required=True)
    p.add_argument("--show", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--duration", type=float)
    p.add_argument("--stop-file", help="stop when this file exists")
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--run", default=uuid.uuid4().hex[:8])
    p.add_argument("--http-timeout", type=float, default=15.0)
    p.add_argument("--retry-budget", type=float, default=30.0,
                   help="after the stop, seconds a worker keeps retrying an unanswered request")
    args = p.parse_args()

    c = Client(args.url, 10)
    for _ in range(100):
        status, doc, _ = c.request("GET", f"/shows/{args.show}/seats")
        if status == 200:
            break
        time.sleep(0.1)
    else:
        sys.exit(f"load.py: cannot read the seat map of show {args.show}")
    labels = [s["label"] for s in doc["seats"]]

    log = Log(args.log)
    stop = threading.Event()
    workers = [Worker(n, args, labels, log, stop) for n in range(args.workers)]
    t0 = time.time()
    log.write(op="start", workers=args.workers, urls=args.url, show=args.show)
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

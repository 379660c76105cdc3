#!/usr/bin/env python3
"""A queued show in the fault suite's load: buyers join its waiting room, before and
after sales open, and the admitted ones hold seats from several threads at once, more
than the queue's allowance, through server kills and restarts.

  queue.py create --url URL --token ADMIN_TOKEN
      Creates the queued show (sales open 3 s later, 600 admitted a minute, each for a
      minute, 4 seats each) and prints its id.
  queue.py load --url URL --show ID --log PATH --stop-file PATH [--users N]
      Joins N buyers (two thirds before the start), then lets every admitted buyer
      hold 1 or 2 seats from 3 threads at once until the stop file exists. Logs every
      acknowledged join (`{"op": "join", "user", "status"}`) and hold (`{"op": "hold",
      "user", "hold_id", "seats"}`) as a JSON line: the audit
      (`audit.py --queue-show ID --queue-log PATH`) checks the database against it.

Connection errors (a killed server) are retried; no answer is ever logged as one.
"""

import argparse
import http.client
import json
import random
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

ROWS, SEATS = 5, 10


def create(args):
    start = datetime.now(timezone.utc) + timedelta(seconds=3)
    body = {"title": "Queued fault show", "starts_at": "2027-01-01T20:00:00Z",
            "prices": {"standard": 1000},
            "rows": [{"row": "ABCDE"[i], "seats": SEATS} for i in range(ROWS)],
            "sales_start": start.isoformat(),
            "queue": {"admit_per_minute": 600, "admission_minutes": 1, "max_seats": 4}}
    req = urllib.request.Request(args.url + "/shows", json.dumps(body).encode(),
                                 {"Content-Type": "application/json",
                                  "Authorization": "Bearer " + args.token})
    print(json.load(urllib.request.urlopen(req))["id"])


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, **rec):
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")


def call(url, method, path, user, body=None, stop=None, budget=60.0):
    """(status, doc), retrying while no answer comes (the server is down) for at most
    `budget` seconds; (0, None) when none came."""
    t = urlparse(url)
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-User-Id": user}
    if data is not None:
        headers["Content-Type"] = "application/json"
    deadline = time.time() + budget
    while time.time() < deadline:
        c = http.client.HTTPConnection(t.hostname, t.port, timeout=10)
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        except (OSError, http.client.HTTPException, ValueError):
            if stop is not None and stop():
                break
            time.sleep(0.2)
        finally:
            c.close()
    return 0, None


def load(args):
    log = Log(args.log)
    stopped = lambda: args.stop_file and __import__("os").path.exists(args.stop_file)
    users = [f"q-{args.run}-{i:04d}" for i in range(args.users)]
    labels = [f"{'ABCDE'[r]}{n}" for r in range(ROWS) for n in range(1, SEATS + 1)]
    joined = []

    def join(u):
        # A join is idempotent (200 with the same entry): retrying one is safe.
        status, doc = call(args.url, "POST", f"/shows/{args.show}/queue", u, stop=stopped)
        if status in (200, 201):
            log.write(op="join", user=u, status=status, position=doc.get("position"))
            joined.append(u)
        elif status != 0:
            log.write(op="join_refused", user=u, status=status, doc=doc)

    early, late = users[: 2 * len(users) // 3], users[2 * len(users) // 3:]
    threads = [threading.Thread(target=join, args=(u,)) for u in early]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    time.sleep(4)  # past sales_start
    threads = [threading.Thread(target=join, args=(u,)) for u in late]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    def buyer(u):
        rng = random.Random(f"{args.seed}-{u}")
        while not stopped():
            status, me = call(args.url, "GET", f"/shows/{args.show}/queue/me", u, stop=stopped)
            if status != 200:
                time.sleep(0.5)
                continue
            if me["state"] == "expired":
                return
            if me["state"] != "admitted":
                time.sleep(0.3)
                continue
            seats = rng.sample(labels, rng.choice((1, 2)))
            status, doc = call(args.url, "POST", f"/shows/{args.show}/holds", u,
                               {"seats": seats, "ttl_seconds": 60}, stop=stopped, budget=5)
            if status == 201:
                log.write(op="hold", user=u, hold_id=doc["hold_id"], seats=doc["seats"])
            elif status not in (0, 409, 503):
                log.write(op="hold_refused", user=u, status=status, doc=doc)
            time.sleep(rng.random() * 0.3)

    threads = [threading.Thread(target=buyer, args=(u,)) for u in joined for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--url", required=True)
    c.add_argument("--token", required=True)
    ld = sub.add_parser("load")
    ld.add_argument("--url", required=True)
    ld.add_argument("--show", required=True)
    ld.add_argument("--log", required=True)
    ld.add_argument("--stop-file")
    ld.add_argument("--users", type=int, default=60)
    ld.add_argument("--seed", type=int, default=int(time.time()))
    ld.add_argument("--run", default=f"{random.randrange(16**6):06x}")
    args = p.parse_args()
    {"create": create, "load": load}[args.cmd](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The fault suite's webhook receiver and its check against the feed.

    webhooks.py serve --port PORT --out FILE [--fail-every N]
    webhooks.py create --url SERVER --token TOKEN --hook URL --out FILE
    webhooks.py check --db URL --got FILE --hook-file FILE [--wait SECS] [--json OUT]

`serve` is a real HTTP receiver on loopback: it appends one JSON line per request to
FILE (webhook-id, -timestamp, -signature, body, the status it answered) and answers
204, or 500 to every Nth request (retries then show in the log). `create` makes an
endpoint for every event type and writes its id and secret to FILE. `check` waits (up
to --wait seconds) until every event of the feed that webhooks send (the endpoint
must have been created before the first of them) was answered 204, then checks, printing each problem and exiting 1 when
there is any:
- every such event arrived, and each show's events in feed order (an event repeats
  only right after itself: a retry or a resend after a kill);
- every signature verifies (HMAC-SHA256 of id.timestamp.body, the secret's base64
  key; the Standard Webhooks scheme, checked here by our own code from the spec);
- one webhook-id always carried the same body.
"""

import argparse
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TYPES = ["booking.confirmed", "booking.changed", "booking.cancelled", "hold.created",
         "hold.changed", "hold.released", "hold.expired", "show.cancelled"]


def serve(args):
    lock = threading.Lock()
    count = [0]
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                count[0] += 1
                status = 500 if args.fail_every and count[0] % args.fail_every == 0 else 204
                out.write(json.dumps({
                    "id": self.headers.get("webhook-id"),
                    "timestamp": self.headers.get("webhook-timestamp"),
                    "signature": self.headers.get("webhook-signature"),
                    "body": body.decode("utf-8", "replace"),
                    "status": status,
                }) + "\n")
                out.flush()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


def create(args):
    req = urllib.request.Request(
        args.url + "/webhooks",
        json.dumps({"url": args.hook, "events": TYPES}).encode(),
        {"Content-Type": "application/json", "Authorization": "Bearer " + args.token})
    hook = json.load(urllib.request.urlopen(req))
    json.dump({"id": hook["id"], "secret": hook["secret"]}, open(args.out, "w"))


def psql(db, sql):
    out = subprocess.run(["psql", db, "-X", "-At", "-F", "\t", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


# SQL: an event's webhook-id, its position with `_` for `.` (`evt_{xid}_{id}`; on a
# Citus formation `evt_{node}_{epoch}_{xid}_{id}`).
WEBHOOK_ID = ("'evt_' || CASE WHEN e.node <> 0 OR e.epoch <> 0"
              " THEN e.node || '_' || e.epoch || '_' ELSE '' END || e.xid::text || '_' || e.id")


def check(args):
    hook = json.load(open(args.hook_file))
    # The feed's events that webhooks send, each show's in its order (on a formation
    # shows on two nodes have none between them), and whether each was routed to the
    # endpoint (made before the load: every one must be).
    want = psql(args.db, f"""
        SELECT e.show_id, {WEBHOOK_ID}, d.seq IS NOT NULL
          FROM seat_events e
          LEFT JOIN webhook_deliveries d
                 ON d.webhook_id = '{hook["id"]}' AND d.xid = e.xid AND d.event_id = e.id
         WHERE e.cause NOT IN ('block', 'unblock')
         ORDER BY e.epoch, e.xid, e.id""")
    problems = []
    deadline = time.monotonic() + args.wait
    while True:
        got = [json.loads(line) for line in open(args.got, encoding="utf-8")]
        ok = {g["id"] for g in got if g["status"] == 204}
        missing = [w for w in want if w[1] not in ok]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
        want = psql(args.db, f"""
            SELECT e.show_id, {WEBHOOK_ID}, d.seq IS NOT NULL
              FROM seat_events e
              LEFT JOIN webhook_deliveries d
                     ON d.webhook_id = '{hook["id"]}' AND d.xid = e.xid AND d.event_id = e.id
             WHERE e.cause NOT IN ('block', 'unblock')
                 ORDER BY e.epoch, e.xid, e.id""")
    unrouted = [w[1] for w in want if w[2] != "t"]
    if unrouted:
        problems.append(f"{len(unrouted)} events never routed, first {unrouted[:3]}")
    if missing:
        problems.append(f"{len(missing)} events never delivered, first {[m[1] for m in missing[:3]]}")
    key = base64.b64decode(hook["secret"].removeprefix("whsec_"))
    bodies = {}
    for g in got:
        signed = f'{g["id"]}.{g["timestamp"]}.{g["body"]}'.encode()
        expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if not any(hmac.compare_digest(expected, s) for s in (g["signature"] or "").split(" ")):
            problems.append(f'{g["id"]}: the signature does not verify')
        if bodies.setdefault(g["id"], g["body"]) != g["body"]:
            problems.append(f'{g["id"]}: sent again with another body')
    shows = sorted({w[0] for w in want})
    for show in shows:
        expected = [w[1] for w in want if w[0] == show]
        seen = []
        for g in got:
            if json.loads(g["body"])["data"]["show_id"] == show and (not seen or seen[-1] != g["id"]):
                seen.append(g["id"])
        if seen != expected:
            first = next((i for i, (a, b) in enumerate(zip(seen, expected)) if a != b),
                         min(len(seen), len(expected)))
            problems.append(f"show {show}: got {len(seen)} events in a row, want {len(expected)};"
                            f" first difference at {first}")
    repeats = len(got) - len({g["id"] for g in got})
    summary = {"events": len(want), "requests": len(got), "repeats": repeats,
               "answered_500": sum(1 for g in got if g["status"] == 500),
               "problems": len(problems)}
    print("webhooks: " + json.dumps(summary))
    if args.json:
        json.dump(summary, open(args.json, "w"), indent=2)
    for p in problems:
        print("PROBLEM webhooks: " + p)
    sys.exit(1 if problems else 0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--fail-every", type=int, default=0)
    c = sub.add_parser("create")
    c.add_argument("--url", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--hook", required=True)
    c.add_argument("--out", required=True)
    k = sub.add_parser("check")
    k.add_argument("--db", required=True)
    k.add_argument("--got", required=True)
    k.add_argument("--hook-file", required=True)
    k.add_argument("--wait", type=float, default=120)
    k.add_argument("--json")
    a = p.parse_args()
    {"serve": serve, "create": create, "check": check}[a.cmd](a)


if __name__ == "__main__":
    main()

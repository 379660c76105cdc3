#!/usr/bin/env python3
"""How long a long transaction holds the change feed back (scripts/bench_growth.sh).

    python3 bench/feed_stall.py URL SHOW SEAT PSQL DB_URL SECONDS

Opens the show's event stream, starts a transaction on DB_URL that takes a
transaction id and sleeps SECONDS, holds SEAT of SHOW through the API (as user
`stall`), and times from the hold's 201 to its `hold` event on the stream. DB_URL in
another database of the cluster measures what a transaction anywhere costs; the
server's own database, what one of its own costs. Prints one line of JSON.
"""
import http.client
import json
import subprocess
import sys
import time
import urllib.parse


def main():
    url, show, seat, psql, db_url, seconds = sys.argv[1:7]
    seconds = float(seconds)
    u = urllib.parse.urlsplit(url)
    stream = http.client.HTTPConnection(u.hostname, u.port, timeout=seconds + 30)
    stream.request("GET", f"/shows/{show}/events")
    resp = stream.getresponse()
    assert resp.status == 200, f"event stream answered {resp.status}"
    while resp.fp.readline().strip() != b": open":
        pass
    tx = subprocess.Popen(
        [psql, db_url, "-X", "-q", "-At", "-c", "BEGIN", "-c", "SELECT pg_current_xact_id()",
         "-c", f"SELECT pg_sleep({seconds})", "-c", "COMMIT"],
        stdout=subprocess.PIPE, text=True)
    xid = tx.stdout.readline().strip()  # the transaction has its id: it holds the watermark
    post = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    post.request("POST", f"/shows/{show}/holds", json.dumps({"seats": [seat]}),
                 {"Content-Type": "application/json", "X-User-Id": "stall"})
    answer = post.getresponse()
    answer.read()
    answered = time.monotonic()
    assert answer.status == 201, f"hold answered {answer.status}"
    delay = None
    while delay is None:
        line = resp.fp.readline()
        if not line:
            break
        if line.startswith(b"data:"):
            ev = json.loads(line[5:])
            if ev.get("cause") == "hold" and any(s["label"] == seat for s in ev.get("seats", [])):
                delay = time.monotonic() - answered
    tx.wait()
    print(json.dumps({"long_transaction_s": seconds, "long_transaction_xid": xid,
                      "database": urllib.parse.urlsplit(db_url).path.lstrip("/"),
                      "hold_to_event_ms": None if delay is None else round(delay * 1000, 1)}))


if __name__ == "__main__":
    main()

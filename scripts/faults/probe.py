#!/usr/bin/env python3
"""Probes a server while something is wrong with it, and says how it answered.

    probe.py down --url URL --show ID --seconds S --timeout-ms T [--json OUT]
        While the database is down: keeps firing seat-map reads, holds (with an
        idempotency key, and without one: the server's hold batches), /readyz and
        /healthz, several at a time. Passes when every
        answer came within T ms (the request timeout) plus a margin, every answer but
        /healthz was 503 with a Retry-After header and a JSON error body, and /healthz
        kept answering 200 (the process neither exited nor hung). With --node-down only
        the show's node is down (a Citus worker): /readyz, which asks the coordinator,
        may answer 200 as well.

    probe.py up --url URL --show ID --limit S [--json OUT]
        After the fault: the time until the server serves again (a seat-map read and a
        hold both answered with a final, non-5xx status), polling every 20 ms. Prints
        the seconds; fails when it took longer than S.

    probe.py watch --url URL --show ID --out FILE --stop-file PATH
        Polls (a seat map and a hold) back to back until PATH exists, one line per poll;
    probe.py recovery --url URL --show ID --out FILE --restarts T1,T2,...
        then prints, for each restart time, the seconds until a poll sent after it
        succeeded.

    probe.py sse --url URL --show ID --out FILE --seconds S [--data FILE]
        Follows the show's event stream and appends (receive time, event id) lines,
        and with --data (event id, the event's JSON) lines to that file. Reconnects
        with Last-Event-ID when the stream breaks, as a browser does.
"""

import argparse
import http.client
import json
import random
import socket
import sys
import threading
import time
import uuid
from urllib.parse import urlparse


def request(url, method, path, body=None, headers=None, timeout=30):
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = {"X-User-Id": "fault-probe"}
    h.update(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    t0 = time.time()
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        return r.status, raw, dict((k.lower(), v) for k, v in r.getheaders()), time.time() - t0
    except (OSError, http.client.HTTPException) as e:
        return 0, str(e).encode(), {}, time.time() - t0
    finally:
        c.close()


def down(args):
    seats = args.labels
    results = []
    lock = threading.Lock()
    stop_at = time.time() + args.seconds

    def worker(n):
        rng = random.Random(n)
        while time.time() < stop_at:
            kind = rng.choice(["seats", "hold", "hold-unkeyed", "readyz", "healthz"])
            if kind == "seats":
                r = request(args.url, "GET", f"/shows/{args.show}/seats")
            elif kind == "hold":
                r = request(args.url, "POST", f"/shows/{args.show}/holds",
                            {"seats": [rng.choice(seats)], "ttl_seconds": 5},
                            {"Idempotency-Key": str(uuid.uuid4())})
            elif kind == "hold-unkeyed":
                # Without a key a hold goes through the server's hold batches.
                r = request(args.url, "POST", f"/shows/{args.show}/holds",
                            {"seats": [rng.choice(seats)], "ttl_seconds": 5})
            elif kind == "readyz":
                r = request(args.url, "GET", "/readyz")
            else:
                r = request(args.url, "GET", "/healthz")
            with lock:
                results.append((kind,) + r)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    limit = args.timeout_ms / 1000 + 0.5
    problems = []
    by = {}
    for kind, status, raw, headers, secs in results:
        by.setdefault(f"{kind} {status}", 0)
        by[f"{kind} {status}"] += 1
        if secs > limit:
            problems.append(f"{kind} took {secs:.2f} s (request timeout {args.timeout_ms} ms)")
        if kind == "readyz" and status == 200 and args.node_down:
            continue
        if kind == "healthz":
            if status != 200:
                problems.append(f"/healthz answered {status} while the database was down")
            continue
        if kind == "seats" and status == 200 and b'"seats"' in raw:
            # A seat map this process already holds in memory is still served: nobody
            # can change a seat while the database is down.
            continue
        if status != 503:
            problems.append(f"{kind} answered {status} while the database was down: {raw[:200]!r}")
            continue
        if "retry-after" not in headers:
            problems.append(f"{kind} 503 without Retry-After")
        try:
            doc = json.loads(raw)
            if doc.get("error") != "unavailable":
                problems.append(f"{kind} 503 with error {doc.get('error')!r}")
        except ValueError:
            problems.append(f"{kind} 503 without a JSON body")
    worst = max((r[4] for r in results), default=0)
    summary = {"requests": len(results), "answers": by, "slowest_s": round(worst, 3),
               "problems": problems[:20]}
    print(f"probe down: {len(results)} requests in {args.seconds} s, answers {by}, "
          f"slowest {worst:.3f} s")
    for p in problems[:10]:
        print(f"probe down: PROBLEM: {p}")
    if args.json:
        json.dump(summary, open(args.json, "w"), indent=2)
    return 1 if problems or not results else 0


def up(args):
    # Counted from --since (when the fault ended), not from this script's start.
    t0 = args.since or time.time()
    seats = args.labels
    while True:
        s1, _, _, _ = request(args.url, "GET", f"/shows/{args.show}/seats", timeout=5)
        s2, _, _, _ = request(args.url, "POST", f"/shows/{args.show}/holds",
                              {"seats": [random.choice(seats)], "ttl_seconds": 1},
                              {"Idempotency-Key": str(uuid.uuid4())}, timeout=5)
        if s1 == 200 and 0 < s2 < 500:
            took = time.time() - t0
            break
        if time.time() - t0 > args.give_up:
            print(f"probe up: the server did not serve again within {args.give_up} s")
            return 1
        time.sleep(0.02)
    print(f"probe up: serving again after {took:.3f} s")
    if args.json:
        json.dump({"recovery_s": round(took, 3)}, open(args.json, "w"))
    if took > args.limit:
        print(f"probe up: PROBLEM: took longer than {args.limit} s")
        return 1
    return 0


def watch(args):
    """Polls until --stop-file exists: one line per poll, `sent answered ok`, so that a
    script can tell when the server served again after each restart without counting
    the start-up of a probe process."""
    out = open(args.out, "a", buffering=1)
    seats = args.labels
    while not (args.stop_file and __import__("os").path.exists(args.stop_file)):
        t0 = time.time()
        s1, _, _, _ = request(args.url, "GET", f"/shows/{args.show}/seats", timeout=5)
        s2, _, _, _ = request(args.url, "POST", f"/shows/{args.show}/holds",
                              {"seats": [random.choice(seats)], "ttl_seconds": 1},
                              {"Idempotency-Key": str(uuid.uuid4())}, timeout=5)
        ok = s1 == 200 and 0 < s2 < 500
        out.write(f"{t0:.4f} {time.time():.4f} {int(ok)}\n")
        if not ok:
            time.sleep(0.01)
    return 0


def recovery(args):
    """From a watch file and restart times: seconds from each restart to the first
    poll sent after it that succeeded."""
    polls = [tuple(map(float, l.split())) for l in open(args.out) if l.strip()]
    times = []
    for t in map(float, args.restarts.split(",")):
        ok = [done for sent, done, good in polls if good and sent >= t]
        times.append(round(min(ok) - t, 3) if ok else None)
    print(json.dumps(times))
    return 0


def sse(args):
    u = urlparse(args.url)
    out = open(args.out, "a", buffering=1)
    data = open(args.data, "a", buffering=1) if args.data else None
    # From the first event of the show on ("0.0" is before every position), so that a
    # stream that connects late still brings everything.
    last = "0.0" if args.from_start else None
    stop_at = time.time() + args.seconds
    while time.time() < stop_at:
        try:
            s = socket.create_connection((u.hostname, u.port), timeout=2)
            hdr = f"GET /shows/{args.show}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
            if last:
                hdr += f"Last-Event-ID: {last}\r\n"
            s.sendall((hdr + "\r\n").encode())
            buf = b""
            pending, body = None, ""
            while time.time() < stop_at:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    # An event counts as received once its frame is complete (the
                    # blank line after it): one cut short by a crash is asked again.
                    if line.startswith(b"id: "):
                        pending = line[4:].decode().strip()
                    elif line.startswith(b"data: "):
                        body = line[6:].decode().strip()
                    elif not line.strip(b"\r") and pending:
                        last = pending
                        out.write(f"{time.time():.4f} {last}\n")
                        if data is not None:
                            data.write(f"{last} {body}\n")
                        pending, body = None, ""
            s.close()
        except OSError:
            time.sleep(0.1)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["down", "up", "sse", "watch", "recovery"])
    p.add_argument("--url", required=True)
    p.add_argument("--show", required=True)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--timeout-ms", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--limit", type=float, default=2.0)
    p.add_argument("--give-up", type=float, default=30.0)
    p.add_argument("--since", type=float, help="epoch seconds the recovery is counted from")
    p.add_argument("--out")
    p.add_argument("--stop-file")
    p.add_argument("--restarts", help="recovery: comma-separated epoch seconds")
    p.add_argument("--json")
    p.add_argument("--data", help="sse: also append (event id, event JSON) lines here")
    p.add_argument("--from-start", action="store_true", help="sse: from the show's first event")
    p.add_argument("--node-down", action="store_true",
                   help="down: only the show's Citus worker is down (/readyz may be 200)")
    args = p.parse_args()
    # The database may be down: take labels from the layout faults.sh creates (rows of
    # at least ten seats) rather than from the seat map.
    args.labels = [f"A{n}" for n in range(1, 11)]
    sys.exit({"down": down, "up": up, "sse": sse, "watch": watch,
              "recovery": recovery}[args.mode](args))


if __name__ == "__main__":
    main()

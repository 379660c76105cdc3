#!/usr/bin/env python3
"""The overload scenario: far more connections than the pool, many requests in flight,
and clients that never finish their headers.

    overload.py --url URL --show ID --server-pid PID [--connections 5000]
                [--in-flight 2000] [--slow 50] [--seconds 10] [--timeout-ms 3000]
                [--json OUT]

Opens `--connections` keep-alive connections; `--in-flight` of them send requests
back to back (holds on a contended show, seat maps, show reads) while the rest stay
open and idle; `--slow` more connections send half a request line of headers and then
one byte a second, never finishing. Meanwhile the server's RSS is sampled.

Passes when: every answer is 200/201/409 or 503 with Retry-After (never another 5xx,
never a reset while a request was in flight), the server produced every answer within
the first latency bucket at or above the request timeout (by its own histogram; the
client's clock, which also counts this script's lag, only has to stay within the
timeout plus 5 s), every slow-header client was cut off by the server,
and after the load stops a new client is served at once (within 2 s) and the server's
RSS has not kept growing.
"""

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from urllib.parse import urlparse


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Stats:
    def __init__(self):
        self.by_status = {}
        self.latencies = []
        self.problems = []
        self.resets = 0
        self.connect_failures = 0

    def add(self, status, secs, headers):
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.latencies.append(secs)
        if status >= 500 and status != 503:
            self.problems.append(f"answer {status}")
        if status == 503 and "retry-after" not in headers:
            self.problems.append("503 without Retry-After")


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    if n:
        await reader.readexactly(n)
    return status, headers


def request_bytes(host, method, path, user, body=None):
    data = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-User-Id: {user}\r\n"
            f"Content-Length: {len(data)}\r\n")
    if body is not None:
        head += "Content-Type: application/json\r\n"
    return (head + "\r\n").encode() + data


async def busy(n, args, stats, stop, labels):
    u = urlparse(args.url)
    rng = random.Random(n)
    user = f"overload-{n}"
    try:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
    except OSError:
        stats.connect_failures += 1
        return
    try:
        while not stop.is_set():
            kind = rng.random()
            if kind < 0.5:
                msg = request_bytes(u.netloc, "POST", f"/shows/{args.show}/holds", user,
                                    {"seats": rng.sample(labels, 2), "ttl_seconds": 2})
            elif kind < 0.8:
                msg = request_bytes(u.netloc, "GET", f"/shows/{args.show}/seats", user)
            else:
                msg = request_bytes(u.netloc, "GET", f"/shows/{args.show}", user)
            t0 = time.monotonic()
            writer.write(msg)
            try:
                status, headers = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                stats.resets += 1
                break
            stats.add(status, time.monotonic() - t0, headers)
            if headers.get("connection", "").lower() == "close":
                break
    finally:
        writer.close()


async def idle(args, conns, stats):
    u = urlparse(args.url)
    try:
        _, writer = await asyncio.open_connection(u.hostname, u.port)
        conns.append(writer)
    except OSError:
        stats.connect_failures += 1


async def slow(args, results):
    """Half a request, then a byte a second: the server must hang up."""
    u = urlparse(args.url)
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        writer.write(f"GET /shows HTTP/1.1\r\nHost: {u.netloc}\r\nX-Us".encode())
        await writer.drain()
        while time.monotonic() - t0 < args.seconds + 30:
            try:
                data = await asyncio.wait_for(reader.read(1024), 1.0)
                if not data:
                    results.append(time.monotonic() - t0)  # closed by the server
                    return
                # An answer (408 or 400) is as good as a close, if one follows.
            except asyncio.TimeoutError:
                writer.write(b"e")
                await writer.drain()
        results.append(None)
    except (ConnectionError, OSError):
        results.append(time.monotonic() - t0)


async def main_async(args):
    u = urlparse(args.url)
    stats = Stats()
    stop = asyncio.Event()
    labels = [f"{r}{n}" for r in "ABCDEFGHIJ" for n in range(1, 21)]
    rss = []

    async def sample():
        while not stop.is_set():
            m = rss_mb(args.server_pid)
            if m is not None:
                rss.append(m)
            await asyncio.sleep(0.1)

    base_rss = rss_mb(args.server_pid)
    sampler = asyncio.create_task(sample())
    idle_conns = []
    # Open connections in waves so the load generator itself is not the bottleneck.
    n_idle = max(0, args.connections - args.in_flight)
    for i in range(0, n_idle, 500):
        await asyncio.gather(*[idle(args, idle_conns, stats) for _ in range(min(500, n_idle - i))])
    slow_results = []
    slow_tasks = [asyncio.create_task(slow(args, slow_results)) for _ in range(args.slow)]
    t_start = time.monotonic()
    busy_tasks = [asyncio.create_task(busy(n, args, stats, stop, labels))
                  for n in range(args.in_flight)]
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*busy_tasks)
    t_load = time.monotonic() - t_start
    peak_rss = max(rss) if rss else None
    for w in idle_conns:
        w.close()
    await asyncio.gather(*slow_tasks)
    sampler.cancel()

    # Recovery: a new client is served at once.
    await asyncio.sleep(1.0)
    t0 = time.monotonic()
    recovered = None
    while time.monotonic() - t0 < 10:
        try:
            reader, writer = await asyncio.open_connection(u.hostname, u.port)
            writer.write(request_bytes(u.netloc, "GET", f"/shows/{args.show}/seats", "after"))
            status, _ = await asyncio.wait_for(read_response(reader), 5)
            writer.close()
            if status == 200:
                recovered = time.monotonic() - t0
                break
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.05)
    after_rss = rss_mb(args.server_pid)

    # The server's own view (its latency histogram, from the request's headers to its
    # answer): with the load generator on the same two cores, the client's clock also
    # counts its own event loop's lag.
    server_over = None
    try:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        writer.write(f"GET /metrics HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        n = int([l for l in head.decode().split("\r\n") if l.lower().startswith("content-length")][0].split(":")[1])
        text = (await reader.readexactly(n)).decode()
        writer.close()
        within, total = 0, 0
        bound = next(b for b in (2.5, 5.0, 10.0, 30.0) if b >= args.timeout_ms / 1000)
        for line in text.splitlines():
            if not line.startswith("booking_http_request_duration_seconds_bucket") or "events" in line:
                continue
            value = int(float(line.rsplit(" ", 1)[1]))
            if f'le="{bound:g}"' in line:
                within += value
            elif 'le="+Inf"' in line:
                total += value
        server_over = {"bound_s": bound, "answers": total, "over": total - within}
    except (OSError, ValueError, IndexError, StopIteration, asyncio.IncompleteReadError):
        pass

    lat = sorted(stats.latencies)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
    problems = list(dict.fromkeys(stats.problems))[:10]
    if server_over is None:
        problems.append("could not read the server's latency histogram")
    elif server_over["over"]:
        problems.append(f"{server_over['over']} answers took the server longer than "
                        f"{server_over['bound_s']} s (request timeout {args.timeout_ms} ms)")
    # A hang, seen from outside: far past the timeout even allowing for our own lag.
    if lat and lat[-1] > args.timeout_ms / 1000 + 5:
        problems.append(f"the slowest answer took {lat[-1]:.2f} s (request timeout {args.timeout_ms} ms)")
    if stats.resets:
        problems.append(f"{stats.resets} connections were reset with a request in flight")
    uncut = sum(1 for r in slow_results if r is None)
    if uncut:
        problems.append(f"{uncut} slow-header clients were never cut off")
    if recovered is None or recovered > 2.0:
        problems.append(f"after the load a new client waited {recovered} s")
    if not lat:
        problems.append("no answers at all")
    summary = {
        "connections": args.connections, "in_flight": args.in_flight, "slow_clients": args.slow,
        "seconds": round(t_load, 2), "answers": len(lat),
        "answers_per_s": round(len(lat) / t_load, 1) if t_load else None,
        "by_status": {str(k): v for k, v in sorted(stats.by_status.items())},
        "latency_s": {"p50": pct(0.5), "p99": pct(0.99), "max": lat[-1] if lat else None},
        "server_side": server_over,
        "connect_failures": stats.connect_failures, "resets": stats.resets,
        "slow_cut_off_after_s": {"min": min((r for r in slow_results if r), default=None),
                                 "max": max((r for r in slow_results if r), default=None)},
        "rss_mb": {"before": base_rss, "peak": peak_rss, "after": after_rss},
        "recovered_after_s": recovered, "problems": problems,
    }
    return summary


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--show", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--in-flight", type=int, default=2000)
    p.add_argument("--slow", type=int, default=50)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--timeout-ms", type=int, default=3000)
    p.add_argument("--json")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + args.slow + 200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
    summary = asyncio.run(main_async(args))
    if args.json:
        json.dump(summary, open(args.json, "w"), indent=2)
    print("overload: " + json.dumps({k: v for k, v in summary.items() if k != "problems"}))
    for pr in summary["problems"]:
        print(f"overload: PROBLEM: {pr}")
    sys.exit(1 if summary["problems"] else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The load's answers around one Citus worker's outage, from load.py's log.

    outage.py --log FILE --down-shows ID,... --up-shows ID,... --down-at T --stopped-at T
              --up-at T --back-at T [--moved-show ID --moved-at T] [--timeout-ms MS] [--json OUT]

The worker holding --down-shows was told to stop at --down-at (epoch seconds), was
stopped at --stopped-at (its stop returned: a request sent in between may still have
been served) and started again at --up-at; --back-at is when the server served one of its shows again. Fails
(exit 1, each problem printed) unless:
- every request on a --down-shows show sent while the worker was stopped (after
  --stopped-at, answered before --up-at) was answered, within the request timeout plus a margin, with `503` and a
  `Retry-After` header; or is one the outage does not reach: a seat map the process
  still has in memory (`200`), or `409 idempotency_key_in_use` (a retry while the first
  attempt of its key still runs). Never a `500`, never no answer;
- the --up-shows (the other worker's) kept selling: some holds or confirms of theirs
  sent from --down-at to --up-at were acknowledged, and none of their requests was answered
  `503`;
- after --back-at, holds of the --down-shows are acknowledged again;
- with --moved-show (a show whose shard group was moved, the move done at --moved-at):
  holds or confirms of it sent after the move were acknowledged.
The JSON body of those 503s is checked by `probe.py down --node-down`, which fires at
one of the stopped worker's shows meanwhile (the log keeps no 5xx body).
"""

import argparse
import json
import sys
from collections import Counter


def show_of(r):
    """The show a log line is about: named, or the prefix of its hold or booking id
    (`{show}-{uuid}`)."""
    if r.get("show") is not None:
        return str(r["show"])
    for k in ("hold_id", "booking_id"):
        if r.get(k):
            return str(r[k]).split("-", 1)[0]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", required=True)
    p.add_argument("--down-shows", required=True)
    p.add_argument("--up-shows", required=True)
    p.add_argument("--down-at", type=float, required=True)
    p.add_argument("--stopped-at", type=float, required=True)
    p.add_argument("--up-at", type=float, required=True)
    p.add_argument("--back-at", type=float, required=True)
    p.add_argument("--moved-show")
    p.add_argument("--moved-at", type=float)
    p.add_argument("--timeout-ms", type=int, default=3000)
    p.add_argument("--json")
    args = p.parse_args()
    down, up = set(args.down_shows.split(",")), set(args.up_shows.split(","))
    limit_ms = args.timeout_ms + 1000

    problems = []
    down_answers, up_answers = Counter(), Counter()
    up_sold, down_sold_after, moved_sold_after = Counter(), Counter(), Counter()
    slowest_ms = 0.0
    for line in open(args.log):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        show = show_of(r)
        if r.get("op") == "ack" and r.get("what") in ("hold", "confirm") and show:
            sent = r.get("sent", 0)
            if show in up and args.down_at <= sent and r["t"] <= args.up_at:
                up_sold[r["what"]] += 1
            if show in down and sent >= args.back_at:
                down_sold_after[r["what"]] += 1
            if show == args.moved_show and args.moved_at and sent > args.moved_at:
                moved_sold_after[r["what"]] += 1
            continue
        if r.get("op") != "answer" or show is None:
            continue
        sent = r["t"] - r["ms"] / 1000
        if sent < args.down_at or r["t"] > args.up_at:
            continue
        status, what = r["status"], r["what"]
        if show in up:
            up_answers[f"{what} {status}"] += 1
            continue
        if show not in down or sent < args.stopped_at:
            continue
        down_answers[f"{what} {status}"] += 1
        slowest_ms = max(slowest_ms, r["ms"])
        if r["ms"] > limit_ms:
            problems.append(f"{what} on show {show} took {r['ms']} ms (request timeout "
                            f"{args.timeout_ms} ms)")
        if status == 503:
            if not r.get("retry_after"):
                problems.append(f"{what} on show {show}: 503 without Retry-After")
        elif status == 200 and what == "seats":
            pass  # the process's seat map of the show, from memory
        elif status == 409 and r.get("error") == "idempotency_key_in_use":
            pass
        elif status == 0:
            problems.append(f"{what} on show {show}: no answer within the load's timeout")
        else:
            problems.append(f"{what} on show {show} answered {status} "
                            f"{r.get('error') or ''} while its worker was down")
    n503 = sum(n for k, n in down_answers.items() if k.endswith(" 503"))
    if n503 == 0:
        problems.append("no request on the stopped worker's shows was answered 503 during "
                        "the outage (did the load reach them?)")
    if sum(up_sold.values()) == 0:
        problems.append("the other worker's shows sold nothing during the outage")
    # The other worker's shows are not touched by the outage: none of their requests may
    # be refused as unavailable (each statement of a show runs on its own node only).
    up_503 = sum(n for k, n in up_answers.items() if k.endswith(" 503"))
    if up_503:
        problems.append(f"{up_503} requests on the other worker's shows were answered 503 "
                        "during the outage")
    if down_sold_after["hold"] == 0:
        problems.append("the stopped worker's shows sold no hold after it came back")
    if args.moved_show and sum(moved_sold_after.values()) == 0:
        problems.append(f"the moved show {args.moved_show} sold nothing after the move")
    figures = {
        "outage_s": round(args.up_at - args.down_at, 2),
        "stopping_s": round(args.stopped_at - args.down_at, 2),
        "down_shows_503": n503,
        "down_shows_answers": dict(sorted(down_answers.items())),
        "down_shows_slowest_ms": slowest_ms,
        "up_shows_acks_during_outage": dict(up_sold),
        "up_shows_answers_during_outage": dict(sorted(up_answers.items())),
        "down_shows_acks_after_back": dict(down_sold_after),
        "moved_show_acks_after_move": dict(moved_sold_after),
        "problems": problems[:20],
    }
    print("outage: " + json.dumps({k: v for k, v in figures.items() if k != "problems"}))
    for q in problems[:10]:
        print(f"outage: PROBLEM: {q}")
    if args.json:
        json.dump(figures, open(args.json, "w"), indent=2)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The authz scenario: users reaching for each other's holds and bookings, guessed ids,
admin endpoints without the right token, and error bodies scanned for leaks.

    authz.py --url URL --admin-token TOKEN [--json OUT]

Passes (exit 0) when:
- a second user can neither read, confirm, extend, release nor cancel another's hold or
  booking (403 forbidden each time), and the owner's hold and booking are unchanged;
- another user's idempotency key replays nothing for them (keys are per caller);
- hold and booking ids carry 128 random bits (UUIDv4 after the show id), are all
  distinct, and guessed ids find nothing (404);
- admin endpoints refuse a missing or wrong token (401) and a user header (401);
- no error body carries SQL, a stack trace, a file path, or another user's id or data.
"""

import argparse
import http.client
import json
import re
import sys
import uuid
from urllib.parse import urlparse

LEAKS = re.compile(
    r"(?i)\b(select|insert|update|delete from|where|constraint|violates|relation|"
    r"syntax error|postgres|sqlstate|tokio|deadpool|panicked|backtrace|stack)\b|\.rs:\d|"
    r"src/|/home/|/root/|/work/")

problems = []
bodies = []


def req(url, method, path, user=None, body=None, token=None, key=None):
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    h = {}
    if user:
        h["X-User-Id"] = user
    if token:
        h["Authorization"] = f"Bearer {token}"
    if key:
        h["Idempotency-Key"] = key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    c.close()
    doc = json.loads(raw) if raw else None
    if r.status >= 400:
        bodies.append((method, path, user, r.status, raw.decode("utf-8", "replace")))
    return r.status, doc, {k.lower(): v for k, v in r.getheaders()}


def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: got {got}, want {want}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--admin-token", required=True)
    p.add_argument("--json")
    a = p.parse_args()
    url, tok = a.url, a.admin_token

    # Admin endpoints.
    show_body = {"title": "Authz", "starts_at": "2027-01-01T20:00:00Z",
                 "prices": {"standard": 1000},
                 "rows": [{"row": "A", "seats": 20}, {"row": "B", "seats": 20}]}
    s, doc, h = req(url, "POST", "/shows", body=show_body)
    expect("POST /shows without a token", s, 401)
    s, doc, h = req(url, "POST", "/shows", body=show_body, token="x" * 32)
    expect("POST /shows with a wrong token", s, 401)
    s, doc, h = req(url, "POST", "/shows", body=show_body, token=tok[:-1])
    expect("POST /shows with the token minus its last character", s, 401)
    s, doc, h = req(url, "POST", "/shows", body=show_body, user="admin")
    expect("POST /shows with only a user header", s, 401)
    s, doc, _ = req(url, "GET", "/shows")
    if s != 200 or doc["shows"]:
        problems.append(f"a refused POST /shows created a show: {doc}")
    s, doc, _ = req(url, "POST", "/shows", body=show_body, token=tok)
    expect("POST /shows with the token", s, 201)
    show = doc["id"]

    alice, bob = "alice-authz", "bob-authz"
    # Alice's hold and booking.
    s, hold, _ = req(url, "POST", f"/shows/{show}/holds", alice, {"seats": ["A1", "A2"]},
                     key="alice-key-1")
    expect("alice holds A1 A2", s, 201)
    hid = hold["hold_id"]
    s, hold2, _ = req(url, "POST", f"/shows/{show}/holds", alice, {"seats": ["B1"]})
    expect("alice holds B1", s, 201)
    s, booking, _ = req(url, "POST", f"/holds/{hold2['hold_id']}/confirm", alice, {})
    expect("alice confirms B1", s, 201)
    bid = booking["booking_id"]

    # Bob reaches for them.
    for method, path, body in [("GET", f"/holds/{hid}", None),
                               ("POST", f"/holds/{hid}/confirm", {}),
                               ("POST", f"/holds/{hid}/extend", {"ttl_seconds": 60}),
                               ("DELETE", f"/holds/{hid}", None),
                               ("GET", f"/bookings/{bid}", None),
                               ("POST", f"/bookings/{bid}/cancel", {})]:
        s, doc, _ = req(url, method, path, bob, body)
        expect(f"bob {method} {path}", (s, doc and doc.get("error")), (403, "forbidden"))
    s, doc, _ = req(url, "GET", "/users/me/bookings", bob)
    if s != 200 or doc["bookings"]:
        problems.append(f"bob's bookings list shows {doc}")
    # Alice's hold and booking are as they were.
    s, now, _ = req(url, "GET", f"/holds/{hid}", alice)
    if s != 200 or now["status"] != "active" or now["expires_at"] != hold["expires_at"]:
        problems.append(f"alice's hold changed after bob's attempts: {now}")
    s, now, _ = req(url, "GET", f"/bookings/{bid}", alice)
    if s != 200 or now["status"] != "confirmed":
        problems.append(f"alice's booking changed after bob's attempts: {now}")
    s, seats, _ = req(url, "GET", f"/shows/{show}/seats")
    states = {x["label"]: x["state"] for x in seats["seats"]}
    if (states["A1"], states["A2"], states["B1"]) != ("held", "held", "booked"):
        problems.append(f"seats changed after bob's attempts: {states}")

    # Idempotency keys are per caller: Bob with Alice's key gets his own answer.
    s, doc, h = req(url, "POST", f"/shows/{show}/holds", bob, {"seats": ["A1", "A2"]},
                    key="alice-key-1")
    if s != 409 or "idempotent-replayed" in h:
        problems.append(f"bob reusing alice's key got {s} {doc} {h.get('idempotent-replayed')}")
    if doc and alice in json.dumps(doc):
        problems.append("bob's answer names alice")

    # Ids: show id, then a UUIDv4 (122 random bits plus version and variant).
    ids = [hid, hold2["hold_id"], bid]
    for i in range(3, 40):
        s, d, _ = req(url, "POST", f"/shows/{show}/holds", alice, {"seats": [f"A{i % 18 + 3}"]},
                      key=None)
        if s == 201:
            ids.append(d["hold_id"])
            req(url, "DELETE", f"/holds/{d['hold_id']}", alice)
    shape = re.compile(rf"^{re.escape(show)}-[0-9a-f]{{8}}-[0-9a-f]{{4}}-4[0-9a-f]{{3}}-"
                       r"[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    for i in ids:
        if not shape.match(i):
            problems.append(f"id {i} is not the show id and a UUIDv4")
    if len(set(ids)) != len(ids):
        problems.append("two ids are the same")
    for _ in range(50):
        guess = f"{show}-{uuid.uuid4()}"
        s, d, _ = req(url, "GET", f"/holds/{guess}", bob)
        expect("a guessed hold id", (s, d and d.get("error")), (404, "hold_not_found"))
        s, d, _ = req(url, "GET", f"/bookings/{guess}", bob)
        expect("a guessed booking id", (s, d and d.get("error")), (404, "booking_not_found"))
    for bad in ["1", "x", f"{show}-", f"{show}-zzzz", "9999999-" + str(uuid.uuid4()),
                "%27%20OR%201=1--", f"{show}-{uuid.uuid4()}%27%3B%20DROP%20TABLE%20holds%3B--"]:
        s, d, _ = req(url, "GET", f"/holds/{bad}", bob)
        if s != 404:
            problems.append(f"GET /holds/{bad} answered {s}")

    # Admin can cancel anyone's booking; a user cannot act as admin with a user header.
    s, d, _ = req(url, "POST", f"/bookings/{bid}/cancel", None, {}, token="y" * 32)
    expect("cancel with a wrong admin token", s, 401)
    s, d, _ = req(url, "POST", f"/bookings/{bid}/cancel", None, {}, token=tok)
    expect("cancel by admin", (s, d and d.get("status")), (200, "cancelled"))

    # Error bodies: the documented shape, no leaks, nothing of alice's in bob's.
    for method, path, user, status, raw in bodies:
        try:
            d = json.loads(raw)
        except ValueError:
            problems.append(f"{method} {path} {status}: not JSON: {raw[:100]}")
            continue
        if not isinstance(d.get("error"), str) or not isinstance(d.get("message"), str):
            problems.append(f"{method} {path} {status}: no error/message: {raw[:100]}")
        if LEAKS.search(d.get("message", "")):
            problems.append(f"{method} {path} {status}: the message leaks: {d['message']}")
        if user == bob and (alice in raw or '"seats":["A1"' in raw.replace(" ", "")
                            and "hold" not in path and "shows" not in path):
            problems.append(f"{method} {path}: bob's error names alice's data: {raw[:200]}")

    summary = {"requests_with_errors_checked": len(bodies), "ids_checked": len(ids),
               "problems": problems}
    if a.json:
        json.dump(summary, open(a.json, "w"), indent=2)
    print(f"authz: {len(bodies)} error answers checked, {len(ids)} ids checked, "
          f"{len(problems)} problems")
    for pr in problems:
        print(f"authz: PROBLEM: {pr}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

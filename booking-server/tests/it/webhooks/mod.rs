//! Webhooks against a real receiver on loopback: the API, delivery in order per show
//! through a receiver that is down, slow, failing and back, signatures checked with
//! the Standard Webhooks project's own verifier; `kill -9` and two servers in
//! `process.rs`.

mod endpoints;
mod process;

use crate::common::receiver::{Answer, Got, Receiver};
use crate::common::TestServer;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

pub const ALL: [&str; 8] = [
    "booking.confirmed",
    "booking.changed",
    "booking.cancelled",
    "hold.created",
    "hold.changed",
    "hold.released",
    "hold.expired",
    "show.cancelled",
];

/// Generous: the machine is shared; nothing here measures time.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Creates an endpoint for every type; returns its id and secret.
pub async fn create_hook(s: &TestServer, url: &str) -> (String, String) {
    let r = s
        .post("/webhooks")
        .admin()
        .json(json!({"url": url, "events": ALL}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    (
        r.json["id"].as_str().unwrap().to_owned(),
        r.json["secret"].as_str().unwrap().to_owned(),
    )
}

/// SQL: the `webhook-id` of the deliveries of a `seat_events` row: its position with
/// `_` for `.` (`evt_{xid}_{id}`, on a formation `evt_{node}_{epoch}_{xid}_{id}`).
const WEBHOOK_ID: &str = "'evt_' || CASE WHEN node <> 0 OR epoch <> 0
                                        THEN node || '_' || epoch || '_' ELSE '' END
                                || xid::text || '_' || id";

/// The feed's events that webhooks send, per show in feed order: (show, webhook-id).
/// (On a formation, events of shows on different nodes have no one order.)
pub async fn feed(database_url: &str) -> Vec<(String, String)> {
    let client = crate::common::audit::connect(database_url).await;
    client
        .query(
            &format!(
                "SELECT show_id::text, {WEBHOOK_ID} FROM seat_events
                  WHERE cause NOT IN ('block', 'unblock') ORDER BY epoch, xid, id"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Checks what a receiver got against the feed: every event of each show, in feed
/// order (an event repeats only right after itself: a retry), each signature valid
/// per the published verifier, and the same body under one webhook-id.
pub fn check_against_feed(got: &[Got], feed: &[(String, String)], secret: &str) {
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    let mut bodies = std::collections::HashMap::new();
    for g in got {
        verifier
            .verify(&g.body, &g.headers)
            .unwrap_or_else(|e| panic!("{}: the signature does not verify: {e:?}", g.id()));
        let first = bodies
            .entry(g.id().to_owned())
            .or_insert_with(|| g.body.clone());
        assert_eq!(*first, g.body, "{}: a repeat with another body", g.id());
    }
    let shows: std::collections::BTreeSet<&str> = feed.iter().map(|(s, _)| s.as_str()).collect();
    for show in shows {
        let want: Vec<&str> = feed
            .iter()
            .filter(|(s, _)| s == show)
            .map(|(_, id)| id.as_str())
            .collect();
        let mut seen: Vec<&str> = got
            .iter()
            .filter(|g| g.show() == show)
            .map(|g| g.id())
            .collect();
        seen.dedup();
        assert_eq!(
            seen, want,
            "show {show}: attempts out of feed order, or events missing"
        );
    }
}

/// Deliveries of `hook`, all pages of `limit`, newest first.
pub async fn all_deliveries(s: &TestServer, hook: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/webhooks/{hook}/deliveries?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = s.get(&path).admin().send().await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let page = r.json["deliveries"].as_array().unwrap().clone();
        assert!(page.len() <= limit);
        out.extend(page);
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Holds, adds, removes, releases, confirms, cancels in part and whole, on `show`
/// (rows A and B of 8); returns how many events that wrote.
pub async fn activity(s: &TestServer, show: &str, user: &str) {
    let h1 = s.hold(show, user, &["A1", "A2", "A3"]).await;
    let r = s
        .post(&format!("/holds/{h1}/add"))
        .user(user)
        .json(json!({"seats": ["A4"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = s
        .post(&format!("/holds/{h1}/remove"))
        .user(user)
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let c = s
        .post(&format!("/holds/{h1}/confirm"))
        .user(user)
        .send()
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text());
    let booking = c.json["booking_id"].as_str().unwrap().to_owned();
    let cancel = format!("/bookings/{booking}/cancel");
    let r = s
        .post(&cancel)
        .user(user)
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = s.post(&cancel).user(user).json(json!({})).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let h2 = s.hold(show, user, &["B1"]).await;
    let r = s.delete(&format!("/holds/{h2}")).user(user).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_slow_failing_then_back_gets_every_event_in_order() {
    let mut flaky = Receiver::down_from_start().await;
    let healthy = Receiver::start().await;
    let mut s = TestServer::start_with(|c| c.webhook_timeout_ms = 1000).await;
    let (hook, secret) = create_hook(&s, &flaky.url()).await;
    let (_, healthy_secret) = create_hook(&s, &healthy.url()).await;
    let a = s.show(&[("A", 8), ("B", 8)]).await;
    let b = s.show(&[("A", 8), ("B", 8)]).await;
    activity(&s, &a, "alice").await;
    activity(&s, &b, "bob").await;
    // Two holds that lapse together: the sweeper expires them, one event each.
    let lapsing = s.hold(&b, "carol", &["B5"]).await;
    let lapsing_too = s.hold(&b, "dave", &["B6", "B7"]).await;
    s.lapse(&lapsing).await;
    s.lapse(&lapsing_too).await;
    let client = crate::common::audit::connect(&s.database_url).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while client
        .query_one(
            "SELECT count(*) FROM seat_events WHERE cause = 'expire'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper did not write one expire event per hold"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let feed = feed(&s.database_url).await;
    assert_eq!(feed.len(), 2 * 8 + 4, "{feed:?}");
    // Every writer named what its event is about (the sweeper's expiry included).
    let unnamed: String = client
        .query_one(
            "SELECT coalesce(string_agg(cause || ' ' || coalesce(hold_id::text, '-') || ' '
                                        || coalesce(booking_id::text, '-')
                                        || ' ' || coalesce(ended::text, '-'), ', '), '')
               FROM seat_events
              WHERE (cause IN ('hold', 'add', 'remove', 'release', 'expire', 'confirm')
                     AND hold_id IS NULL)
                 OR (cause IN ('confirm', 'cancel') AND booking_id IS NULL)
                 OR (cause = 'cancel' AND ended IS NULL)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unnamed, "", "events that do not name their hold or booking");

    // The healthy endpoint gets everything while the other is down.
    healthy
        .wait_for(PATIENCE, "every event", |g| g.len() >= feed.len())
        .await;
    check_against_feed(&healthy.got(), &feed, &healthy_secret);

    // Down: attempts fail (connection refused) and are retried.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let d = all_deliveries(&s, &hook, 50).await;
        let retried = d.iter().any(|d| d["attempts"].as_i64().unwrap() >= 2);
        if retried {
            assert!(d.iter().all(|d| d["status"] == "pending"));
            let tried = d
                .iter()
                .find(|d| d["attempts"].as_i64().unwrap() >= 2)
                .unwrap();
            assert!(tried["last_error"].is_string(), "{tried}");
            assert!(tried["next_attempt_at"].is_string(), "{tried}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retry while down: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Slow: past the timeout, so the attempt fails and the event comes again.
    flaky.answer(Answer::Slow(Duration::from_secs(4)));
    flaky.up().await;
    flaky
        .wait_for(PATIENCE, "a slow attempt", |g| !g.is_empty())
        .await;
    // Failing: 500.
    flaky.answer(Answer::Status(500));
    flaky
        .wait_for(PATIENCE, "an attempt answered 500", |g| {
            g.iter().any(|g| g.answered == 500)
        })
        .await;
    // Back.
    flaky.answer(Answer::Ok);
    let ids: std::collections::HashSet<String> = feed.iter().map(|(_, id)| id.clone()).collect();
    flaky
        .wait_for(PATIENCE, "every event", |g| {
            let ok: std::collections::HashSet<&str> = g
                .iter()
                .filter(|g| g.answered == 204)
                .map(|g| g.id())
                .collect();
            ids.iter().all(|id| ok.contains(id.as_str()))
        })
        .await;
    let got = flaky.got();
    check_against_feed(&got, &feed, &secret);
    // What timed out and what got 500 came again, and got through.
    for failed in got.iter().filter(|g| g.answered != 204) {
        assert!(
            got.iter()
                .any(|g| g.id() == failed.id() && g.answered == 204),
            "{} answered {} was not sent again",
            failed.id(),
            failed.answered
        );
    }
    assert!(got.iter().any(|g| g.answered == 0) && got.iter().any(|g| g.answered == 500));

    // The deliveries say what happened, page by page, newest first.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let d = loop {
        let d = all_deliveries(&s, &hook, 3).await;
        if d.iter().all(|d| d["status"] == "delivered") || tokio::time::Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(d.len(), feed.len());
    // Newest first, each show's in its feed order (on a formation, shows on two nodes
    // have no one order between them).
    for show in feed.iter().map(|(s, _)| s) {
        let mut newest_first: Vec<&str> = feed
            .iter()
            .filter(|(s, _)| s == show)
            .map(|(_, id)| id.as_str())
            .collect();
        newest_first.reverse();
        let listed: Vec<&str> = d
            .iter()
            .filter(|d| d["show_id"] == show.as_str())
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, newest_first, "show {show}");
    }
    for x in &d {
        assert_eq!(x["status"], "delivered", "{x}");
        assert_eq!(x["last_status"], 204, "{x}");
        assert!(x.get("next_attempt_at").is_none(), "{x}");
    }
    // Twice refused, at least, then through.
    assert!(
        d.iter().any(|d| d["attempts"].as_i64().unwrap() >= 3),
        "{d:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_show_holds_back_only_its_own_later_events() {
    let rx = Receiver::start().await;
    let mut s = TestServer::start().await;
    let (hook, secret) = create_hook(&s, &rx.url()).await;
    let a = s.show(&[("A", 8), ("B", 8)]).await;
    let b = s.show(&[("A", 8), ("B", 8)]).await;
    rx.answer_show(&a, Answer::Status(503));
    activity(&s, &a, "alice").await;
    activity(&s, &b, "bob").await;
    let feed = feed(&s.database_url).await;
    let of_b = feed.iter().filter(|(s, _)| *s == b).count();
    rx.wait_for(
        PATIENCE,
        "every event of the healthy show, and retries of the other",
        |g| {
            g.iter()
                .filter(|g| g.show() == b && g.answered == 204)
                .count()
                == of_b
                && g.iter().filter(|g| g.show() == a).count() >= 2
        },
    )
    .await;
    // Show a: only its first event was tried, however often.
    let first_of_a = &feed.iter().find(|(s, _)| *s == a).unwrap().1;
    assert!(rx
        .got()
        .iter()
        .filter(|g| g.show() == a)
        .all(|g| g.id() == first_of_a));
    let d = all_deliveries(&s, &hook, 200).await;
    let pending: Vec<&Value> = d.iter().filter(|d| d["status"] == "pending").collect();
    assert_eq!(pending.len(), feed.len() - of_b);
    assert!(pending.iter().any(|d| d["last_status"] == 503));

    rx.answer_show(&a, Answer::Ok);
    rx.wait_for(PATIENCE, "every event", |g| {
        g.iter().filter(|g| g.answered == 204).count() == feed.len()
    })
    .await;
    check_against_feed(&rx.got(), &feed, &secret);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_name_the_hold_or_booking_and_the_type_of_change() {
    let rx = Receiver::start().await;
    let mut s = TestServer::start().await;
    let (_, secret) = create_hook(&s, &rx.url()).await;
    let show = s.show(&[("A", 8), ("B", 8)]).await;
    activity(&s, &show, "alice").await;
    let feed = feed(&s.database_url).await;
    rx.wait_for(PATIENCE, "every event", |g| g.len() >= feed.len())
        .await;
    let got = rx.got();
    check_against_feed(&got, &feed, &secret);
    let types: Vec<&str> = got
        .iter()
        .map(|g| g.json["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "hold.created",
            "hold.changed",
            "hold.changed",
            "booking.confirmed",
            "booking.changed",
            "booking.cancelled",
            "hold.created",
            "hold.released"
        ]
    );
    let hold = got[0].json["data"]["hold_id"].as_str().unwrap();
    for g in &got[..6] {
        assert_eq!(g.json["data"]["hold_id"], hold, "{}", g.json);
        assert_eq!(g.json["data"]["user_id"], "alice");
        assert_eq!(g.json["data"]["show_id"], show.as_str());
    }
    let confirmed = &got[3].json["data"];
    let booking = confirmed["booking_id"].as_str().unwrap();
    assert_eq!(
        confirmed["seats"],
        json!([{"label": "A2", "state": "booked"}, {"label": "A3", "state": "booked"}, {"label": "A4", "state": "booked"}])
    );
    assert_eq!(got[5].json["data"]["booking_id"], booking);
    assert!(got[0].json["data"].get("booking_id").is_none());
    assert!(got[0].json["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        got[0].json["data"]["position"]
            .as_str()
            .map(|p| format!("evt_{}", p.replace('.', "_")))
            .as_deref(),
        Some(got[0].id())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_show_cancellation_names_what_it_cancelled() {
    let rx = Receiver::start().await;
    let mut s = TestServer::start().await;
    let (_, secret) = create_hook(&s, &rx.url()).await;
    let show = s.show(&[("A", 8)]).await;
    let held = s.hold(&show, "alice", &["A1"]).await;
    let booked = s.hold(&show, "bob", &["A2"]).await;
    let c = s
        .post(&format!("/holds/{booked}/confirm"))
        .user("bob")
        .send()
        .await;
    let booking = c.json["booking_id"].as_str().unwrap().to_owned();
    // The show's cancellation: one `show_cancel` event, the times of what it ended
    // equal to the show's `cancelled_at`.
    let cancelled = s
        .post(&format!("/shows/{show}/cancel"))
        .admin()
        .send()
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
    let feed = feed(&s.database_url).await;
    rx.wait_for(PATIENCE, "every event", |g| g.len() >= feed.len())
        .await;
    let got = rx.got();
    check_against_feed(&got, &feed, &secret);
    let last = &got.last().unwrap().json;
    assert_eq!(last["type"], "show.cancelled");
    assert_eq!(last["data"]["bookings"], json!([booking]));
    assert_eq!(last["data"]["holds"], json!([held]));
    // Every seat of the show, each at its new version: all free again.
    let seats = last["data"]["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 8, "{seats:?}");
    assert!(seats.iter().all(|c| c["state"] == "available"), "{seats:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_confirms_exchanges_and_keyed_holds_name_what_they_changed() {
    let rx = Receiver::start().await;
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 8)]).await;
    let other = s.show(&[("A", 8)]).await;
    // Only `show`'s bookings: the other show's events and the holds are not sent.
    let r = s
        .post("/webhooks")
        .admin()
        .json(json!({"url": rx.url(), "shows": [show],
                     "events": ["booking.confirmed", "booking.changed"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let secret = r.json["secret"].as_str().unwrap().to_owned();
    // A hold under an Idempotency-Key is written alone, not batched.
    let keyed = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .key("k-1")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(keyed.status, StatusCode::CREATED, "{}", keyed.text());
    let hold = keyed.json["hold_id"].as_str().unwrap().to_owned();
    s.lapse(&hold).await;
    let late = s
        .post(&format!("/holds/{hold}/confirm"))
        .user("alice")
        .json(json!({"allow_late": true}))
        .send()
        .await;
    assert_eq!(late.status, StatusCode::CREATED, "{}", late.text());
    let booking = late.json["booking_id"].as_str().unwrap().to_owned();
    let r = s
        .post(&format!("/bookings/{booking}/exchange"))
        .user("alice")
        .json(json!({"release": ["A1"], "take": ["A5"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let h = s.hold(&other, "bob", &["A1"]).await;
    let r = s
        .post(&format!("/holds/{h}/confirm"))
        .user("bob")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    rx.wait_for(PATIENCE, "the late confirm and the exchange", |g| {
        g.len() >= 2
    })
    .await;
    // Whatever else was coming has had time to come.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = rx.got();
    // What was asked for: the bookings' events of `show` (the sweeper may have
    // expired the lapsed hold before the late confirm: that is not sent either).
    let client = crate::common::audit::connect(&s.database_url).await;
    let of_show: Vec<(String, String)> = client
        .query(
            &format!(
                "SELECT show_id::text, {WEBHOOK_ID} FROM seat_events
                  WHERE show_id = $1 AND cause IN ('confirm', 'exchange')
                  ORDER BY epoch, xid, id"
            ),
            &[&show.parse::<i64>().unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(of_show.len(), 2);
    check_against_feed(&got, &of_show, &secret);
    let (confirmed, exchanged) = (&got[0].json, &got[1].json);
    assert_eq!(confirmed["type"], "booking.confirmed");
    assert_eq!(confirmed["data"]["hold_id"], hold.as_str());
    assert_eq!(confirmed["data"]["booking_id"], booking.as_str());
    assert_eq!(exchanged["type"], "booking.changed");
    assert_eq!(exchanged["data"]["cause"], "exchange");
    assert_eq!(exchanged["data"]["booking_id"], booking.as_str());
    assert_eq!(
        exchanged["data"]["seats"],
        json!([{"label": "A1", "state": "available"}, {"label": "A5", "state": "booked"}])
    );
    s.stop().await;
}

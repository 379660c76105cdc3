//! Bookings cancelled in part and seats exchanged, over HTTP.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_cancel_frees_only_what_it_names_and_a_repeat_changes_nothing() {
    let mut s = TestServer::start().await;
    let show = cart_show(&s).await;
    let mut sse = Sse::open(s.addr, &format!("/shows/{show}/events"), &[]).await;
    let booking = book(
        &s,
        &show,
        "alice",
        json!({"seats": ["A1", "A2", "A3"], "areas": {"FLOOR": 2}}),
    )
    .await;
    next(&mut sse, "hold").await;
    next(&mut sse, "confirm").await;
    let cancel = format!("/bookings/{booking}/cancel");

    let part = post(&s, &cancel, "alice", json!({"seats": ["A2"]})).await;
    assert_eq!(part.status, StatusCode::OK, "{}", part.text());
    assert_eq!(part.json["booking_id"], booking.as_str());
    assert_eq!(part.json["status"], "confirmed");
    assert!(part.json.get("cancelled_at").is_none());
    assert_eq!(part.json["seats"], json!(["A1", "A3"]));
    assert_eq!(part.json["areas"], json!({"FLOOR": 2}));
    assert_eq!(part.json["total"], 2 * 1000 + 2 * 500);
    assert_eq!(
        part.json["cancelled"],
        json!([{"seat": "A2", "type": "adult", "price": 1000}])
    );
    let (e, states) = next(&mut sse, "cancel").await;
    assert_eq!(labels(&e.data), ["A2"]);
    assert_eq!(states["A2"], "available");
    assert_eq!(state_of(&s, &show, "A2").await, "available");

    // The same seats again, without a key: 200, and nothing changes twice.
    let again = post(&s, &cancel, "alice", json!({"seats": ["A2"]})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json["cancelled"], json!([]));
    assert_eq!(again.json["seats"], json!(["A1", "A3"]));
    assert_eq!(again.json["total"], part.json["total"]);

    // A place, under a key: the replay is the same answer.
    let body = json!({"areas": {"FLOOR": 1}});
    let place = s
        .post(&cancel)
        .user("alice")
        .key("pc-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(place.status, StatusCode::OK, "{}", place.text());
    assert_eq!(place.json["areas"], json!({"FLOOR": 1}));
    assert_eq!(place.json["total"], 2 * 1000 + 500);
    assert_eq!(place.json["cancelled"].as_array().unwrap().len(), 1);
    assert_eq!(place.json["cancelled"][0]["area"], "FLOOR");
    let replay = s
        .post(&cancel)
        .user("alice")
        .key("pc-1")
        .json(body)
        .send()
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, place.body);
    // The repeat above sent nothing: this is the place's event.
    let (e, _) = next(&mut sse, "cancel").await;
    assert_eq!(labels(&e.data), Vec::<&str>::new());
    assert_eq!(floor_delta(&e.data), (1, 0, -1));

    // What the booking does not have: 409 naming it, nothing changed.
    let missing = post(&s, &cancel, "alice", json!({"seats": ["A1", "B1"]})).await;
    assert_error(&missing, StatusCode::CONFLICT, "not_in_booking");
    assert_eq!(missing.json["seats"], json!(["B1"]));
    let short = post(&s, &cancel, "alice", json!({"areas": {"FLOOR": 2}})).await;
    assert_error(&short, StatusCode::CONFLICT, "not_in_booking");
    assert_eq!(short.json["areas"], json!(["FLOOR"]));
    let read = s
        .get(&format!("/bookings/{booking}"))
        .user("alice")
        .send()
        .await;
    assert_eq!(read.json["seats"], json!(["A1", "A3"]));
    assert_eq!(read.json["total"], place.json["total"]);
    let other = post(&s, &cancel, "bob", json!({"seats": ["A1"]})).await;
    assert_error(&other, StatusCode::FORBIDDEN, "forbidden");

    // The freed seat is anyone's.
    hold(&s, &show, "bob", json!({"seats": ["A2"]})).await;
    next(&mut sse, "hold").await;

    // The rest (by an admin): the booking is cancelled, its total the price of what it
    // had then, its seats those it had then.
    let last = s
        .post(&cancel)
        .admin()
        .json(json!({"seats": ["A1", "A3"], "areas": {"FLOOR": 1}}))
        .send()
        .await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text());
    assert_eq!(last.json["status"], "cancelled");
    assert!(last.json["cancelled_at"].is_string());
    assert_eq!(last.json["seats"], json!(["A1", "A3"]));
    assert_eq!(last.json["total"], 2 * 1000 + 500);
    assert_eq!(last.json["cancelled"].as_array().unwrap().len(), 3);
    let (e, states) = next(&mut sse, "cancel").await;
    assert_eq!(labels(&e.data), ["A1", "A3"]);
    assert!(states.values().all(|s| s == "available"));
    assert_eq!(floor_delta(&e.data), (1, 0, -1));
    let read = s
        .get(&format!("/bookings/{booking}"))
        .user("alice")
        .send()
        .await;
    let mut without = last.json.clone();
    without.as_object_mut().unwrap().remove("cancelled");
    assert_eq!(read.json, without);
    // A whole cancel of it now: 200, nothing more.
    let whole = s.post(&cancel).user("alice").send().await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.json["status"], "cancelled");
    assert_eq!(whole.json["cancelled"], json!([]));

    // A whole cancel lists every ticket it cancelled.
    let other = book(&s, &show, "carol", json!({"seats": ["B1", "B2"]})).await;
    let whole = post(&s, format!("/bookings/{other}/cancel"), "carol", json!({})).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text());
    assert_eq!(whole.json["status"], "cancelled");
    assert_eq!(whole.json["total"], 3000);
    assert_eq!(
        whole.json["cancelled"],
        json!([{"seat": "B1", "type": "adult", "price": 1500},
               {"seat": "B2", "type": "adult", "price": 1500}])
    );
    assert_eq!(counter(&s, "booking_partial_cancels_total").await, 4);
    assert_eq!(counter(&s, "booking_cancels_total").await, 2);
    audit(&s.database_url).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_swaps_seats_in_one_transaction_and_answers_the_difference() {
    let mut s = TestServer::start().await;
    let show = cart_show(&s).await;
    let mut sse = Sse::open(s.addr, &format!("/shows/{show}/events"), &[]).await;
    let booking = book(&s, &show, "alice", json!({"seats": ["A1", "A2"]})).await;
    next(&mut sse, "hold").await;
    next(&mut sse, "confirm").await;
    hold(&s, &show, "bob", json!({"seats": ["B3"]})).await;
    next(&mut sse, "hold").await;
    let exchange = format!("/bookings/{booking}/exchange");

    // A seat to take is held: nothing changes.
    let refused = post(
        &s,
        &exchange,
        "alice",
        json!({"release": ["A1"], "take": ["B2", "B3"]}),
    )
    .await;
    assert_error(&refused, StatusCode::CONFLICT, "seats_unavailable");
    assert_eq!(refused.json["seats"], json!(["B3"]));
    let read = s
        .get(&format!("/bookings/{booking}"))
        .user("alice")
        .send()
        .await;
    assert_eq!(read.json["seats"], json!(["A1", "A2"]));
    assert_eq!(read.json["total"], 2000);
    assert_eq!(state_of(&s, &show, "A1").await, "booked");
    assert_eq!(state_of(&s, &show, "B2").await, "available");

    // Two for two, one as a child, under a key.
    let body = json!({"release": ["A1", "A2"], "take": ["B1", "B2"],
                      "ticket_types": {"B2": "child"}});
    let done = s
        .post(&exchange)
        .user("alice")
        .key("ex-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.json["booking_id"], booking.as_str());
    assert_eq!(done.json["status"], "confirmed");
    assert_eq!(done.json["seats"], json!(["B1", "B2"]));
    assert_eq!(
        done.json["tickets"],
        json!([{"seat": "B1", "type": "adult", "price": 1500},
               {"seat": "B2", "type": "child", "price": 900}])
    );
    assert_eq!(done.json["total"], 2400);
    assert_eq!(done.json["difference"], 400);
    let replay = s
        .post(&exchange)
        .user("alice")
        .key("ex-1")
        .json(body)
        .send()
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, done.body);
    // The refusal sent nothing: one event, each seat with its own state.
    let (_, states) = next(&mut sse, "exchange").await;
    let expected: BTreeMap<String, String> = [
        ("A1", "available"),
        ("A2", "available"),
        ("B1", "booked"),
        ("B2", "booked"),
    ]
    .into_iter()
    .map(|(l, st)| (l.to_owned(), st.to_owned()))
    .collect();
    assert_eq!(states, expected);
    assert_eq!(state_of(&s, &show, "A1").await, "available");
    assert_eq!(state_of(&s, &show, "B1").await, "booked");

    // A seat given back is anyone's, and no longer the booking's.
    hold(&s, &show, "carol", json!({"seats": ["A1"]})).await;
    next(&mut sse, "hold").await;
    let gone = post(
        &s,
        &exchange,
        "alice",
        json!({"release": ["A1"], "take": ["A3"]}),
    )
    .await;
    assert_error(&gone, StatusCode::CONFLICT, "not_in_booking");
    assert_eq!(gone.json["seats"], json!(["A1"]));
    let cancel_gone = post(
        &s,
        format!("/bookings/{booking}/cancel"),
        "alice",
        json!({"seats": ["A2"]}),
    )
    .await;
    assert_error(&cancel_gone, StatusCode::CONFLICT, "not_in_booking");

    // Refusals of what to take.
    let unknown_type = post(
        &s,
        &exchange,
        "alice",
        json!({"release": ["B1"], "take": ["A3"], "ticket_types": {"A3": "senior"}}),
    )
    .await;
    assert_error(&unknown_type, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(unknown_type.json["field"], "ticket_types");
    let unknown_seat = post(
        &s,
        &exchange,
        "alice",
        json!({"release": ["B1"], "take": ["C1"]}),
    )
    .await;
    assert_error(&unknown_seat, StatusCode::NOT_FOUND, "seat_not_found");
    assert_eq!(unknown_seat.json["seats"], json!(["C1"]));
    let other = post(
        &s,
        &exchange,
        "bob",
        json!({"release": ["B1"], "take": ["A3"]}),
    )
    .await;
    assert_error(&other, StatusCode::FORBIDDEN, "forbidden");

    // An admin may: a child's premium seat for an adult's standard one.
    let admin = s
        .post(&exchange)
        .admin()
        .json(json!({"release": ["B2"], "take": ["A3"]}))
        .send()
        .await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text());
    assert_eq!(admin.json["seats"], json!(["A3", "B1"]));
    assert_eq!(admin.json["total"], 2500);
    assert_eq!(admin.json["difference"], 100);
    next(&mut sse, "exchange").await;
    assert_eq!(counter(&s, "booking_exchanges_total").await, 2);

    // A cancelled booking exchanges nothing.
    let cancelled = s
        .post(&format!("/bookings/{booking}/cancel"))
        .user("alice")
        .send()
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json["seats"], json!(["A3", "B1"]));
    assert_eq!(cancelled.json["total"], 2500);
    let late = post(
        &s,
        &exchange,
        "alice",
        json!({"release": ["A3"], "take": ["A4"]}),
    )
    .await;
    assert_error(&late, StatusCode::CONFLICT, "booking_cancelled");
    audit(&s.database_url).await;
    s.stop().await;
}

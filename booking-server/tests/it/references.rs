//! `external_ref` and `metadata` over HTTP: given with a hold, best available or a
//! confirm, returned wherever the hold or booking is, one reference per show's booking,
//! and every malformed one a `400` naming the field.

use crate::cart::{cart_show, hold, post};
use crate::common::TestServer;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn references_travel_from_hold_to_booking_and_are_unique_per_show() {
    let s = TestServer::start().await;
    let show = cart_show(&s).await;
    let meta = json!({"channel": "web", "basket": [1, 2]});
    let held = hold(
        &s,
        &show,
        "alice",
        json!({"seats": ["A1"], "areas": {"FLOOR": 1}, "external_ref": "cart-9", "metadata": meta}),
    )
    .await;
    assert_eq!(held.json["external_ref"], "cart-9");
    assert_eq!(held.json["metadata"], meta);
    let id = held.json["hold_id"].as_str().unwrap();
    let read = s.get(&format!("/holds/{id}")).user("alice").send().await;
    assert_eq!(read.json, held.json);

    // The confirm's reference wins, the hold's metadata stays.
    let booked = post(
        &s,
        format!("/holds/{id}/confirm"),
        "alice",
        json!({"external_ref": "order-1"}),
    )
    .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text());
    assert_eq!(booked.json["external_ref"], "order-1");
    assert_eq!(booked.json["metadata"], meta);
    let booking = booked.json["booking_id"].as_str().unwrap();
    let read = s
        .get(&format!("/bookings/{booking}"))
        .user("alice")
        .send()
        .await;
    assert_eq!(read.json, booked.json);
    let mine = s.get("/users/me/bookings").user("alice").send().await;
    assert_eq!(mine.status, StatusCode::OK);
    assert!(mine.text().contains("order-1"), "{}", mine.text());

    // Best available takes them too.
    let best = s
        .post(&format!("/shows/{show}/holds/best"))
        .user("bob")
        .json(json!({"count": 2, "external_ref": "order-1", "metadata": {"x": true}}))
        .send()
        .await;
    assert_eq!(best.status, StatusCode::CREATED, "{}", best.text());
    assert_eq!(best.json["metadata"], json!({"x": true}));

    // Its confirm finds the reference taken: 409, nothing booked; another one books.
    let bid = best.json["hold_id"].as_str().unwrap();
    let taken = post(&s, format!("/holds/{bid}/confirm"), "bob", json!({})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text());
    assert_eq!(taken.error(), "external_ref_taken");
    let still = s.get(&format!("/holds/{bid}")).user("bob").send().await;
    assert_eq!(still.json["status"], "active");
    let other = post(
        &s,
        format!("/holds/{bid}/confirm"),
        "bob",
        json!({"external_ref": "order-2"}),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text());
    assert_eq!(other.json["external_ref"], "order-2");
}

#[tokio::test]
async fn malformed_references_are_refused_naming_the_field() {
    let s = TestServer::start().await;
    let show = cart_show(&s).await;
    let big = "x".repeat(5000);
    let cases = [
        (json!({"seats": ["A1"], "external_ref": ""}), "external_ref"),
        (
            json!({"seats": ["A1"], "external_ref": "has space"}),
            "external_ref",
        ),
        (
            json!({"seats": ["A1"], "external_ref": "x".repeat(129)}),
            "external_ref",
        ),
        (json!({"seats": ["A1"], "external_ref": 7}), "external_ref"),
        (
            json!({"seats": ["A1"], "external_ref": null}),
            "external_ref",
        ),
        (json!({"seats": ["A1"], "metadata": [1]}), "metadata"),
        (json!({"seats": ["A1"], "metadata": "text"}), "metadata"),
        (json!({"seats": ["A1"], "metadata": null}), "metadata"),
        (
            json!({"seats": ["A1"], "metadata": {"big": big}}),
            "metadata",
        ),
    ];
    for (body, field) in cases {
        let res = post(&s, format!("/shows/{show}/holds"), "alice", body.clone()).await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            res.text()
        );
        assert_eq!(res.error(), "invalid_request");
        assert_eq!(res.json["field"], field, "{body}");
    }
    let held = hold(&s, &show, "alice", json!({"seats": ["A1"]})).await;
    let id = held.json["hold_id"].as_str().unwrap();
    let res = post(
        &s,
        format!("/holds/{id}/confirm"),
        "alice",
        json!({"metadata": {"big": "y".repeat(4100)}}),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert_eq!(res.json["field"], "metadata");
    // Nothing was held or booked by any of them.
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM bookings").await, 0);
}

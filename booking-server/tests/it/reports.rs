//! `GET /shows/{id}/report` over HTTP: the figures of a small show, and who may ask.

use crate::common::TestServer;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_report_counts_a_shows_seats_and_revenue() {
    let s = TestServer::start().await;
    let show = s.show(&[("A", 6)]).await;
    let booked = s.hold(&show, "ann", &["A1", "A2"]).await;
    let res = s
        .post(&format!("/holds/{booked}/confirm"))
        .user("ann")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let booking = res.json["booking_id"].as_str().unwrap().to_owned();
    let res = s
        .post(&format!("/bookings/{booking}/cancel"))
        .user("ann")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    s.hold(&show, "ben", &["A3"]).await;
    let lapsed = s.hold(&show, "cy", &["A4"]).await;
    s.lapse(&lapsed).await;

    let r = s.get(&format!("/shows/{show}/report")).admin().send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seats = json!({"total": 6, "available": 4, "held": 1, "booked": 1, "blocked": 0,
                       "revenue": 1000});
    assert_eq!(r.json["seats"], seats);
    assert_eq!(r.json["categories"][0]["category"], "standard");
    assert_eq!(r.json["categories"][0]["booked"], 1);
    assert_eq!(
        r.json["ticket_types"],
        json!([{"type": "full", "held": 1, "booked": 1,
                                               "revenue": 1000}])
    );
    assert_eq!(
        r.json["cancelled"],
        json!({"bookings": 0, "seats": 1, "places": 0, "revenue": 1000})
    );
    assert_eq!(
        r.json["exchanged"],
        json!({"seats": 0, "places": 0, "revenue": 0})
    );
    assert_eq!(r.json["areas"], json!([]));

    let res = s
        .get(&format!("/shows/{show}/report"))
        .user("ann")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = s.get("/shows/999999/report").admin().send().await;
    assert_eq!(
        (res.status, res.error()),
        (StatusCode::NOT_FOUND, "show_not_found")
    );
    let res = s
        .get(&format!("/shows/{show}/report?x=1"))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json["field"], "x");
}

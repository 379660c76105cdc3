//! Bad input to the cart, partial cancel and exchange: the documented error, nothing changed.

use super::*;

/// A bad request (as `alice`) and the answer it gets.
struct Bad<'a> {
    what: &'a str,
    path: &'a str,
    body: &'a str,
    status: StatusCode,
    code: &'a str,
    /// The `field` it names; `""`: any (an `invalid_request` always names one).
    field: &'a str,
}

/// `400 invalid_request` naming `field`.
fn bad<'a>(what: &'a str, path: &'a str, body: &'a str, field: &'a str) -> Bad<'a> {
    Bad {
        what,
        path,
        body,
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        field,
    }
}

impl Bad<'_> {
    fn answers(mut self, status: StatusCode, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_carts_cancels_and_exchanges_gets_its_error_and_changes_nothing() {
    let mut s = TestServer::start().await;
    let show = cart_show(&s).await;
    let held = hold(&s, &show, "alice", json!({"seats": ["A1"]})).await;
    let id = held.json["hold_id"].as_str().unwrap().to_owned();
    let booking = book(&s, &show, "alice", json!({"seats": ["A5", "A6"]})).await;
    let add = format!("/holds/{id}/add");
    let remove = format!("/holds/{id}/remove");
    let cancel = format!("/bookings/{booking}/cancel");
    let exchange = format!("/bookings/{booking}/exchange");
    let tables = "SELECT (SELECT count(*) FROM hold_seats) * 1000000
                       + (SELECT count(*) FROM booking_seats WHERE live) * 10000
                       + (SELECT count(*) FROM seat_events) * 100
                       + (SELECT count(*) FROM idempotency_keys)";
    let before = s.count(tables).await;

    let unknown_hold = format!("/holds/{show}-9d2e4a7c-3b1f-4c8e-a2d6-5e0f1b3c7a94/add");
    let unknown_booking = format!("/bookings/{show}-9d2e4a7c-3b1f-4c8e-a2d6-5e0f1b3c7a94/exchange");
    let (add, rm, cx, ex) = (&add, &remove, &cancel, &exchange);
    let cases = [
        // Add.
        bad("add: malformed JSON", add, "{\"seats\": [", ""),
        bad("add: empty body", add, "", "body"),
        bad("add: an array", add, "[\"A2\"]", "body"),
        bad("add: nothing named", add, "{}", "seats"),
        bad("add: no seats", add, r#"{"seats": []}"#, "seats"),
        bad(
            "add: unknown field",
            add,
            r#"{"seats": ["A2"], "ttl_seconds": 60}"#,
            "",
        ),
        bad("add: seats not a list", add, r#"{"seats": "A2"}"#, "seats"),
        bad(
            "add: a seat not a string",
            add,
            r#"{"seats": [2]}"#,
            "seats[0]",
        ),
        bad("add: null seats", add, r#"{"seats": null}"#, "seats"),
        bad("add: lowercase label", add, r#"{"seats": ["a2"]}"#, "seats"),
        bad(
            "add: duplicate seats",
            add,
            r#"{"seats": ["A2", "A2"]}"#,
            "seats",
        ),
        bad(
            "add: eleven seats",
            add,
            r#"{"seats": ["A2","A3","A4","B1","B2","B3","B4","B5","B6","A1","A5"]}"#,
            "seats",
        ),
        bad(
            "add: malformed area",
            add,
            r#"{"areas": {"floor": 1}}"#,
            "areas",
        ),
        bad(
            "add: zero places",
            add,
            r#"{"areas": {"FLOOR": 0}}"#,
            "areas",
        ),
        bad(
            "add: half a place",
            add,
            r#"{"areas": {"FLOOR": 1.5}}"#,
            "areas.FLOOR",
        ),
        bad(
            "add: places as text",
            add,
            r#"{"areas": {"FLOOR": "1"}}"#,
            "areas.FLOOR",
        ),
        bad(
            "add: a type for a seat not added",
            add,
            r#"{"seats": ["A2"], "ticket_types": {"A3": "child"}}"#,
            "ticket_types",
        ),
        bad(
            "add: a type for an area not asked",
            add,
            r#"{"seats": ["A2"], "ticket_types": {"FLOOR": ["child"]}}"#,
            "ticket_types",
        ),
        bad(
            "add: too few types for the places",
            add,
            r#"{"areas": {"FLOOR": 2}, "ticket_types": {"FLOOR": ["child"]}}"#,
            "ticket_types",
        ),
        bad(
            "add: a malformed type",
            add,
            r#"{"seats": ["A2"], "ticket_types": {"A2": "Child!"}}"#,
            "ticket_types",
        ),
        bad(
            "add: a malformed label of a type",
            add,
            r#"{"seats": ["A2"], "ticket_types": {"a2": "child"}}"#,
            "ticket_types",
        ),
        bad(
            "add: a type the show lacks",
            add,
            r#"{"seats": ["A2"], "ticket_types": {"A2": "senior"}}"#,
            "ticket_types",
        ),
        bad(
            "add: a type as a number",
            add,
            r#"{"seats": ["A2"], "ticket_types": {"A2": 1}}"#,
            "",
        ),
        bad("add: unknown seat", add, r#"{"seats": ["C1"]}"#, "")
            .answers(StatusCode::NOT_FOUND, "seat_not_found"),
        bad("add: unknown area", add, r#"{"areas": {"PIT": 1}}"#, "")
            .answers(StatusCode::NOT_FOUND, "area_not_found"),
        bad(
            "add: unknown hold",
            &unknown_hold,
            r#"{"seats": ["A2"]}"#,
            "",
        )
        .answers(StatusCode::NOT_FOUND, "hold_not_found"),
        // Remove.
        bad("remove: malformed JSON", rm, "{\"seats\"", ""),
        bad("remove: nothing named", rm, "{}", "seats"),
        bad(
            "remove: types",
            rm,
            r#"{"seats": ["A1"], "ticket_types": {}}"#,
            "",
        ),
        bad(
            "remove: seats not a list",
            rm,
            r#"{"seats": "A1"}"#,
            "seats",
        ),
        bad(
            "remove: label with spaces",
            rm,
            r#"{"seats": [" A1"]}"#,
            "seats",
        ),
        bad(
            "remove: negative places",
            rm,
            r#"{"areas": {"FLOOR": -1}}"#,
            "areas",
        ),
        bad(
            "remove: null areas",
            rm,
            r#"{"seats": ["A1"], "areas": null}"#,
            "areas",
        ),
        // Cancel.
        bad("cancel: malformed JSON", cx, "{\"seats\": [\"A5\"", ""),
        bad("cancel: an array", cx, "[]", "body"),
        bad(
            "cancel: unknown field",
            cx,
            r#"{"reason": "changed my mind"}"#,
            "",
        ),
        bad("cancel: no seats", cx, r#"{"seats": []}"#, "seats"),
        bad("cancel: null seats", cx, r#"{"seats": null}"#, "seats"),
        bad(
            "cancel: seats not a list",
            cx,
            r#"{"seats": "A5"}"#,
            "seats",
        ),
        bad(
            "cancel: duplicate seats",
            cx,
            r#"{"seats": ["A5", "A5"]}"#,
            "seats",
        ),
        bad(
            "cancel: malformed label",
            cx,
            r#"{"seats": ["A05"]}"#,
            "seats",
        ),
        bad(
            "cancel: zero places",
            cx,
            r#"{"areas": {"FLOOR": 0}}"#,
            "areas",
        ),
        bad(
            "cancel: trailing garbage",
            cx,
            r#"{"seats": ["A5"]} x"#,
            "body",
        ),
        bad(
            "cancel: not an id",
            "/bookings/x/cancel",
            r#"{"seats": ["A5"]}"#,
            "",
        )
        .answers(StatusCode::NOT_FOUND, "booking_not_found"),
        // Exchange.
        bad("exchange: malformed JSON", ex, "{\"release\": ", ""),
        bad("exchange: empty body", ex, "", "body"),
        bad("exchange: nothing", ex, "{}", ""),
        bad("exchange: no take", ex, r#"{"release": ["A5"]}"#, ""),
        bad(
            "exchange: empty release",
            ex,
            r#"{"release": [], "take": ["B1"]}"#,
            "release",
        ),
        bad(
            "exchange: empty take",
            ex,
            r#"{"release": ["A5"], "take": []}"#,
            "take",
        ),
        bad(
            "exchange: bad label",
            ex,
            r#"{"release": ["A5"], "take": ["b1"]}"#,
            "take",
        ),
        bad(
            "exchange: duplicate to give back",
            ex,
            r#"{"release": ["A5", "A5"], "take": ["B1"]}"#,
            "release",
        ),
        bad(
            "exchange: a seat in both",
            ex,
            r#"{"release": ["A5"], "take": ["A5"]}"#,
            "take",
        ),
        bad(
            "exchange: release not a list",
            ex,
            r#"{"release": "A5", "take": ["B1"]}"#,
            "release",
        ),
        bad(
            "exchange: unknown field",
            ex,
            r#"{"release": ["A5"], "take": ["B1"], "areas": {}}"#,
            "",
        ),
        bad(
            "exchange: a type for a seat not taken",
            ex,
            r#"{"release": ["A5"], "take": ["B1"], "ticket_types": {"B2": "child"}}"#,
            "ticket_types",
        ),
        bad(
            "exchange: types of places",
            ex,
            r#"{"release": ["A5"], "take": ["B1"], "ticket_types": {"FLOOR": ["child"]}}"#,
            "ticket_types",
        ),
        bad(
            "exchange: a malformed type",
            ex,
            r#"{"release": ["A5"], "take": ["B1"], "ticket_types": {"B1": ""}}"#,
            "ticket_types",
        ),
        bad(
            "exchange: null types",
            ex,
            r#"{"release": ["A5"], "take": ["B1"], "ticket_types": null}"#,
            "ticket_types",
        ),
        bad(
            "exchange: not its seat",
            ex,
            r#"{"release": ["A4"], "take": ["B1"]}"#,
            "",
        )
        .answers(StatusCode::CONFLICT, "not_in_booking"),
        bad(
            "exchange: unknown booking",
            &unknown_booking,
            r#"{"release": ["A5"], "take": ["B1"]}"#,
            "",
        )
        .answers(StatusCode::NOT_FOUND, "booking_not_found"),
    ];
    for Bad {
        what,
        path,
        body,
        status,
        code,
        field,
    } in cases
    {
        let mut call = s.post(path).user("alice");
        if !body.is_empty() {
            call = call.raw(body.to_owned());
        }
        let res = call.send().await;
        assert_eq!(res.status, status, "{what}: {}", res.text());
        assert_eq!(res.error(), code, "{what}: {}", res.text());
        if code == "invalid_request" {
            assert!(res.json["field"].is_string(), "{what}: names the field");
        }
        if !field.is_empty() {
            assert_eq!(res.json["field"], field, "{what}: {}", res.text());
        }
    }

    // Refused before the operation, a keyed request stores nothing either.
    let keyed = s
        .post(add)
        .user("alice")
        .key("bad-1")
        .raw("{\"seats\": 1}")
        .send()
        .await;
    assert_error(&keyed, StatusCode::BAD_REQUEST, "invalid_request");
    // Who is calling; which method; how big.
    let anonymous = s.post(add).json(json!({"seats": ["A2"]})).send().await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
    let wrong_token = s
        .post(&exchange)
        .header("authorization", "Bearer wrong-token-wrong-token")
        .json(json!({"release": ["A5"], "take": ["B1"]}))
        .send()
        .await;
    assert_error(&wrong_token, StatusCode::UNAUTHORIZED, "unauthorized");
    for path in [add, rm, ex] {
        let get = s.call(Method::GET, path).user("alice").send().await;
        assert_error(&get, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(get.header("allow"), Some("POST"));
        let big = s
            .post(path)
            .user("alice")
            .raw(format!(
                "{{\"seats\": [\"A2\"], \"pad\": \"{}\"}}",
                "x".repeat(70_000)
            ))
            .send()
            .await;
        assert_error(&big, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    assert_eq!(s.count(tables).await, before, "nothing changed");
    let read = s.get(&format!("/holds/{id}")).user("alice").send().await;
    assert_eq!(read.json["seats"], json!(["A1"]));
    s.stop().await;
}

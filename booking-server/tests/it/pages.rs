//! Lists in pages over HTTP: a show's holds and bookings (admin) and the caller's
//! bookings, each row once across pages, filters, and every bad query refused with the
//! field it names.

use crate::common::TestServer;
use hyper::StatusCode;
use serde_json::Value;
use std::collections::HashSet;

/// Every row of a list, following `next_cursor` at `limit` a page; and the page sizes.
async fn walk(
    s: &TestServer,
    path: &str,
    key: &str,
    limit: u32,
    who: Option<&str>,
) -> (Vec<Value>, Vec<usize>) {
    let (mut rows, mut sizes) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    loop {
        let mut url = format!("{path}{sep}limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let call = s.get(&url);
        let call = match who {
            Some(u) => call.user(u),
            None => call.admin(),
        };
        let res = call.send().await;
        assert_eq!(res.status, StatusCode::OK, "{url}: {}", res.text());
        let page = res.json[key].as_array().unwrap().clone();
        sizes.push(page.len());
        rows.extend(page);
        match res.json.get("next_cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => return (rows, sizes),
        }
    }
}

async fn confirm(s: &TestServer, user: &str, hold: &str) -> Value {
    let res = s
        .post(&format!("/holds/{hold}/confirm"))
        .user(user)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json
}

#[tokio::test]
async fn pages_give_each_hold_and_booking_once_newest_first() {
    let s = TestServer::start().await;
    let show = s.show(&[("A", 10)]).await;
    let mut holds = Vec::new();
    for (i, who) in ["ann", "ben", "ann", "ben", "cy"].iter().enumerate() {
        holds.push(s.hold(&show, who, &[&format!("A{}", i + 1)]).await);
    }
    let b1 = confirm(&s, "ann", &holds[0]).await;
    let b2 = confirm(&s, "ben", &holds[1]).await;
    s.lapse(&holds[4]).await;

    let (listed, sizes) = walk(&s, &format!("/shows/{show}/holds"), "holds", 2, None).await;
    assert_eq!(sizes, [2, 2, 1]);
    let ids: Vec<&str> = listed
        .iter()
        .map(|h| h["hold_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        5,
        "each hold once"
    );
    for h in &listed {
        let one = s
            .get(&format!("/holds/{}", h["hold_id"].as_str().unwrap()))
            .user(h["user_id"].as_str().unwrap())
            .send()
            .await;
        assert_eq!(&one.json, h, "a listed hold is the hold as read alone");
    }
    let (expired, _) = walk(
        &s,
        &format!("/shows/{show}/holds?status=expired"),
        "holds",
        50,
        None,
    )
    .await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["hold_id"], holds[4].as_str());
    let (anns, _) = walk(
        &s,
        &format!("/shows/{show}/holds?user=ann&status=active"),
        "holds",
        50,
        None,
    )
    .await;
    assert_eq!(anns.len(), 1);
    assert_eq!(anns[0]["hold_id"], holds[2].as_str());

    let (bookings, sizes) = walk(&s, &format!("/shows/{show}/bookings"), "bookings", 1, None).await;
    assert_eq!(sizes, [1, 1]);
    assert_eq!(bookings[0]["booking_id"], b2["booking_id"], "newest first");
    assert_eq!(bookings[1]["booking_id"], b1["booking_id"]);
    let (bens, _) = walk(
        &s,
        &format!("/shows/{show}/bookings?user=ben&status=confirmed"),
        "bookings",
        50,
        None,
    )
    .await;
    assert_eq!(bens.len(), 1);
    assert_eq!(bens[0]["booking_id"], b2["booking_id"]);
    let (none, _) = walk(
        &s,
        &format!("/shows/{show}/bookings?external_ref=ORD%2D9"),
        "bookings",
        50,
        None,
    )
    .await;
    assert!(none.is_empty());

    let (mine, sizes) = walk(&s, "/users/me/bookings", "bookings", 1, Some("ann")).await;
    assert_eq!(sizes, [1]);
    assert_eq!(mine[0]["booking_id"], b1["booking_id"]);
}

#[tokio::test]
async fn bad_queries_are_refused_naming_the_parameter() {
    let s = TestServer::start().await;
    let show = s.show(&[("A", 4)]).await;
    let other = s.show(&[("A", 4)]).await;
    for seat in ["A1", "A2"] {
        s.hold(&show, "ann", &[seat]).await;
    }
    let first = s
        .get(&format!("/shows/{show}/holds?limit=1"))
        .admin()
        .send()
        .await;
    let holds_cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    let long_user = "u".repeat(129);
    let long_query = format!("limit=5&user={}", "x".repeat(3000));
    let cases: Vec<(String, &str)> = vec![
        (format!("/shows/{show}/holds?limit=0"), "limit"),
        (format!("/shows/{show}/holds?limit=201"), "limit"),
        (format!("/shows/{show}/holds?limit=ten"), "limit"),
        (format!("/shows/{show}/holds?limit=-1"), "limit"),
        (format!("/shows/{show}/holds?cursor=garbage"), "cursor"),
        (format!("/shows/{show}/holds?cursor="), "cursor"),
        (
            format!("/shows/{show}/holds?cursor={}", "A".repeat(500)),
            "cursor",
        ),
        (
            format!("/shows/{other}/holds?cursor={holds_cursor}"),
            "cursor",
        ),
        (
            format!("/shows/{show}/bookings?cursor={holds_cursor}"),
            "cursor",
        ),
        (format!("/shows/{show}/holds?status=lapsed"), "status"),
        (format!("/shows/{show}/bookings?status=active"), "status"),
        (format!("/shows/{show}/holds?user={long_user}"), "user"),
        (format!("/shows/{show}/holds?user="), "user"),
        (
            format!("/shows/{show}/bookings?external_ref=has%20space"),
            "external_ref",
        ),
        (
            format!("/shows/{show}/bookings?external_ref="),
            "external_ref",
        ),
        (format!("/shows/{show}/holds?stauts=active"), "stauts"),
        (format!("/shows/{show}/holds?limit=5&limit=6"), "limit"),
        (format!("/shows/{show}/holds?{long_query}"), "query"),
    ];
    for (path, field) in cases {
        let res = s.get(&path).admin().send().await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            res.text()
        );
        assert_eq!(res.error(), "invalid_request", "{path}");
        assert_eq!(res.json["field"], field, "{path}: {}", res.text());
    }
    // A cursor changed in one character is refused, or names a place in this list.
    let mut tampered = holds_cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'B' { b'C' } else { b'B' };
    let tampered = String::from_utf8(tampered).unwrap();
    let res = s
        .get(&format!("/shows/{show}/holds?cursor={tampered}"))
        .admin()
        .send()
        .await;
    assert!(
        res.status == StatusCode::BAD_REQUEST || res.status == StatusCode::OK,
        "{}",
        res.text()
    );
    let res = s
        .get(&format!("/users/me/bookings?cursor={holds_cursor}"))
        .user("ann")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json["field"], "cursor");
    let res = s
        .get("/users/me/bookings?limit=999")
        .user("ann")
        .send()
        .await;
    assert_eq!(res.json["field"], "limit");

    // Admin only; a show that does not exist is not an empty list.
    for path in [
        format!("/shows/{show}/holds"),
        format!("/shows/{show}/bookings"),
    ] {
        let res = s.get(&path).send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
        let res = s.get(&path).user("ann").send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in [
        "/shows/999999/holds",
        "/shows/999999/bookings",
        "/shows/x/holds",
    ] {
        let res = s.get(path).admin().send().await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.error(), "show_not_found");
    }
    let res = s
        .call(hyper::Method::PUT, &format!("/shows/{show}/bookings"))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn shows_are_listed_by_start_in_pages_without_live_counts() {
    let s = TestServer::start().await;
    let mut made = Vec::new();
    for day in [5, 1, 3, 2, 4] {
        let res = s
            .post("/shows")
            .admin()
            .json(serde_json::json!({
                "title": format!("Day {day}"),
                "starts_at": format!("2031-01-0{day}T20:00:00Z"),
                "prices": {"standard": 1000}, "rows": [{"row": "A", "seats": 3}]
            }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        made.push((day, res.json["id"].as_str().unwrap().to_owned()));
    }
    let (listed, sizes) = walk(&s, "/shows", "shows", 2, Some("anyone")).await;
    assert_eq!(sizes, [2, 2, 1]);
    let titles: Vec<&str> = listed
        .iter()
        .map(|v| v["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Day 1", "Day 2", "Day 3", "Day 4", "Day 5"]);
    for v in &listed {
        assert_eq!(v["seats_total"], 3);
        assert!(v.get("available").is_none(), "no live counts: {v}");
    }
    let (window, _) = walk(
        &s,
        "/shows?from=2031-01-02T20:00:00Z&to=2031-01-04T20:00:00Z",
        "shows",
        50,
        Some("anyone"),
    )
    .await;
    let titles: Vec<&str> = window
        .iter()
        .map(|v| v["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Day 2", "Day 3"], "from inclusive, to exclusive");
    // A time with an offset is the same instant (`+` percent-encoded).
    let (offset, _) = walk(
        &s,
        "/shows?from=2031-01-04T21:00:00%2B01:00",
        "shows",
        50,
        Some("anyone"),
    )
    .await;
    assert_eq!(offset.len(), 2);
    // The plain list is the first page.
    let plain = s.get("/shows").send().await;
    assert_eq!(plain.json["shows"].as_array().unwrap().len(), 5);
    assert!(plain.json.get("next_cursor").is_none());
    for (path, field) in [
        ("/shows?from=tomorrow", "from"),
        ("/shows?to=2031-01-01", "to"),
        ("/shows?limit=0", "limit"),
        ("/shows?cursor=%00", "cursor"),
        ("/shows?sort=title", "sort"),
    ] {
        let res = s.get(path).send().await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(res.json["field"], field, "{path}");
    }
    // A cursor of the show list is no cursor of a show's bookings.
    let page = s.get("/shows?limit=1").send().await;
    let cursor = page.json["next_cursor"].as_str().unwrap();
    let res = s
        .get(&format!("/shows/{}/bookings?cursor={cursor}", made[0].1))
        .admin()
        .send()
        .await;
    assert_eq!(res.json["field"], "cursor");
}

#[tokio::test]
async fn venues_and_blocks_are_paged_too() {
    let s = TestServer::start().await;
    for i in 0..3 {
        let res = s
            .post("/venues")
            .admin()
            .json(serde_json::json!({"name": format!("Hall {i}"),
                                     "rows": [{"row": "A", "seats": 4}]}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }
    let (venues, sizes) = walk(&s, "/venues", "venues", 2, Some("anyone")).await;
    assert_eq!(sizes, [2, 1]);
    let names: Vec<&str> = venues.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Hall 0", "Hall 1", "Hall 2"], "oldest first");

    let show = s.show(&[("A", 6)]).await;
    for seat in ["A1", "A2", "A3"] {
        let res = s
            .post(&format!("/shows/{show}/blocks"))
            .admin()
            .json(serde_json::json!({"seats": [seat], "reason": "broken"}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }
    let (blocks, sizes) = walk(&s, &format!("/shows/{show}/blocks"), "blocks", 2, None).await;
    assert_eq!(sizes, [2, 1]);
    let seats: Vec<&Value> = blocks.iter().map(|b| &b["seats"][0]).collect();
    assert_eq!(seats, ["A1", "A2", "A3"]);
    // A venue cursor is no block cursor, nor one of another show's blocks.
    let venue_cursor = s.get("/venues?limit=1").send().await.json["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = s.show(&[("A", 2)]).await;
    let block_cursor = s
        .get(&format!("/shows/{show}/blocks?limit=1"))
        .admin()
        .send()
        .await
        .json["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("/shows/{show}/blocks?cursor={venue_cursor}"),
        format!("/shows/{other}/blocks?cursor={block_cursor}"),
        format!("/venues?cursor={block_cursor}"),
        "/venues?limit=0".to_owned(),
        "/venues?name=x".to_owned(),
    ] {
        let res = s.get(&path).admin().send().await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            res.text()
        );
    }
}

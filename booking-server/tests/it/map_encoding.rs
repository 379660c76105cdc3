//! Seat maps on the wire: compressed as the client's `Accept-Encoding` allows (each
//! coding decoding to exactly the map as it is), `Vary` on every answer, a tag and a
//! `304` per representation, and the compact form (`?format=compact`) carrying the same
//! seats, states, versions, areas and position as the full one.

use crate::cart::{book, hold};
use crate::common::{contract, Res, TestServer};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A show of two sections, ticket types, features, aisles, a blocked seat and an area,
/// with a hold and a booking on it: every part the compact form writes differently.
async fn busy_show(s: &TestServer) -> String {
    let res = s
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Encoded", "starts_at": "2030-01-01T20:00:00Z",
            "rows": [
                {"row": "A", "seats": 20, "aisles_after": [5, 15], "section": "L",
                 "features": {"wheelchair": [1, 2]}},
                {"row": "B", "seats": 20, "section": "L", "blocked": [7]},
                // Enough seats that even the compact map stays above encoding::MIN_SIZE
                // (1,400 bytes) with short versions: with 60 seats and five-digit xids
                // it was 1,377 bytes, sent uncompressed, and the test failed on a
                // young cluster.
                {"row": "C", "seats": 40, "section": "L"},
                {"row": "A", "seats": 20, "section": "R", "category": "premium",
                 "features": {"restricted_view": [20]}}
            ],
            "areas": [{"area": "FLOOR", "capacity": 50, "category": "standing"}],
            "ticket_types": [
                {"type": "adult", "prices": {"standard": 1000, "premium": 1500, "standing": 500}},
                {"type": "child", "prices": {"standard": 600, "premium": 900}}
            ]
        }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let show = res.json["id"].as_str().unwrap().to_owned();
    hold(
        s,
        &show,
        "alice",
        json!({"seats": ["L-A3", "R-A20"], "areas": {"FLOOR": 2}}),
    )
    .await;
    book(
        s,
        &show,
        "bob",
        json!({"seats": ["L-B1", "L-B2"], "areas": {"FLOOR": 3}}),
    )
    .await;
    let blocked = s
        .post(&format!("/shows/{show}/blocks"))
        .admin()
        .json(json!({"seats": ["R-A1"], "reason": "camera"}))
        .send()
        .await;
    assert_eq!(blocked.status, StatusCode::CREATED, "{}", blocked.text());
    show
}

async fn map(s: &TestServer, path: &str, accept: Option<&str>) -> Res {
    let mut call = s.get(path);
    if let Some(a) = accept {
        call = call.header("accept-encoding", a);
    }
    let res = call.send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header("vary"), Some("Accept-Encoding"));
    res
}

fn decoded(res: &Res) -> Vec<u8> {
    contract::decode("test", &res.headers, &res.body).unwrap()
}

/// The body of each coding decodes to exactly the identity body, for both forms.
#[tokio::test]
async fn each_coding_decodes_to_the_identity_answer() {
    let s = TestServer::start().await;
    let show = busy_show(&s).await;
    for path in [
        format!("/shows/{show}/seats"),
        format!("/shows/{show}/seats?format=compact"),
    ] {
        let plain = map(&s, &path, None).await;
        assert_eq!(plain.header("content-encoding"), None);
        for (accept, coding) in [("gzip", "gzip"), ("gzip, deflate, br", "br"), ("br", "br")] {
            let res = map(&s, &path, Some(accept)).await;
            assert_eq!(res.header("content-encoding"), Some(coding), "{accept}");
            assert!(
                res.body.len() < plain.body.len() / 3,
                "{accept}: compressed"
            );
            assert_eq!(decoded(&res), plain.body, "{path} in {coding}");
        }
    }
}

/// `q=0` refuses a coding, `*` stands for the others, and identity is sent when
/// nothing else is allowed.
#[tokio::test]
async fn q_values_are_respected() {
    let s = TestServer::start().await;
    let show = busy_show(&s).await;
    let path = format!("/shows/{show}/seats");
    for (accept, coding) in [
        ("gzip;q=0", None),
        ("br;q=0, gzip", Some("gzip")),
        ("gzip;q=0.4, br;q=0.3", Some("gzip")),
        ("*", Some("br")),
        ("*;q=0", None),
        ("*;q=0, gzip;q=0.1", Some("gzip")),
        ("identity;q=1, gzip;q=0.5", None),
        ("deflate", None),
        ("gzip;q=0, br;q=0, identity;q=0", None),
    ] {
        let res = map(&s, &path, Some(accept)).await;
        assert_eq!(res.header("content-encoding"), coding, "{accept}");
    }
}

/// Each representation has its own tag, and sending it back answers `304` (with the
/// tag of the representation the request selects) until the map changes.
#[tokio::test]
async fn each_representation_revalidates_with_its_tag() {
    let s = TestServer::start().await;
    let show = busy_show(&s).await;
    let mut tags = Vec::new();
    for path in [
        format!("/shows/{show}/seats"),
        format!("/shows/{show}/seats?format=compact"),
    ] {
        for accept in [None, Some("gzip"), Some("br")] {
            let res = map(&s, &path, accept).await;
            let tag = res.header("etag").unwrap().to_owned();
            let mut again = s.get(&path).header("if-none-match", &tag);
            if let Some(a) = accept {
                again = again.header("accept-encoding", a);
            }
            let again = again.send().await;
            assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path} {accept:?}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), Some(tag.as_str()));
            assert_eq!(again.header("vary"), Some("Accept-Encoding"));
            tags.push((path.clone(), tag));
        }
    }
    let distinct: std::collections::BTreeSet<&String> = tags.iter().map(|(_, t)| t).collect();
    assert_eq!(
        distinct.len(),
        tags.len(),
        "one tag per representation: {tags:?}"
    );

    s.hold(&show, "carol", &["L-A10"]).await;
    for (path, tag) in &tags {
        let res = s.get(path).header("if-none-match", tag).send().await;
        assert_eq!(res.status, StatusCode::OK, "changed: {path}");
    }
}

/// A map of about one packet is sent as it is, whatever the client accepts.
#[tokio::test]
async fn a_small_map_is_not_compressed() {
    let s = TestServer::start().await;
    let show = s.show(&[("A", 2)]).await;
    let res = map(&s, &format!("/shows/{show}/seats"), Some("gzip, br")).await;
    assert!(res.body.len() < 1400, "under the documented threshold");
    assert_eq!(res.header("content-encoding"), None);
}

/// A seat as the full form describes it.
type SeatView = (
    String,
    Option<String>,
    String,
    i64,
    String,
    Value,
    bool,
    Value,
);

fn full_seats(map: &Value) -> BTreeMap<String, SeatView> {
    map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let label = s["label"].as_str().unwrap().to_owned();
            let view = (
                s["state"].as_str().unwrap().to_owned(),
                s["section"].as_str().map(str::to_owned),
                s["row"].as_str().unwrap().to_owned(),
                s["number"].as_i64().unwrap(),
                s["category"].as_str().unwrap().to_owned(),
                s["price"].clone(),
                s["aisle_after"].as_bool().unwrap(),
                s.get("features").cloned().unwrap_or(json!([])),
            );
            (label, (s["version"].as_str().unwrap().to_owned(), view))
        })
        .map(|(label, (version, mut view))| {
            view.0 = format!("{}@{version}", view.0);
            (label, view)
        })
        .collect()
}

/// Expands the compact form as docs/API.md says a client does.
fn compact_seats(c: &Value) -> BTreeMap<String, SeatView> {
    let names: Vec<&str> = c["state_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let states = c["states"].as_str().unwrap().as_bytes();
    let versions = c["versions"].as_array().unwrap();
    let kinds = c["kinds"].as_array().unwrap();
    let index_list = |v: &Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect()
    };
    let aisles = index_list(&c["aisle_after"]);
    let mut features: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    for (f, seats) in c["features"].as_object().unwrap() {
        for i in index_list(seats) {
            features.entry(i).or_default().push(json!(f));
        }
    }
    let mut out = BTreeMap::new();
    let mut i = 0;
    for row in c["rows"].as_array().unwrap() {
        let name = row["row"].as_str().unwrap();
        let section = row["section"].as_str().map(str::to_owned);
        for run in row["numbers"].as_array().unwrap() {
            let (from, to) = (run[0].as_i64().unwrap(), run[1].as_i64().unwrap());
            for n in from..=to {
                let label = match (&section, c.get("labels")) {
                    (_, Some(labels)) => labels[i].as_str().unwrap().to_owned(),
                    (Some(sec), None) => format!("{sec}-{name}{n}"),
                    (None, None) => format!("{name}{n}"),
                };
                let kind = match &c["kind"] {
                    Value::Array(k) => k[i].as_u64().unwrap() as usize,
                    k => k.as_u64().unwrap() as usize,
                };
                let state = names[(states[i] - b'0') as usize];
                let mut f = features.remove(&i).unwrap_or_default();
                f.sort_by_key(|v| v.as_str().unwrap().to_owned());
                out.insert(
                    label,
                    (
                        format!("{state}@{}", versions[i].as_str().unwrap()),
                        section.clone(),
                        name.to_owned(),
                        n,
                        kinds[kind]["category"].as_str().unwrap().to_owned(),
                        kinds[kind]["price"].clone(),
                        aisles.contains(&i),
                        json!(f),
                    ),
                );
                i += 1;
            }
        }
    }
    assert_eq!(i, states.len(), "one state per seat");
    assert_eq!(i, versions.len(), "one version per seat");
    out
}

/// The compact form read back gives every seat of the full form: label, state,
/// version, place, kind, aisle and features; and the same areas, types and position.
#[tokio::test]
async fn the_compact_form_round_trips_to_the_full_map() {
    let s = TestServer::start().await;
    let show = busy_show(&s).await;
    let full = map(&s, &format!("/shows/{show}/seats"), None).await.json;
    let compact = map(&s, &format!("/shows/{show}/seats?format=compact"), None)
        .await
        .json;
    assert_eq!(compact["format"], "compact");
    assert_eq!(compact["position"], full["position"], "the same version");
    let seats = full_seats(&full);
    let states: Vec<&str> = seats.values().map(|v| v.0.as_str()).collect();
    for state in ["available@", "held@", "booked@", "blocked@"] {
        assert!(states.iter().any(|s| s.starts_with(state)), "{state} seats");
    }
    assert_eq!(compact_seats(&compact), seats);
    for field in ["areas", "ticket_types", "show_id"] {
        assert_eq!(compact[field], full[field], "{field}");
    }
    // The form not kept in memory (the admin's map) writes the same compact form.
    let admin = s
        .get(&format!("/shows/{show}/seats?format=compact"))
        .admin()
        .send()
        .await;
    assert_eq!(admin.status, StatusCode::OK);
    assert_eq!(compact_seats(&admin.json), seats);
}

/// An unknown `format` (or another parameter) is the documented `400`, naming it.
#[tokio::test]
async fn a_bad_format_is_invalid_request() {
    let s = TestServer::start().await;
    let show = s.show(&[("A", 2)]).await;
    for (query, field) in [
        ("format=xml", "format"),
        ("format=", "format"),
        ("format=COMPACT", "format"),
        ("format=compact&format=full", "format"),
        ("formt=compact", "formt"),
    ] {
        let res = s.get(&format!("/shows/{show}/seats?{query}")).send().await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(res.error(), "invalid_request");
        assert_eq!(res.json["field"], field, "{query}");
    }
    let ok = s
        .get(&format!("/shows/{show}/seats?format=full"))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

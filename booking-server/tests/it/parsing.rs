//! Property tests of the request parsing that runs before any database work: routing,
//! the caller's headers, JSON bodies. Whatever comes in, the answer is a route or the
//! documented error (404, 405 with Allow, 401, 400 naming a field) — never a panic.

use booking_server::http::{self, ApiError};
use booking_server::routes::{self, Route};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use proptest::prelude::*;

fn methods() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::DELETE),
        Just(Method::PUT),
        Just(Method::PATCH),
        Just(Method::HEAD),
        Just(Method::OPTIONS),
    ]
}

fn paths() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("shows".to_owned()),
        Just("holds".to_owned()),
        Just("bookings".to_owned()),
        Just("users".to_owned()),
        Just("me".to_owned()),
        Just("seats".to_owned()),
        Just("events".to_owned()),
        Just("confirm".to_owned()),
        Just("cancel".to_owned()),
        Just("extend".to_owned()),
        "[0-9]{1,20}",
        "[0-9]{1,3}-[0-9a-f-]{36}",
        "\\PC{0,12}",
        Just(String::new()),
    ];
    proptest::collection::vec(segment, 0..6).prop_map(|s| format!("/{}", s.join("/")))
}

fn is_documented_error(e: &ApiError) -> bool {
    match e.status {
        StatusCode::NOT_FOUND => !e.code.is_empty(),
        StatusCode::METHOD_NOT_ALLOWED => e.allow.is_some(),
        StatusCode::BAD_REQUEST => e.code == "invalid_request",
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn any_path_routes_or_gets_a_documented_error(method in methods(), path in paths()) {
        match routes::resolve(&method, &path) {
            Ok(route) => {
                // The route fits the request line (ids are parsed later, by the handler).
                let (m, pattern) = route.label().split_once(' ').unwrap();
                prop_assert!(m == method.as_str() || (method == Method::HEAD && m == "GET"),
                    "{} {} resolved to {}", method, path, route.label());
                let page = matches!(route, Route::Page(_));
                prop_assert!(page || same_shape(pattern, &path),
                    "{} {} resolved to {}", method, path, route.label());
                prop_assert!(page || routes::DOCUMENTED.contains(&(m, pattern)));
            }
            Err(e) => prop_assert!(is_documented_error(&e), "{method} {path}: {e:?}"),
        }
    }

    #[test]
    fn any_user_header_is_a_user_or_401(raw in proptest::collection::vec(any::<u8>(), 0..140)) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&raw) {
            headers.insert("x-user-id", v);
        }
        match http::header_user(&headers) {
            Ok(u) => {
                prop_assert!(!raw.is_empty() && raw.len() <= 128);
                prop_assert!(raw.iter().all(u8::is_ascii_graphic));
                prop_assert_eq!(u.as_str().as_bytes(), &raw[..]);
            }
            Err(e) => prop_assert_eq!(e.status, StatusCode::UNAUTHORIZED),
        }
    }

    #[test]
    fn any_admin_header_is_admin_only_with_the_exact_token(raw in "\\PC{0,60}", token in "[!-~]{16,40}") {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&raw) {
            headers.insert("authorization", v);
        }
        let presented_exact = raw == format!("Bearer {token}");
        match http::header_admin(&headers, Some(&token)) {
            Ok(true) => prop_assert!(presented_exact),
            Ok(false) => prop_assert!(!headers.contains_key("authorization")),
            Err(e) => { prop_assert!(!presented_exact); prop_assert_eq!(e.status, StatusCode::UNAUTHORIZED); }
        }
    }

    #[test]
    fn a_token_of_the_right_length_with_one_byte_wrong_is_refused(token in "[!-~]{16,40}", at in any::<prop::sample::Index>(), by in 1u8..94) {
        let mut guess = token.clone().into_bytes();
        let i = at.index(guess.len());
        // Another visible ASCII character (b'!'..=b'~' is 94 of them) in the same place.
        guess[i] = b'!' + (guess[i] - b'!' + by) % 94;
        let guess = String::from_utf8(guess).unwrap();
        prop_assert_ne!(&guess, &token);
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {guess}")).unwrap());
        let e = http::header_admin(&headers, Some(&token)).unwrap_err();
        prop_assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn any_body_is_json_or_400_naming_a_field(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        match http::parse_json::<serde_json::Value>(&body) {
            Ok(v) => {
                prop_assert!(v.is_object());
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
            }
            Err(e) => {
                prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
                prop_assert_eq!(e.code, "invalid_request");
                prop_assert!(e.field.is_some());
            }
        }
    }

    #[test]
    fn json_that_is_not_an_object_is_400(v in prop_oneof![
        Just(serde_json::json!([])), Just(serde_json::json!(null)), Just(serde_json::json!(1)),
        Just(serde_json::json!("x")), Just(serde_json::json!([{"ttl_seconds": 60}]))]) {
        #[derive(serde::Deserialize, Debug)]
        struct Empty {}
        let e = http::parse_json::<Empty>(v.to_string().as_bytes()).unwrap_err();
        prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
        prop_assert_eq!(e.field.as_deref(), Some("body"));
    }

    #[test]
    fn json_of_the_wrong_shape_names_the_field(seats in proptest::collection::vec(any::<i64>(), 1..4)) {
        #[derive(serde::Deserialize, Debug)]
        struct Hold { #[serde(rename = "seats")] _seats: Vec<String> }
        let body = serde_json::json!({"seats": seats}).to_string();
        let e = http::parse_json::<Hold>(body.as_bytes()).unwrap_err();
        prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
        prop_assert!(e.field.as_deref().unwrap_or("").starts_with("seats"), "{:?}", e.field);
    }
}

/// Whether `path` fits the documented `pattern` (`{...}` matches one non-empty segment).
fn same_shape(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    p.len() == s.len()
        && p.iter().zip(&s).all(|(a, b)| {
            if a.starts_with('{') {
                !b.is_empty()
            } else {
                a == b
            }
        })
}

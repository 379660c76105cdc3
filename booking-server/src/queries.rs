//! Lists in pages (admin: a show's holds and bookings; anyone: their own bookings):
//! the query string parsed once, the page from `booking_core::queries`.
//!
//! A query string names each parameter at most once and only parameters the endpoint
//! knows: a typo such as `?stauts=active` is `400 invalid_request` naming it, rather
//! than a list that silently ignores the filter.

use crate::http::{ApiError, Reply};
use crate::shows::show_id;
use crate::state::AppState;
use booking_core::queries::{self, parse_booking_status, parse_hold_status};
use booking_core::{BookingQuery, Cursor, HoldQuery, Limit, Page, UserId};
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Serialize;
use std::collections::BTreeMap;

/// The longest query string a list reads: a cursor, a reference and a user id fit
/// in well under it.
const MAX_QUERY: usize = 2048;

/// A query string, percent-decoded, each parameter taken once by its endpoint.
pub struct QueryString {
    pairs: BTreeMap<String, String>,
}

impl QueryString {
    /// The query of `parts`: `400 invalid_request` when it is too long or names a
    /// parameter twice.
    pub fn of(parts: &Parts) -> Result<QueryString, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        if raw.len() > MAX_QUERY {
            return Err(ApiError::invalid(
                "query",
                format!("The query string is longer than {MAX_QUERY} bytes."),
            ));
        }
        let mut pairs = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            if pairs.insert(k.to_string(), v.to_string()).is_some() {
                return Err(ApiError::invalid(
                    k.to_string(),
                    format!("Invalid {k}: give it once."),
                ));
            }
        }
        Ok(QueryString { pairs })
    }

    /// The value of `name`, if given.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.pairs.remove(name)
    }

    /// `limit` and `cursor`.
    pub fn page(&mut self) -> Result<(Limit, Option<Cursor>), ApiError> {
        let limit = match self.take("limit") {
            Some(l) => Limit::parse(&l)?,
            None => Limit::default(),
        };
        let cursor = self.take("cursor").map(|c| Cursor::parse(&c)).transpose()?;
        Ok((limit, cursor))
    }

    /// A user id given as `name`, parsed as the `X-User-Id` header is.
    pub fn user(&mut self, name: &str) -> Result<Option<UserId>, ApiError> {
        self.take(name)
            .map(|u| {
                UserId::parse(&u).map_err(|_| {
                    ApiError::invalid(
                        name,
                        format!("Invalid {name}: a user id is 1 to 128 visible characters."),
                    )
                })
            })
            .transpose()
    }

    /// Refuses any parameter the endpoint did not take.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.pairs.keys().next() {
            Some(k) => Err(ApiError::invalid(
                k.clone(),
                format!("Unknown query parameter {k:?}: see /openapi.json for this endpoint's."),
            )),
            None => Ok(()),
        }
    }
}

/// A page as JSON: its rows under `name`, and `next_cursor` unless it is the last.
pub fn page_reply<T: Serialize>(name: &'static str, page: &Page<T>) -> Reply {
    Reply::json(StatusCode::OK, &PageBody { name, page })
}

struct PageBody<'a, T> {
    name: &'static str,
    page: &'a Page<T>,
}

impl<T: Serialize> Serialize for PageBody<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(self.name, &self.page.items)?;
        if let Some(c) = &self.page.next_cursor {
            map.serialize_entry("next_cursor", c)?;
        }
        map.end()
    }
}

/// `GET /shows/{show_id}/holds?status=&user=&limit=&cursor=` (admin).
pub async fn show_holds(state: &AppState, parts: &Parts, raw: &str) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let show = show_id(raw)?;
    let mut qs = QueryString::of(parts)?;
    let (limit, cursor) = qs.page()?;
    let status = qs
        .take("status")
        .map(|s| parse_hold_status(&s))
        .transpose()?;
    let user = qs.user("user")?;
    qs.finish()?;
    let q = HoldQuery {
        status,
        user,
        limit,
        cursor,
    };
    let client = state.client().await?;
    let page = queries::show_holds(&client, show, &q).await?;
    Ok(page_reply("holds", &page))
}

/// `GET /shows/{show_id}/bookings?status=&user=&external_ref=&limit=&cursor=` (admin).
pub async fn show_bookings(state: &AppState, parts: &Parts, raw: &str) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let show = show_id(raw)?;
    let mut qs = QueryString::of(parts)?;
    let (limit, cursor) = qs.page()?;
    let status = qs
        .take("status")
        .map(|s| parse_booking_status(&s))
        .transpose()?;
    let user = qs.user("user")?;
    let external_ref = qs.take("external_ref");
    qs.finish()?;
    let q = BookingQuery {
        status,
        user,
        external_ref,
        limit,
        cursor,
    };
    let client = state.client().await?;
    let page = queries::show_bookings(&client, show, &q).await?;
    Ok(page_reply("bookings", &page))
}

/// `GET /users/me/bookings?limit=&cursor=`: the caller's bookings, newest first.
pub async fn my_bookings(state: &AppState, parts: &Parts) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let mut qs = QueryString::of(parts)?;
    let (limit, cursor) = qs.page()?;
    qs.finish()?;
    let client = state.client().await?;
    let page = queries::user_bookings(&client, &user, limit, cursor).await?;
    Ok(page_reply("bookings", &page))
}

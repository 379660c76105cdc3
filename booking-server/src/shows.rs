//! `/shows`: create (admin), list, read one, its seat map.

use crate::encoding::{self, Coding};
use crate::fields::{self, Int};
use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, RequestKey, Scope};
use crate::seat_cache::Format;
use crate::state::AppState;
use booking_core::{
    seats, shows, AreaCode, AreaSpec, Category, Currency, Feature, Layout, NewShow, RowLabel,
    RowSpec, Section, ShowId, ShowLayout, TicketTypeName, VenueId,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::header::{HeaderValue, CONTENT_ENCODING, ETAG, IF_NONE_MATCH, VARY};
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewShowBody {
    title: String,
    starts_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "fields::present")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "fields::present")]
    prices: Option<BTreeMap<String, Int>>,
    #[serde(default, deserialize_with = "fields::present")]
    ticket_types: Option<Vec<TicketTypeBody>>,
    #[serde(default, deserialize_with = "fields::present")]
    rows: Option<Vec<RowBody>>,
    #[serde(default, deserialize_with = "fields::present")]
    areas: Option<Vec<AreaBody>>,
    #[serde(default, deserialize_with = "fields::present")]
    venue_id: Option<String>,
    #[serde(default, deserialize_with = "fields::present")]
    max_seats_per_user: Option<Int>,
    #[serde(default, deserialize_with = "fields::present")]
    sales_start: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "fields::present")]
    sales_end: Option<DateTime<Utc>>,
    #[serde(default)]
    queue: Option<QueueBody>,
}

/// A show's `queue` in `POST /shows` and `PATCH /shows/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueBody {
    admit_per_minute: Int,
    admission_minutes: Int,
    max_seats: Int,
}

impl QueueBody {
    /// The settings, each in its bounds (`400` naming `queue.<field>` otherwise).
    pub(crate) fn parse(&self) -> Result<booking_core::QueueSettings, ApiError> {
        Ok(booking_core::QueueSettings::parse(
            self.admit_per_minute.get(),
            self.admission_minutes.get(),
            self.max_seats.get(),
        )?)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketTypeBody {
    #[serde(rename = "type")]
    name: String,
    prices: BTreeMap<String, Int>,
}

/// A row of a show or venue, as the API writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowBody {
    row: String,
    seats: Int,
    #[serde(default)]
    aisles_after: Vec<Int>,
    #[serde(default, deserialize_with = "fields::present")]
    category: Option<String>,
    #[serde(default, deserialize_with = "fields::present")]
    section: Option<String>,
    #[serde(default)]
    features: BTreeMap<String, Vec<Int>>,
    #[serde(default)]
    blocked: Vec<Int>,
}

/// A standing area of a show or venue, as the API writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaBody {
    area: String,
    capacity: Int,
    #[serde(default, deserialize_with = "fields::present")]
    category: Option<String>,
}

/// serde would also take a row (or area) written as an array (`["A", 12]`): the
/// contract says an object, and one shape per field keeps clients honest.
pub fn refuse_array_rows(body: &[u8]) -> Result<(), ApiError> {
    if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(body) {
        for (field, example) in [
            (
                "rows",
                "a row is an object like {\"row\": \"A\", \"seats\": 12}",
            ),
            (
                "areas",
                "an area is an object like {\"area\": \"FLOOR\", \"capacity\": 2000}",
            ),
        ] {
            if let Some(list) = raw.get(field).and_then(|r| r.as_array()) {
                if let Some(i) = list.iter().position(|r| !r.is_object()) {
                    return Err(ApiError::invalid(
                        format!("{field}[{i}]"),
                        format!("Invalid JSON in `{field}[{i}]`: {example}."),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The rows and standing areas of a show or venue, checked.
pub fn parse_layout(rows: &[RowBody], areas: &[AreaBody]) -> Result<Layout, ApiError> {
    let ints = |v: &[Int]| v.iter().map(|a| a.get()).collect::<Vec<i64>>();
    let mut specs = Vec::with_capacity(rows.len());
    for r in rows {
        let category = r.category.as_deref().map(Category::parse).transpose()?;
        let mut features = BTreeMap::new();
        for (name, numbers) in &r.features {
            let feature = Feature::parse(name).map_err(|_| {
                ApiError::invalid(
                    "rows.features",
                    format!("Invalid rows.features: {name:?} is not a feature name (1 to 32 of a-z, 0-9, _)."),
                )
            })?;
            features.insert(feature, ints(numbers));
        }
        let section = r
            .section
            .as_deref()
            .map(|s| {
                Section::parse(s).map_err(|_| {
                    ApiError::invalid(
                        "rows.section",
                        format!(
                            "Invalid rows.section: {s:?} is not 1 to 8 capital letters or digits."
                        ),
                    )
                })
            })
            .transpose()?;
        specs.push(
            RowSpec::new(
                RowLabel::parse(&r.row)?,
                r.seats.get(),
                &ints(&r.aisles_after),
                category,
            )?
            .in_section(section)
            .with_features(features)?
            .with_blocked(&ints(&r.blocked))?,
        );
    }
    let mut parsed = Vec::with_capacity(areas.len());
    for (i, a) in areas.iter().enumerate() {
        let category = a
            .category
            .as_deref()
            .map(|c| {
                Category::parse(c).map_err(|_| {
                    ApiError::invalid(
                        format!("areas[{i}].category"),
                        format!("Invalid areas[{i}].category: {c:?} is not a category (1 to 32 of a-z, 0-9, _, -)."),
                    )
                })
            })
            .transpose()?;
        let code = AreaCode::parse_as(&a.area, &format!("areas[{i}].area"))?;
        parsed.push(
            AreaSpec::new(code, a.capacity.get(), category).map_err(|_| {
                ApiError::invalid(
                    format!("areas[{i}].capacity"),
                    format!(
                        "Invalid areas[{i}].capacity: an area has 1 to {} places.",
                        AreaSpec::MAX_CAPACITY
                    ),
                )
            })?,
        );
    }
    Ok(Layout::with_areas(specs, parsed)?)
}

fn parse_new_show(body: &[u8]) -> Result<NewShow, ApiError> {
    let b: NewShowBody = http::parse_json(body)?;
    refuse_array_rows(body)?;
    let currency = match &b.currency {
        Some(c) => Currency::parse(c)?,
        None => Currency::eur(),
    };
    let layout = match (&b.rows, &b.areas, &b.venue_id) {
        (_, Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "areas",
                "Invalid areas: a show made from a venue has the venue's areas; give `venue_id` alone.",
            ))
        }
        (rows @ Some(_), areas, None) | (rows, areas @ Some(_), None) => ShowLayout::Rows(
            parse_layout(
                rows.as_deref().unwrap_or_default(),
                areas.as_deref().unwrap_or_default(),
            )?,
        ),
        (None, None, Some(venue)) => ShowLayout::Venue(
            VenueId::parse(venue).map_err(|_| booking_core::Error::VenueNotFound)?,
        ),
        _ => {
            return Err(ApiError::invalid(
                "rows",
                "Invalid rows: give either `rows` (and `areas`) or `venue_id`, not both and not neither.",
            ))
        }
    };
    let new = NewShow::with_layout(&b.title, b.starts_at, currency, layout)?;
    let new = match (b.prices, b.ticket_types) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "ticket_types",
                "Invalid ticket_types: give either `prices` (one type, `full`) or `ticket_types`, not both.",
            ))
        }
        (None, Some(types)) => {
            let mut parsed = Vec::with_capacity(types.len());
            for t in types {
                let mut prices = BTreeMap::new();
                for (category, price) in t.prices {
                    let category = Category::parse(&category)
                        .map_err(|_| ApiError::invalid("ticket_types", format!("Invalid ticket_types: {category:?} is not a category.")))?;
                    prices.insert(category, price.get());
                }
                parsed.push((TicketTypeName::parse(&t.name)?, prices));
            }
            new.with_ticket_types(parsed)?
        }
        (prices, None) => {
            let mut parsed = BTreeMap::new();
            for (category, price) in prices.unwrap_or_default() {
                parsed.insert(Category::parse(&category)?, price.get());
            }
            new.with_prices(parsed)?
        }
    };
    let window = booking_core::SalesWindow::new(b.sales_start, b.sales_end)?;
    Ok(new
        .with_max_seats_per_user(b.max_seats_per_user.map(Int::get))?
        .with_sales_window(window)
        .with_queue(b.queue.as_ref().map(QueueBody::parse).transpose()?)?)
}

/// `POST /shows` (admin).
pub async fn create(state: &AppState, parts: &Parts, body: Bytes) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let idem = RequestKey::read(
        &parts.headers,
        Scope::Admin,
        &parts.method,
        parts.uri.path(),
        &body,
    )?
    .without_show();
    let new = parse_new_show(&body)?;
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = shows::create_show(&mut tx, &new)
        .await
        .map(|show| Reply::json(StatusCode::CREATED, &show))
        .map_err(ApiError::from);
    let reply = idem.finish(tx, outcome).await?;
    // The creator lists its new show at once (other processes within a second).
    state.show_list.forget();
    Ok(reply)
}

/// `GET /shows?from=&to=&limit=&cursor=`: shows by `starts_at`, in pages, without
/// live counts (`booking_core::queries::shows`). The plain first page (no query) is
/// reused for up to [`LIST_MAX_AGE`](crate::show_list::LIST_MAX_AGE) (see
/// [`crate::show_list`]).
pub async fn list(state: &AppState, parts: &Parts) -> Result<Reply, ApiError> {
    let mut qs = crate::queries::QueryString::of(parts)?;
    let (limit, cursor) = qs.page()?;
    let time = |name: &str, v: Option<String>| {
        v.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid(
                        name,
                        format!("Invalid {name}: an RFC 3339 time such as 2026-12-01T20:00:00Z."),
                    )
                })
        })
        .transpose()
    };
    let from = time("from", qs.take("from"))?;
    let to = time("to", qs.take("to"))?;
    qs.finish()?;
    let q = booking_core::ShowQuery {
        from,
        to,
        limit,
        cursor,
    };
    let read = || async {
        let client = state.client().await?;
        let page = booking_core::queries::shows(&client, &q).await?;
        Ok(crate::queries::page_reply("shows", &page))
    };
    if parts.uri.query().is_none() {
        state.show_list.get_or_read(read).await
    } else {
        read().await
    }
}

/// A show id from the path; one that cannot exist is simply not found.
pub fn show_id(raw: &str) -> Result<ShowId, ApiError> {
    ShowId::parse(raw).map_err(|_| booking_core::Error::ShowNotFound.into())
}

/// `GET /shows/{show_id}`.
pub async fn get(state: &AppState, raw_id: &str) -> Result<Reply, ApiError> {
    let id = show_id(raw_id)?;
    let client = state.client().await?;
    Ok(Reply::json(
        StatusCode::OK,
        &shows::get_show(&client, id).await?,
    ))
}

/// `GET /shows/{show_id}/seats[?format=compact]`, with an `ETag`: a client that sends
/// it back in `If-None-Match` gets `304 Not Modified` (no body) while no seat has
/// changed. Served from [`crate::seat_cache`], kept current from the change feed, in
/// the coding the client's `Accept-Encoding` prefers ([`crate::encoding`]), compressed
/// once per version of the map.
///
/// With the admin token, the map also gives each blocked seat's `block_reason` (the
/// full form only): read from the database for each such request (admins are few), not
/// from the cache.
pub async fn seat_map(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    let admin = state.auth.admin(&parts.headers)?;
    let id = show_id(raw_id)?;
    let mut qs = crate::queries::QueryString::of(parts)?;
    let format = Format::parse(qs.take("format").as_deref())?;
    qs.finish()?;
    if admin {
        // Read for this request alone: no tag, no `304` (as before compression).
        let client = state.client().await?;
        let map = seats::seat_map_for(&client, state.engine.settings(), id, true).await?;
        let entry = crate::seat_cache::uncached_entry(&map, format);
        return encoded(parts, entry, false).await;
    }
    let entry = state
        .seat_cache
        .get_or_read(id, format, &state.feed, &state.feed_pool)
        .await?;
    encoded(parts, entry, true).await
}

/// The map in the coding the client prefers, or (when `tagged`) `304` when the client's
/// `If-None-Match` names the tag of any representation of this version (they decode
/// to the same bytes, so the copy the client has is current). Every answer carries
/// `Vary: Accept-Encoding`, and when `tagged` the tag of the representation it
/// selected.
async fn encoded(
    parts: &Parts,
    entry: crate::seat_cache::Entry,
    tagged: bool,
) -> Result<Reply, ApiError> {
    let coding = if entry.reply.body.len() < encoding::MIN_SIZE {
        Coding::Identity
    } else {
        encoding::negotiate(&parts.headers)
    };
    // `"<tag>"` -> `"<tag><suffix>"`.
    let tag_of = |c: Coding| {
        let base = entry.etag.strip_suffix('"').unwrap_or(&entry.etag);
        format!("{base}{}\"", c.tag_suffix())
    };
    let tags = [Coding::Identity, Coding::Gzip, Coding::Br].map(tag_of);
    let etag_value = HeaderValue::from_str(&tag_of(coding)).map_err(ApiError::internal)?;
    let vary = HeaderValue::from_static("Accept-Encoding");
    let matches = parts
        .headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tags.iter().any(|t| tag.trim_start_matches("W/") == t)
        });
    if tagged && matches {
        return Ok(Reply::empty(StatusCode::NOT_MODIFIED)
            .with_header(ETAG, etag_value)
            .with_header(VARY, vary));
    }
    let mut reply = entry.reply.clone();
    if let Some(token) = coding.token() {
        reply.body = match entry.compressed.ready(coding) {
            Some(body) => body,
            // The first request for this version in this coding compresses it (a
            // stadium's map: ~100 ms), off the threads that serve requests.
            None => {
                let (compressed, body) = (entry.compressed.clone(), entry.reply.body.clone());
                tokio::task::spawn_blocking(move || compressed.get(coding, &body))
                    .await
                    .map_err(ApiError::internal)?
            }
        };
        reply = reply.with_header(CONTENT_ENCODING, HeaderValue::from_static(token));
    }
    if tagged {
        reply = reply.with_header(ETAG, etag_value);
    }
    Ok(reply.with_header(VARY, vary))
}

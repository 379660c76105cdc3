//! `GET /shows/{show_id}/report` (admin): the show's counts and revenue from one
//! snapshot (`booking_core::reports`).

use crate::http::{ApiError, Reply};
use crate::queries::QueryString;
use crate::shows::show_id;
use crate::state::AppState;
use booking_core::reports;
use hyper::http::request::Parts;
use hyper::StatusCode;

/// `GET /shows/{show_id}/report` (admin): `200` the report, `404 show_not_found`.
pub async fn show_report(state: &AppState, parts: &Parts, raw: &str) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let show = show_id(raw)?;
    // It takes no parameter: one given is a mistake worth saying.
    QueryString::of(parts)?.finish()?;
    let client = state.client().await?;
    let report = reports::show_report(&client, show).await?;
    Ok(Reply::json(StatusCode::OK, &report))
}

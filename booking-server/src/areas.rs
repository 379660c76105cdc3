//! `/shows/{show_id}/areas`: the standing areas of a show with their counts.

use crate::http::{ApiError, Reply};
use crate::shows::show_id;
use crate::state::AppState;
use booking_core::{areas, Area, ShowId};
use hyper::StatusCode;
use serde::Serialize;

#[derive(Serialize)]
struct AreaList {
    show_id: ShowId,
    areas: Vec<Area>,
}

/// `GET /shows/{show_id}/areas`: each area's capacity and what is available, held and
/// booked, read in one snapshot (as the seat map's `areas`).
pub async fn list(state: &AppState, raw_id: &str) -> Result<Reply, ApiError> {
    let id = show_id(raw_id)?;
    let client = state.client().await?;
    let areas = areas::list_areas(&client, id).await?;
    Ok(Reply::json(
        StatusCode::OK,
        &AreaList { show_id: id, areas },
    ))
}

//! Operations endpoints: liveness, readiness, metrics, the API description.

use crate::http::{ApiError, Reply};
use crate::state::AppState;
use hyper::StatusCode;
use serde_json::json;
use std::time::Duration;

/// The OpenAPI 3.1 description of every endpoint, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /healthz`: the process serves.
pub fn healthz() -> Reply {
    Reply::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers (within a second).
pub async fn readyz(state: &AppState) -> Result<Reply, ApiError> {
    let check = async {
        let client = state.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| ApiError::from(booking_core::Error::from(e)))?;
        Ok::<_, ApiError>(())
    };
    match tokio::time::timeout(Duration::from_secs(1), check).await {
        Ok(Ok(())) => Ok(Reply::json(StatusCode::OK, &json!({"status": "ready"}))),
        Ok(Err(e)) => Err(ApiError::unavailable(format!("Not ready: {}", e.message))),
        Err(_) => Err(ApiError::unavailable(
            "Not ready: the database did not answer within 1 s.",
        )),
    }
}

/// `GET /metrics`: Prometheus text format.
pub fn metrics(state: &AppState) -> Reply {
    let text = state.metrics.render(
        &state.pool_gauges(),
        state.holds.as_ref().map(|b| b.counts()),
    );
    Reply::text(StatusCode::OK, crate::metrics::CONTENT_TYPE, text)
}

/// `GET /openapi.json`.
pub fn openapi() -> Reply {
    Reply::text(StatusCode::OK, crate::http::JSON, OPENAPI)
}

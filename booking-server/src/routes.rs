//! Routing: a plain `match` over method and path segments, one function per endpoint.

use crate::http::{self, Answer, ApiError};
use crate::show_lifecycle;
use crate::state::AppState;
use crate::{
    areas, blocks, bookings, cart, events, holds, ops, queries, reports, shows, venues, web,
    webhooks,
};
use hyper::body::Incoming;
use hyper::{Method, Request};

/// A route, resolved from method and path, with its path parameters.
///
/// Path parameters are the raw segments (not percent-decoded, not yet parsed): an id
/// that cannot be one is the handler's `404`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /shows`.
    ListShows,
    /// `POST /shows` (admin).
    CreateShow,
    /// `GET /shows/{show_id}`.
    GetShow(&'a str),
    /// `GET /shows/{show_id}/seats`.
    SeatMap(&'a str),
    /// `GET /shows/{show_id}/areas`.
    ListAreas(&'a str),
    /// `GET /shows/{show_id}/blocks` (admin).
    ListBlocks(&'a str),
    /// `POST /shows/{show_id}/blocks` (admin).
    CreateBlock(&'a str),
    /// `DELETE /shows/{show_id}/blocks/{block_id}` (admin).
    DeleteBlock(&'a str, &'a str),
    /// `GET /venues`.
    ListVenues,
    /// `POST /venues` (admin).
    CreateVenue,
    /// `GET /venues/{venue_id}`.
    GetVenue(&'a str),
    /// `PUT /venues/{venue_id}` (admin).
    UpdateVenue(&'a str),
    /// `GET /shows/{show_id}/events` (Server-Sent Events).
    Events(&'a str),
    /// `POST /shows/{show_id}/holds`.
    CreateHold(&'a str),
    /// `POST /shows/{show_id}/holds/best`.
    CreateBestHold(&'a str),
    /// `GET /holds/{hold_id}`.
    GetHold(&'a str),
    /// `POST /holds/{hold_id}/confirm`.
    ConfirmHold(&'a str),
    /// `POST /holds/{hold_id}/extend`.
    ExtendHold(&'a str),
    /// `POST /holds/{hold_id}/tickets`.
    RetypeHold(&'a str),
    /// `POST /holds/{hold_id}/add` (owner or admin).
    AddToHold(&'a str),
    /// `POST /holds/{hold_id}/remove` (owner or admin).
    RemoveFromHold(&'a str),
    /// `DELETE /holds/{hold_id}`.
    ReleaseHold(&'a str),
    /// `GET /bookings/{booking_id}`.
    GetBooking(&'a str),
    /// `POST /bookings/{booking_id}/cancel` (owner or admin).
    CancelBooking(&'a str),
    /// `POST /bookings/{booking_id}/exchange` (owner or admin).
    ExchangeSeats(&'a str),
    /// `GET /users/me/bookings`.
    MyBookings,
    /// `GET /shows/{show_id}/holds` (admin).
    ListShowHolds(&'a str),
    /// `GET /shows/{show_id}/bookings` (admin).
    ListShowBookings(&'a str),
    /// `GET /shows/{show_id}/report` (admin).
    ShowReport(&'a str),
    /// `GET /`, `GET /app.js`, `GET /areas.js`, `GET /cart.js`, `GET /style.css`: the web
    /// page.
    Page(web::Asset),
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics`.
    Metrics,
    /// `GET /openapi.json`.
    OpenApi,
    /// `PATCH /shows/{show_id}` (admin).
    UpdateShow(&'a str),
    /// `POST /shows/{show_id}/cancel` (admin).
    CancelShow(&'a str),
    /// `POST /shows/{show_id}/queue`.
    JoinQueue(&'a str),
    /// `GET /shows/{show_id}/queue/me`.
    QueueMe(&'a str),
    /// `GET /shows/{show_id}/queue/me/events` (Server-Sent Events).
    QueueEvents(&'a str),
    /// `POST /webhooks` (admin).
    CreateWebhook,
    /// `GET /webhooks/{webhook_id}` (admin).
    GetWebhook(&'a str),
    /// `DELETE /webhooks/{webhook_id}` (admin).
    DeleteWebhook(&'a str),
    /// `GET /webhooks/{webhook_id}/deliveries` (admin).
    WebhookDeliveries(&'a str),
    /// `GET /auth`: the authentication mode, and who the credentials name.
    WhoAmI,
}

impl Route<'_> {
    /// The route's pattern: the `route` label of metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Route::ListShows => "GET /shows",
            Route::CreateShow => "POST /shows",
            Route::GetShow(_) => "GET /shows/{show_id}",
            Route::SeatMap(_) => "GET /shows/{show_id}/seats",
            Route::ListAreas(_) => "GET /shows/{show_id}/areas",
            Route::ListBlocks(_) => "GET /shows/{show_id}/blocks",
            Route::CreateBlock(_) => "POST /shows/{show_id}/blocks",
            Route::DeleteBlock(..) => "DELETE /shows/{show_id}/blocks/{block_id}",
            Route::ListVenues => "GET /venues",
            Route::CreateVenue => "POST /venues",
            Route::GetVenue(_) => "GET /venues/{venue_id}",
            Route::UpdateVenue(_) => "PUT /venues/{venue_id}",
            Route::Events(_) => "GET /shows/{show_id}/events",
            Route::CreateHold(_) => "POST /shows/{show_id}/holds",
            Route::CreateBestHold(_) => "POST /shows/{show_id}/holds/best",
            Route::GetHold(_) => "GET /holds/{hold_id}",
            Route::ConfirmHold(_) => "POST /holds/{hold_id}/confirm",
            Route::ExtendHold(_) => "POST /holds/{hold_id}/extend",
            Route::RetypeHold(_) => "POST /holds/{hold_id}/tickets",
            Route::AddToHold(_) => "POST /holds/{hold_id}/add",
            Route::RemoveFromHold(_) => "POST /holds/{hold_id}/remove",
            Route::ReleaseHold(_) => "DELETE /holds/{hold_id}",
            Route::GetBooking(_) => "GET /bookings/{booking_id}",
            Route::CancelBooking(_) => "POST /bookings/{booking_id}/cancel",
            Route::ExchangeSeats(_) => "POST /bookings/{booking_id}/exchange",
            Route::MyBookings => "GET /users/me/bookings",
            Route::ListShowHolds(_) => "GET /shows/{show_id}/holds",
            Route::ListShowBookings(_) => "GET /shows/{show_id}/bookings",
            Route::ShowReport(_) => "GET /shows/{show_id}/report",
            Route::Page(web::Asset::Index) => "GET /",
            Route::Page(_) => "GET /{asset}",
            Route::Healthz => "GET /healthz",
            Route::Readyz => "GET /readyz",
            Route::Metrics => "GET /metrics",
            Route::OpenApi => "GET /openapi.json",
            Route::UpdateShow(_) => "PATCH /shows/{show_id}",
            Route::CancelShow(_) => "POST /shows/{show_id}/cancel",
            Route::JoinQueue(_) => "POST /shows/{show_id}/queue",
            Route::QueueMe(_) => "GET /shows/{show_id}/queue/me",
            Route::QueueEvents(_) => "GET /shows/{show_id}/queue/me/events",
            Route::CreateWebhook => "POST /webhooks",
            Route::GetWebhook(_) => "GET /webhooks/{webhook_id}",
            Route::DeleteWebhook(_) => "DELETE /webhooks/{webhook_id}",
            Route::WebhookDeliveries(_) => "GET /webhooks/{webhook_id}/deliveries",
            Route::WhoAmI => "GET /auth",
        }
    }

    fn has_body(&self) -> bool {
        matches!(
            self,
            Route::CreateShow
                | Route::CreateBlock(_)
                | Route::CreateVenue
                | Route::UpdateVenue(_)
                | Route::CreateHold(_)
                | Route::CreateBestHold(_)
                | Route::ConfirmHold(_)
                | Route::ExtendHold(_)
                | Route::RetypeHold(_)
                | Route::AddToHold(_)
                | Route::RemoveFromHold(_)
                | Route::CancelBooking(_)
                | Route::ExchangeSeats(_)
                | Route::UpdateShow(_)
                | Route::CreateWebhook
        )
    }
}

/// Resolves a request line. Unknown paths: 404; known paths, other methods: 405 with
/// the methods they answer. `HEAD` is not served.
pub fn resolve<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, ApiError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let segments: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let (get, post, delete, put) = (
        method == Method::GET,
        method == Method::POST,
        method == Method::DELETE,
        method == Method::PUT,
    );
    let allow = |a: &'static str| Err(ApiError::method_not_allowed(a));
    // An empty segment (`/shows/`, `/holds//confirm`) names nothing: no id is empty.
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ApiError::not_found());
    }
    match segments.as_slice() {
        ["shows"] if get => Ok(Route::ListShows),
        ["shows"] if post => Ok(Route::CreateShow),
        ["shows"] => allow("GET, POST"),
        ["shows", id] if get => Ok(Route::GetShow(id)),
        ["shows", id] if method == Method::PATCH => Ok(Route::UpdateShow(id)),
        ["shows", _] => allow("GET, PATCH"),
        ["shows", id, "cancel"] if post => Ok(Route::CancelShow(id)),
        ["shows", _, "cancel"] => allow("POST"),
        ["shows", id, "queue"] if post => Ok(Route::JoinQueue(id)),
        ["shows", _, "queue"] => allow("POST"),
        ["shows", id, "queue", "me"] if get => Ok(Route::QueueMe(id)),
        ["shows", _, "queue", "me"] => allow("GET"),
        ["shows", id, "queue", "me", "events"] if get => Ok(Route::QueueEvents(id)),
        ["shows", _, "queue", "me", "events"] => allow("GET"),
        ["shows", id, "seats"] if get => Ok(Route::SeatMap(id)),
        ["shows", _, "seats"] => allow("GET"),
        ["shows", id, "areas"] if get => Ok(Route::ListAreas(id)),
        ["shows", _, "areas"] => allow("GET"),
        ["shows", id, "blocks"] if get => Ok(Route::ListBlocks(id)),
        ["shows", id, "blocks"] if post => Ok(Route::CreateBlock(id)),
        ["shows", _, "blocks"] => allow("GET, POST"),
        ["shows", id, "blocks", block] if delete => Ok(Route::DeleteBlock(id, block)),
        ["shows", _, "blocks", _] => allow("DELETE"),
        ["venues"] if get => Ok(Route::ListVenues),
        ["venues"] if post => Ok(Route::CreateVenue),
        ["venues"] => allow("GET, POST"),
        ["venues", id] if get => Ok(Route::GetVenue(id)),
        ["venues", id] if put => Ok(Route::UpdateVenue(id)),
        ["venues", _] => allow("GET, PUT"),
        ["shows", id, "events"] if get => Ok(Route::Events(id)),
        ["shows", _, "events"] => allow("GET"),
        ["shows", id, "holds"] if post => Ok(Route::CreateHold(id)),
        ["shows", id, "holds"] if get => Ok(Route::ListShowHolds(id)),
        ["shows", _, "holds"] => allow("GET, POST"),
        ["shows", id, "bookings"] if get => Ok(Route::ListShowBookings(id)),
        ["shows", _, "bookings"] => allow("GET"),
        ["shows", id, "report"] if get => Ok(Route::ShowReport(id)),
        ["shows", _, "report"] => allow("GET"),
        ["shows", id, "holds", "best"] if post => Ok(Route::CreateBestHold(id)),
        ["shows", _, "holds", "best"] => allow("POST"),
        ["holds", id] if get => Ok(Route::GetHold(id)),
        ["holds", id] if delete => Ok(Route::ReleaseHold(id)),
        ["holds", _] => allow("GET, DELETE"),
        ["holds", id, "confirm"] if post => Ok(Route::ConfirmHold(id)),
        ["holds", _, "confirm"] => allow("POST"),
        ["holds", id, "extend"] if post => Ok(Route::ExtendHold(id)),
        ["holds", _, "extend"] => allow("POST"),
        ["holds", id, "tickets"] if post => Ok(Route::RetypeHold(id)),
        ["holds", _, "tickets"] => allow("POST"),
        ["holds", id, "add"] if post => Ok(Route::AddToHold(id)),
        ["holds", _, "add"] => allow("POST"),
        ["holds", id, "remove"] if post => Ok(Route::RemoveFromHold(id)),
        ["holds", _, "remove"] => allow("POST"),
        ["bookings", id] if get => Ok(Route::GetBooking(id)),
        ["bookings", _] => allow("GET"),
        ["bookings", id, "cancel"] if post => Ok(Route::CancelBooking(id)),
        ["bookings", _, "cancel"] => allow("POST"),
        ["bookings", id, "exchange"] if post => Ok(Route::ExchangeSeats(id)),
        ["bookings", _, "exchange"] => allow("POST"),
        ["users", "me", "bookings"] if get => Ok(Route::MyBookings),
        ["users", "me", "bookings"] => allow("GET"),
        [] if get => Ok(Route::Page(web::Asset::Index)),
        ["app.js"] if get => Ok(Route::Page(web::Asset::Script)),
        ["areas.js"] if get => Ok(Route::Page(web::Asset::Areas)),
        ["cart.js"] if get => Ok(Route::Page(web::Asset::Cart)),
        ["show.js"] if get => Ok(Route::Page(web::Asset::Show)),
        ["bigmap.js"] if get => Ok(Route::Page(web::Asset::BigMap)),
        ["queue.js"] if get => Ok(Route::Page(web::Asset::Queue)),
        ["style.css"] if get => Ok(Route::Page(web::Asset::Style)),
        ["identity.js"] if get => Ok(Route::Page(web::Asset::Identity)),
        []
        | ["app.js"]
        | ["areas.js"]
        | ["cart.js"]
        | ["show.js"]
        | ["bigmap.js"]
        | ["identity.js"]
        | ["queue.js"]
        | ["style.css"] => allow("GET"),
        ["healthz"] if get => Ok(Route::Healthz),
        ["readyz"] if get => Ok(Route::Readyz),
        ["metrics"] if get => Ok(Route::Metrics),
        ["openapi.json"] if get => Ok(Route::OpenApi),
        ["healthz"] | ["readyz"] | ["metrics"] | ["openapi.json"] => allow("GET"),
        ["webhooks"] if post => Ok(Route::CreateWebhook),
        ["webhooks"] => allow("POST"),
        ["webhooks", id] if get => Ok(Route::GetWebhook(id)),
        ["webhooks", id] if delete => Ok(Route::DeleteWebhook(id)),
        ["webhooks", _] => allow("GET, DELETE"),
        ["webhooks", id, "deliveries"] if get => Ok(Route::WebhookDeliveries(id)),
        ["webhooks", _, "deliveries"] => allow("GET"),
        ["auth"] if get => Ok(Route::WhoAmI),
        ["auth"] => allow("GET"),
        _ => Err(ApiError::not_found()),
    }
}

/// Runs the endpoint of `route`. The body is read (bounded) only by routes that take one.
pub async fn dispatch(
    state: &AppState,
    route: Route<'_>,
    req: Request<Incoming>,
) -> Result<Answer, ApiError> {
    let (parts, body) = req.into_parts();
    let body = if route.has_body() {
        http::read_body(&parts.headers, body).await?
    } else {
        bytes::Bytes::new()
    };
    let reply = match route {
        Route::Events(id) => return events::stream(state, &parts, id).await,
        Route::QueueEvents(id) => return crate::queue::events(state, &parts, id).await,
        Route::ListShows => shows::list(state, &parts).await,
        Route::CreateShow => shows::create(state, &parts, body).await,
        Route::GetShow(id) => shows::get(state, id).await,
        Route::SeatMap(id) => shows::seat_map(state, &parts, id).await,
        Route::ListAreas(id) => areas::list(state, id).await,
        Route::ListBlocks(id) => blocks::list(state, &parts, id).await,
        Route::CreateBlock(id) => blocks::create(state, &parts, body, id).await,
        Route::DeleteBlock(id, block) => blocks::delete(state, &parts, id, block).await,
        Route::ListVenues => venues::list(state, &parts).await,
        Route::CreateVenue => venues::create(state, &parts, body).await,
        Route::GetVenue(id) => venues::get(state, id).await,
        Route::UpdateVenue(id) => venues::update(state, &parts, body, id).await,
        Route::CreateHold(id) => holds::create(state, &parts, body, id).await,
        Route::CreateBestHold(id) => holds::create_best(state, &parts, body, id).await,
        Route::GetHold(id) => holds::get(state, &parts, id).await,
        Route::ConfirmHold(id) => holds::confirm(state, &parts, body, id).await,
        Route::ExtendHold(id) => holds::extend(state, &parts, body, id).await,
        Route::RetypeHold(id) => holds::retype(state, &parts, body, id).await,
        Route::AddToHold(id) => cart::add(state, &parts, body, id).await,
        Route::RemoveFromHold(id) => cart::remove(state, &parts, body, id).await,
        Route::ReleaseHold(id) => holds::release(state, &parts, id).await,
        Route::GetBooking(id) => bookings::get(state, &parts, id).await,
        Route::CancelBooking(id) => bookings::cancel(state, &parts, body, id).await,
        Route::ExchangeSeats(id) => bookings::exchange(state, &parts, body, id).await,
        Route::MyBookings => queries::my_bookings(state, &parts).await,
        Route::ListShowHolds(id) => queries::show_holds(state, &parts, id).await,
        Route::ListShowBookings(id) => queries::show_bookings(state, &parts, id).await,
        Route::ShowReport(id) => reports::show_report(state, &parts, id).await,
        Route::Page(asset) => Ok(web::serve(asset)),
        Route::Healthz => Ok(ops::healthz()),
        Route::Readyz => ops::readyz(state).await,
        Route::Metrics => Ok(ops::metrics(state)),
        Route::OpenApi => Ok(ops::openapi()),
        Route::UpdateShow(id) => show_lifecycle::update(state, &parts, body, id).await,
        Route::CancelShow(id) => show_lifecycle::cancel(state, &parts, id).await,
        Route::JoinQueue(id) => crate::queue::join(state, &parts, id).await,
        Route::QueueMe(id) => crate::queue::me(state, &parts, id).await,
        Route::CreateWebhook => webhooks::create(state, &parts, body).await,
        Route::GetWebhook(id) => webhooks::get(state, &parts, id).await,
        Route::DeleteWebhook(id) => webhooks::delete(state, &parts, id).await,
        Route::WebhookDeliveries(id) => webhooks::deliveries(state, &parts, id).await,
        Route::WhoAmI => state
            .auth
            .who_am_i(&parts.headers)
            .map(|who| http::Reply::json(hyper::StatusCode::OK, &who)),
    };
    if matches!(&reply, Err(e) if e.code == "not_on_sale") {
        state.metrics.not_on_sale.inc();
    }
    reply.map(Answer::Reply)
}

/// Every path of the OpenAPI document, for the test that keeps it complete.
pub const DOCUMENTED: &[(&str, &str)] = &[
    ("GET", "/shows"),
    ("POST", "/shows"),
    ("GET", "/shows/{show_id}"),
    ("GET", "/shows/{show_id}/seats"),
    ("GET", "/shows/{show_id}/areas"),
    ("GET", "/shows/{show_id}/blocks"),
    ("POST", "/shows/{show_id}/blocks"),
    ("DELETE", "/shows/{show_id}/blocks/{block_id}"),
    ("GET", "/venues"),
    ("POST", "/venues"),
    ("GET", "/venues/{venue_id}"),
    ("PUT", "/venues/{venue_id}"),
    ("GET", "/shows/{show_id}/events"),
    ("POST", "/shows/{show_id}/holds"),
    ("POST", "/shows/{show_id}/holds/best"),
    ("GET", "/holds/{hold_id}"),
    ("DELETE", "/holds/{hold_id}"),
    ("POST", "/holds/{hold_id}/confirm"),
    ("POST", "/holds/{hold_id}/extend"),
    ("POST", "/holds/{hold_id}/tickets"),
    ("POST", "/holds/{hold_id}/add"),
    ("POST", "/holds/{hold_id}/remove"),
    ("GET", "/bookings/{booking_id}"),
    ("POST", "/bookings/{booking_id}/cancel"),
    ("POST", "/bookings/{booking_id}/exchange"),
    ("GET", "/users/me/bookings"),
    ("GET", "/shows/{show_id}/holds"),
    ("GET", "/shows/{show_id}/bookings"),
    ("GET", "/shows/{show_id}/report"),
    ("GET", "/"),
    ("GET", "/app.js"),
    ("GET", "/areas.js"),
    ("GET", "/cart.js"),
    ("GET", "/show.js"),
    ("GET", "/bigmap.js"),
    ("GET", "/queue.js"),
    ("GET", "/style.css"),
    ("GET", "/identity.js"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("PATCH", "/shows/{show_id}"),
    ("POST", "/shows/{show_id}/cancel"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks/{webhook_id}"),
    ("DELETE", "/webhooks/{webhook_id}"),
    ("GET", "/webhooks/{webhook_id}/deliveries"),
    ("GET", "/auth"),
    ("POST", "/shows/{show_id}/queue"),
    ("GET", "/shows/{show_id}/queue/me"),
    ("GET", "/shows/{show_id}/queue/me/events"),
];

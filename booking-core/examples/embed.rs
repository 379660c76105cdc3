//! A tiny service that embeds booking-core: connect, migrate, create a show, hold two
//! seats, and confirm them inside its own transaction next to a payment row of its own.
//!
//!     DATABASE_URL=postgres://... cargo run -p booking-core --example embed

use booking_core::{bookings, database, holds, shows, sweeper, CancellationToken, Engine};
use booking_core::{Category, PoolOptions};
use booking_core::{
    Currency, ExternalRef, HoldRequest, NewShow, Reference, RowLabel, RowSpec, SeatSelection,
    Settings, UserId,
};
use bookings::ConfirmRequest;
use std::collections::BTreeMap;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL (scripts/pg.sh url prints one)")?;
    let config = database::parse_url(&url)?;
    let pool = database::pool(config, &PoolOptions::default())?;
    database::migrate_pool(&pool).await?;
    // One engine for the process: its settings, and what its operations share in
    // memory (the sweeper hears of new holds through it).
    let engine = Engine::new(Settings::default());

    // The sweeper runs beside the service and stops with it.
    let stop = CancellationToken::new();
    let sweeper = tokio::spawn(sweeper::run(
        engine.clone(),
        pool.clone(),
        sweeper::SweeperOptions::default(),
        stop.clone(),
    ));

    let mut client = database::client(&pool).await?;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS payments (hold_id text PRIMARY KEY, amount bigint NOT NULL)")
        .await?;

    let rows = vec![
        RowSpec::new(RowLabel::parse("A")?, 12, &[4, 8], None)?,
        RowSpec::new(
            RowLabel::parse("B")?,
            12,
            &[4, 8],
            Some(Category::parse("premium")?),
        )?,
    ];
    let prices = BTreeMap::from([
        (Category::standard(), 1200),
        (Category::parse("premium")?, 1800),
    ]);
    let starts = chrono::Utc::now() + chrono::Duration::days(7);
    let new = NewShow::new("Inception", starts, Currency::eur(), prices, rows)?;
    let show = shows::create_show(&mut client, &new).await?;
    println!("created show {} with {} seats", show.id, show.seats_total);

    let user = UserId::parse("u-17")?;
    let hold = holds::hold(
        &mut client,
        &engine,
        &HoldRequest {
            show: show.id,
            user: user.clone(),
            seats: SeatSelection::parse(["B6", "B7"], engine.settings().max_seats_per_hold)?,
            ttl: None,
            if_versions: vec![],
            ticket_types: vec![],
            areas: vec![],
            reference: Reference::default(),
        },
    )
    .await?;
    println!(
        "held {} until {} (total {} {})",
        hold.seats
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        hold.expires_at,
        hold.total,
        hold.currency
    );

    // The booking and the payment commit together, or neither does. The booking carries
    // the shop's order number, unique among the show's bookings.
    let mut tx = client.transaction().await?;
    let order = ConfirmRequest {
        late: false,
        reference: Reference {
            external_ref: Some(ExternalRef::parse("order-1001")?),
            metadata: None,
        },
    };
    let confirmed = bookings::confirm_with(&mut tx, &engine, &user, hold.hold_id, &order).await?;
    tx.execute(
        "INSERT INTO payments (hold_id, amount) VALUES ($1, $2)",
        &[&hold.hold_id.to_string(), &confirmed.booking.total],
    )
    .await?;
    tx.commit().await?;
    println!(
        "booked {} as {}",
        confirmed.booking.seats.len(),
        confirmed.booking.booking_id
    );

    let map = booking_core::seats::seat_map(&client, show.id).await?;
    let booked = map
        .seats
        .iter()
        .filter(|s| s.state == booking_core::SeatState::Booked)
        .count();
    assert_eq!(booked, 2);

    stop.cancel();
    sweeper.await?;
    Ok(())
}

//! The demo show, so that a newcomer has something to book.

use booking_core::deadpool_postgres::Pool;
use booking_core::{shows, Category, Currency, NewShow, RowLabel, RowSpec};
use chrono::{Duration, TimeZone, Utc};
use std::collections::BTreeMap;

/// Any fixed number: the lock that keeps two servers starting at once from both
/// creating the demo show.
const DEMO_LOCK: i64 = 0x626f_6f6b_696e_6702;

/// "Inception": 10 rows (A front .. J back) of 12 seats, aisles after seats 3 and 9,
/// rows E to G premium.
pub fn layout() -> NewShow {
    let premium = Category::parse("premium").expect("valid category");
    let rows = "ABCDEFGHIJ"
        .chars()
        .map(|r| {
            let category = matches!(r, 'E' | 'F' | 'G').then(|| premium.clone());
            RowSpec::new(
                RowLabel::parse(&r.to_string()).expect("row"),
                12,
                &[3, 9],
                category,
            )
            .expect("valid row")
        })
        .collect();
    let prices = BTreeMap::from([(Category::standard(), 1200), (premium, 1800)]);
    let next_week = Utc::now().date_naive() + Duration::days(7);
    let starts_at = Utc
        .from_local_datetime(&next_week.and_hms_opt(20, 0, 0).expect("valid time"))
        .single()
        .unwrap_or_else(Utc::now);
    NewShow::new("Inception", starts_at, Currency::eur(), prices, rows).expect("valid demo show")
}

/// Creates the demo show when the database has no show at all.
pub async fn ensure(pool: &Pool) -> Result<(), booking_core::Error> {
    let mut client = booking_core::database::client(pool).await?;
    let mut tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DEMO_LOCK])
        .await?;
    let shows: i64 = tx
        .query_one("SELECT count(*) FROM shows", &[])
        .await?
        .get(0);
    if shows == 0 {
        let show = shows::create_show(&mut tx, &layout()).await?;
        tracing::info!(show = %show.id, seats = show.seats_total, "created the demo show");
    }
    tx.commit().await?;
    Ok(())
}

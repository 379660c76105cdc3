//! The demo show, so that a newcomer has something to book.

use booking_core::deadpool_postgres::Pool;
use booking_core::{
    shows, AreaCode, AreaSpec, Category, Currency, Feature, Layout, NewShow, RowLabel, RowSpec,
    ShowLayout, TicketTypeName,
};
use chrono::{Duration, TimeZone, Utc};
use std::collections::BTreeMap;

/// Any fixed number: the lock that keeps two servers starting at once from both
/// creating the demo show.
const DEMO_LOCK: i64 = 0x626f_6f6b_696e_6702;

/// "Inception": 10 rows (A front .. J back) of 12 seats, aisles after seats 3 and 9,
/// rows E to G premium. Wheelchair spaces A1 and A12 with companion seats A2 and A11,
/// a restricted view from J1 and J12, J6 and J7 blocked (the tech desk). Behind the
/// rows a standing area `FLOOR` of 200 places, category `standing`. Adult and child
/// tickets, adult the default (adult 1200 standard, 1800 premium, 1500 standing; child
/// 800, 1200, 1000); at most 8 seats per person, places counted as seats.
pub fn layout() -> NewShow {
    let premium = Category::parse("premium").expect("valid category");
    let feature = |name: &str| Feature::parse(name).expect("valid feature");
    let rows = "ABCDEFGHIJ"
        .chars()
        .map(|r| {
            let category = matches!(r, 'E' | 'F' | 'G').then(|| premium.clone());
            let row = RowSpec::new(
                RowLabel::parse(&r.to_string()).expect("row"),
                12,
                &[3, 9],
                category,
            )
            .expect("valid row");
            match r {
                'A' => row
                    .with_features(BTreeMap::from([
                        (feature("wheelchair"), vec![1, 12]),
                        (feature("companion"), vec![2, 11]),
                    ]))
                    .expect("valid features"),
                'J' => row
                    .with_features(BTreeMap::from([(feature("restricted_view"), vec![1, 12])]))
                    .expect("valid features")
                    .with_blocked(&[6, 7])
                    .expect("valid blocked seats"),
                _ => row,
            }
        })
        .collect();
    let standing = Category::parse("standing").expect("valid category");
    let floor = AreaSpec::new(
        AreaCode::parse("FLOOR").expect("valid area code"),
        200,
        Some(standing.clone()),
    )
    .expect("valid area");
    let layout = Layout::with_areas(rows, vec![floor]).expect("valid layout");
    let ticket_type = |name: &str, standard: i64, dearer: i64, standing_price: i64| {
        (
            TicketTypeName::parse(name).expect("valid ticket type"),
            BTreeMap::from([
                (Category::standard(), standard),
                (premium.clone(), dearer),
                (standing.clone(), standing_price),
            ]),
        )
    };
    let types = vec![
        ticket_type("adult", 1200, 1800, 1500),
        ticket_type("child", 800, 1200, 1000),
    ];
    let next_week = Utc::now().date_naive() + Duration::days(7);
    let starts_at = Utc
        .from_local_datetime(&next_week.and_hms_opt(20, 0, 0).expect("valid time"))
        .single()
        .unwrap_or_else(Utc::now);
    NewShow::with_layout(
        "Inception",
        starts_at,
        Currency::eur(),
        ShowLayout::Rows(layout),
    )
    .and_then(|show| show.with_ticket_types(types))
    .and_then(|show| show.with_max_seats_per_user(Some(8)))
    .expect("valid demo show")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_show_has_its_rows_and_a_standing_floor() {
        let show = layout();
        let ShowLayout::Rows(layout) = show.layout() else {
            panic!("the demo show has its own rows");
        };
        assert_eq!(layout.seat_count(), 120);
        let [floor] = layout.areas() else {
            panic!("one standing area");
        };
        assert_eq!(floor.area.as_str(), "FLOOR");
        assert_eq!(floor.capacity, 200);
        assert_eq!(floor.category.as_str(), "standing");
        assert_eq!(show.max_seats_per_user(), Some(8));
    }
}

//! The database audit of a race test: every invariant of DESIGN.md that the tables can
//! show, checked after the dust settles (the same checks as booking-core's test audit,
//! which a test of another crate cannot call).

use booking_core::tokio_postgres::{self, NoTls};
use std::collections::HashMap;

/// A connection of its own to `database_url`.
pub async fn connect(database_url: &str) -> tokio_postgres::Client {
    let config = booking_core::database::parse_url(database_url).unwrap();
    let (client, conn) = config.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Checks the tables of `database_url`; panics listing what is wrong.
pub async fn audit(database_url: &str) {
    let client = connect(database_url).await;
    let checks: &[(&str, &str)] = &[
        (
            "a seat is in two unexpired active holds",
            "SELECT hs.seat_id::text FROM hold_seats hs
               JOIN holds h ON h.show_id = hs.show_id AND h.id = hs.hold_id
              WHERE h.status = 'active' AND h.expires_at > now()
              GROUP BY hs.show_id, hs.seat_id HAVING count(*) > 1",
        ),
        (
            "a seat is live in two bookings",
            "SELECT bs.seat_id::text FROM booking_seats bs WHERE bs.live
              GROUP BY bs.show_id, bs.seat_id HAVING count(*) > 1",
        ),
        (
            "a seat points at a hold that is not active",
            "SELECT s.label FROM seats s JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
              WHERE h.status <> 'active'",
        ),
        (
            "a seat points at a booking that is not confirmed",
            "SELECT s.label FROM seats s JOIN bookings b ON b.show_id = s.show_id AND b.id = s.booking_id
              WHERE b.status <> 'confirmed'",
        ),
        (
            "an unexpired active hold is missing some of its seats (not all-or-none)",
            "SELECT h.id::text FROM holds h JOIN hold_seats hs ON hs.show_id = h.show_id AND hs.hold_id = h.id
               JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
              WHERE h.status = 'active' AND h.expires_at > now()
                AND s.hold_id IS DISTINCT FROM h.id",
        ),
        (
            "a seat points at a hold that does not list it",
            "SELECT s.label FROM seats s
              WHERE s.hold_id IS NOT NULL AND NOT EXISTS
                    (SELECT 1 FROM hold_seats hs WHERE hs.show_id = s.show_id
                        AND hs.hold_id = s.hold_id AND hs.seat_id = s.id)",
        ),
        (
            "a confirmed booking is missing some of its seats, or a seat its booking's row",
            "SELECT b.id::text FROM bookings b JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
               JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
              WHERE b.status = 'confirmed' AND bs.live AND s.booking_id IS DISTINCT FROM b.id
             UNION ALL
             SELECT s.label FROM seats s
              WHERE s.booking_id IS NOT NULL AND NOT EXISTS
                    (SELECT 1 FROM booking_seats bs WHERE bs.show_id = s.show_id
                        AND bs.booking_id = s.booking_id AND bs.seat_id = s.id AND bs.live)",
        ),
        (
            "a confirmed booking has no live seat",
            "SELECT b.id::text FROM bookings b WHERE b.status = 'confirmed' AND NOT EXISTS
               (SELECT 1 FROM booking_seats bs
                 WHERE bs.show_id = b.show_id AND bs.booking_id = b.id AND bs.live)",
        ),
        (
            "a cancelled booking still has live seats",
            "SELECT b.id::text FROM bookings b JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id
              WHERE b.status = 'cancelled' AND bs.live",
        ),
        (
            "a confirmed hold has no booking, or a booking's hold is not confirmed",
            "SELECT h.id::text FROM holds h LEFT JOIN bookings b ON b.show_id = h.show_id AND b.hold_id = h.id
              WHERE (h.status = 'confirmed') <> (b.id IS NOT NULL)",
        ),
        (
            "a hold or booking has no seats",
            "SELECT h.id::text FROM holds h WHERE NOT EXISTS
               (SELECT 1 FROM hold_seats hs WHERE hs.show_id = h.show_id AND hs.hold_id = h.id)
             UNION ALL
             SELECT b.id::text FROM bookings b WHERE NOT EXISTS
               (SELECT 1 FROM booking_seats bs WHERE bs.show_id = b.show_id AND bs.booking_id = b.id)",
        ),
        (
            "a hold's total is not the sum of its tickets' prices",
            "SELECT h.id::text FROM holds h
              WHERE h.total <> (SELECT coalesce(sum(hs.price), 0) FROM hold_seats hs
                                 WHERE hs.show_id = h.show_id AND hs.hold_id = h.id)",
        ),
        (
            "a booking's owner differs from its hold's, or its total from its tickets'",
            "SELECT b.id::text FROM bookings b JOIN holds h ON h.show_id = b.show_id AND h.id = b.hold_id
              WHERE b.user_id <> h.user_id
                 OR b.total <> (SELECT coalesce(sum(bs.price), 0) FROM booking_seats bs
                                 WHERE bs.show_id = b.show_id AND bs.booking_id = b.id
                                   AND (bs.live OR (b.status = 'cancelled'
                                                    AND bs.ended_at = b.cancelled_at)))",
        ),
        (
            "a standing area has other than `capacity` places",
            "SELECT a.area FROM areas a
              WHERE a.capacity <> (SELECT count(*) FROM seats s
                                    WHERE s.show_id = a.show_id AND s.area = a.area)",
        ),
        (
            "a user has more seats of a show than its max_seats_per_user",
            "SELECT t.user_id FROM (
                 SELECT h.show_id, h.user_id, count(*) AS n FROM holds h
                   JOIN hold_seats hs ON hs.show_id = h.show_id AND hs.hold_id = h.id
                  WHERE h.status = 'active' AND h.expires_at > now() GROUP BY 1, 2
                 UNION ALL
                 SELECT b.show_id, b.user_id, count(*) FROM bookings b
                   JOIN booking_seats bs ON bs.show_id = b.show_id AND bs.booking_id = b.id AND bs.live
                  WHERE b.status = 'confirmed' GROUP BY 1, 2) t
               JOIN shows sh ON sh.id = t.show_id
              GROUP BY t.show_id, t.user_id, sh.max_seats_per_user
             HAVING sum(t.n) > sh.max_seats_per_user",
        ),
    ];
    let mut problems = feed_problems(&client).await;
    for (what, sql) in checks {
        let rows = client.query(*sql, &[]).await.expect(what);
        if !rows.is_empty() {
            let ids: Vec<String> = rows.iter().take(5).map(|r| r.get(0)).collect();
            problems.push(format!("{what}: {} rows, e.g. {ids:?}", rows.len()));
        }
    }
    assert!(
        problems.is_empty(),
        "audit failed:\n{}",
        problems.join("\n")
    );
}

/// The feed, folded seat by seat in commit order, must end where the seats are: each
/// seat's last event has its state and version (a seat no event names is available).
/// Both reads in one snapshot: a sweeper that expires a lapsed hold between them
/// would otherwise show a seat freed without its event (seen on Citus, where it comes
/// later). A show's events in its order, `(epoch, xid, id)` (0 epochs on PostgreSQL).
async fn feed_problems(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .unwrap();
    let events = client
        .query(
            "SELECT show_id, e.seat->>'label', e.seat->>'state', e.seat->>'version'
               FROM seat_events, jsonb_array_elements(seats) AS e(seat)
              ORDER BY epoch, xid, id",
            &[],
        )
        .await
        .unwrap();
    let mut folded: HashMap<(i64, String), (String, String)> = HashMap::new();
    for r in &events {
        folded.insert((r.get(0), r.get(1)), (r.get(2), r.get(3)));
    }
    // Lapsed holds count as held until swept (the sweeper's `expire` event says so).
    let seats = client
        .query(
            "SELECT show_id, label,
                    CASE WHEN booking_id IS NOT NULL THEN 'booked'
                         WHEN block_id IS NOT NULL THEN 'blocked'
                         WHEN hold_id IS NOT NULL THEN 'held' ELSE 'available' END,
                    xmin::text
               FROM seats",
            &[],
        )
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    let mut problems = Vec::new();
    for r in &seats {
        let key: (i64, String) = (r.get(0), r.get(1));
        let (state, version): (String, String) = (r.get(2), r.get(3));
        match folded.get(&key) {
            Some((s, v)) if *s == state && *v == version => {}
            None if state == "available" => {}
            other => problems.push(format!(
                "the feed says {other:?} of seat {key:?}, the table says ({state}, {version})"
            )),
        }
        if problems.len() > 5 {
            break;
        }
    }
    problems
}

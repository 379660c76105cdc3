//! Test support: a fresh database per test on the server named by DATABASE_URL, and an
//! audit of the invariants that every test runs at its end.

use booking_core::deadpool_postgres::{Client, Pool};
use booking_core::tokio_postgres::{self, NoTls};
use booking_core::{database, shows, HoldId, NewShow, PoolOptions, RowLabel, RowSpec, Show};
use booking_core::{Category, Currency, Engine, HoldRequest, SeatSelection, Settings, UserId};
use booking_core::{Error, Hold, SeatLabel};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct TestDb {
    pub pool: Pool,
    pub config: tokio_postgres::Config,
    /// A Citus formation's database, distributed by the migrations.
    pub distributed: bool,
}

fn server_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must name a PostgreSQL server the tests may create databases on: \
         run scripts/test.sh, or `export DATABASE_URL=$(scripts/pg.sh start)`",
    )
}

impl TestDb {
    /// A new, migrated database of its own, with a pool of 16.
    pub async fn new() -> TestDb {
        TestDb::with_pool(16).await
    }

    pub async fn with_pool(size: usize) -> TestDb {
        TestDb::on_server(&server_url(), size).await
    }

    /// A new, migrated database on the server at `url` (not DATABASE_URL's).
    pub async fn on_server(url: &str, size: usize) -> TestDb {
        let admin = database::parse_url(url).expect("the server's URL parses");
        let (client, conn) = admin.connect(NoTls).await.expect("connect to DATABASE_URL");
        tokio::spawn(conn);
        let name = format!("booking_test_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let mut config = admin.clone();
        config.dbname(&name);
        if crate::formation::is_coordinator(&client).await {
            crate::formation::prepare(&admin, &client, &name).await;
        }
        let pool = database::pool(
            config.clone(),
            &PoolOptions {
                max_size: size,
                // Tests wait for connections rather than measure how long it takes.
                wait: Duration::from_secs(60),
                connect: Duration::from_secs(10),
                lock_timeout: Duration::from_secs(30),
            },
        )
        .expect("pool");
        database::migrate_pool(&pool).await.expect("migrate");
        let distributed = database::is_distributed(&database::client(&pool).await.unwrap())
            .await
            .expect("read whether distributed");
        TestDb {
            pool,
            config,
            distributed,
        }
    }

    /// The default settings, for this database (`distributed` on a formation).
    pub fn settings(&self) -> Settings {
        Settings {
            distributed: self.distributed,
            ..Settings::default()
        }
    }

    /// An engine with [`TestDb::settings`]: what `Engine::default()` is on plain
    /// PostgreSQL.
    pub fn engine(&self) -> Engine {
        Engine::new(self.settings())
    }

    pub async fn client(&self) -> Client {
        database::client(&self.pool).await.expect("pooled client")
    }

    /// The single bigint a counting query returns.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .expect(sql)
            .get(0)
    }

    /// Checks concurrent hold attempts on `show` against each other and the tables,
    /// and returns the holds made: each has exactly the seats it asked for, no seat
    /// is in two of them, every refusal names only seats it asked for that some hold
    /// has now (nothing was released meanwhile), any other error fails the test, and
    /// the seats of `show` point at exactly the holds made.
    pub async fn check_hold_outcomes(
        &self,
        show: &Show,
        outcomes: Vec<(HoldRequest, booking_core::Result<Hold>)>,
    ) -> Vec<Hold> {
        use std::collections::{HashMap, HashSet};
        let mut winners = Vec::new();
        let mut blamed: Vec<SeatLabel> = Vec::new();
        for (req, out) in outcomes {
            match out {
                Ok(h) => {
                    let mut got = h.seats.clone();
                    let mut want = req.seats.labels().to_vec();
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "a hold has exactly the seats asked for");
                    winners.push(h);
                }
                Err(Error::SeatsUnavailable { seats, .. }) => {
                    assert!(
                        !seats.is_empty(),
                        "a refusal names the seats that blocked it"
                    );
                    for s in &seats {
                        assert!(
                            req.seats.labels().contains(s),
                            "blamed {s}, which it did not ask for"
                        );
                    }
                    blamed.extend(seats);
                }
                Err(e) => panic!("unexpected error (a deadlock would show here): {e}"),
            }
        }
        let mut seen = HashSet::new();
        for h in &winners {
            for s in &h.seats {
                assert!(seen.insert(s.clone()), "{s} is in two holds");
            }
        }
        for s in &blamed {
            assert!(
                seen.contains(s),
                "{s} was named as taken but no hold has it"
            );
        }
        let rows = self
            .client()
            .await
            .query(
                "SELECT label, hold_id FROM seats WHERE show_id = $1 AND hold_id IS NOT NULL",
                &[&show.id.get()],
            )
            .await
            .unwrap();
        let pointed: HashMap<String, uuid::Uuid> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for h in &winners {
            for s in &h.seats {
                assert_eq!(pointed.get(s.as_str()), Some(&h.hold_id.key()), "{s}");
            }
        }
        assert_eq!(
            pointed.len(),
            seen.len(),
            "a seat points at a hold nobody was told of"
        );
        winners
    }

    /// A show with rows `A`, `B`, ... of `seats_per_row` seats each.
    pub async fn show(&self, rows: usize, seats_per_row: i64) -> Show {
        let specs = (0..rows)
            .map(|i| {
                let label = row_label(i);
                RowSpec::new(RowLabel::parse(&label).unwrap(), seats_per_row, &[], None).unwrap()
            })
            .collect();
        let mut prices = BTreeMap::new();
        prices.insert(Category::standard(), 1200);
        let new = NewShow::new(
            "Test show",
            chrono::Utc::now(),
            Currency::eur(),
            prices,
            specs,
        )
        .unwrap();
        shows::create_show(&mut self.client().await, &new)
            .await
            .expect("create show")
    }

    /// Moves a hold's deadline into the past, as if its time had run out.
    pub async fn lapse(&self, hold: HoldId) {
        let n = self
            .client()
            .await
            .execute(
                "UPDATE holds SET created_at = now() - interval '2 minutes',
                                  expires_at = now() - interval '1 minute'
                  WHERE show_id = $1 AND id = $2",
                &[&hold.show().get(), &hold.key()],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    /// The feed's options the server uses: woken by a LISTEN of its own, and on Citus
    /// the pump's own connection to each node.
    pub fn feed_options(
        &self,
        engine: &Engine,
        stop: &booking_core::CancellationToken,
    ) -> booking_core::feed::FeedOptions {
        booking_core::feed::FeedOptions {
            listen: Some(booking_core::Listener::start(
                engine,
                self.config.clone(),
                stop.clone(),
            )),
            nodes: Some(self.config.clone()),
            ..booking_core::feed::FeedOptions::default()
        }
    }

    /// Checks every invariant of DESIGN.md that the tables can show; panics listing
    /// what is wrong.
    pub async fn audit(&self) {
        self.audit_with(true).await
    }

    /// [`TestDb::audit`] after a shard move on Citus: a move rewrites the rows, so the
    /// seats' versions no longer match the feed's (API.md says so); their states must.
    pub async fn audit_moved(&self) {
        self.audit_with(false).await
    }

    async fn audit_with(&self, versions: bool) {
        let client = self.client().await;
        let checks: &[(&str, &str)] = &[
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
                "a standing area has other than `capacity` places",
                "SELECT a.area FROM areas a
                  WHERE a.capacity <> (SELECT count(*) FROM seats s
                                        WHERE s.show_id = a.show_id AND s.area = a.area)",
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
                "a booked ticket is not priced as its type prices its seat's category",
                "SELECT s.label FROM booking_seats bs
                   JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
                   LEFT JOIN ticket_prices tp ON tp.show_id = bs.show_id AND tp.type = bs.ticket_type
                                             AND tp.category = s.category
                  WHERE tp.type IS NULL OR tp.price IS DISTINCT FROM bs.price",
            ),
            (
                "a blocked seat is in an unexpired active hold or a live booking",
                "SELECT s.label FROM seats s
                   JOIN hold_seats hs ON hs.show_id = s.show_id AND hs.seat_id = s.id
                   JOIN holds h ON h.show_id = hs.show_id AND h.id = hs.hold_id
                  WHERE s.block_id IS NOT NULL AND h.status = 'active' AND h.expires_at > now()
                 UNION ALL
                 SELECT s.label FROM seats s
                   JOIN booking_seats bs ON bs.show_id = s.show_id AND bs.seat_id = s.id AND bs.live
                  WHERE s.block_id IS NOT NULL",
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
            (
                "a ticket is not priced as its type prices its seat's category",
                "SELECT s.label FROM hold_seats hs
                   JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
                   LEFT JOIN ticket_prices tp ON tp.show_id = hs.show_id AND tp.type = hs.ticket_type
                                             AND tp.category = s.category
                  WHERE tp.type IS NULL OR tp.price IS DISTINCT FROM hs.price",
            ),
            (
                "a hold's total is not the sum of its tickets",
                "SELECT h.id::text FROM holds h
                  WHERE h.total <> (SELECT coalesce(sum(hs.price), 0) FROM hold_seats hs
                                     WHERE hs.show_id = h.show_id AND hs.hold_id = h.id)",
            ),
        ];
        let mut problems = Vec::new();
        problems.extend(self.feed_problems(&client, versions).await);
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
}

impl TestDb {
    /// Replays the whole change feed in its order and compares the result with the
    /// seats: every change has its event, and no event contradicts a later read (nor,
    /// with `versions`, gives another row version). A show's feed is in `(epoch, xid,
    /// id)` order (`epoch` is 0 on plain PostgreSQL).
    async fn feed_problems(&self, client: &Client, versions: bool) -> Vec<String> {
        use std::collections::HashMap;
        let events = client
            .query(
                "SELECT show_id, e.seat->>'label', e.seat->>'state', e.seat->>'version'
                   FROM seat_events, jsonb_array_elements(seats) AS e(seat)
                  ORDER BY show_id, epoch, xid, id",
                &[],
            )
            .await
            .unwrap();
        let mut folded: HashMap<(i64, String), (String, String)> = HashMap::new();
        for r in &events {
            folded.insert((r.get(0), r.get(1)), (r.get(2), r.get(3)));
        }
        // The stored state, lapsed holds counting as held until swept (their lapse
        // is published by the sweeper's `expire` event).
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
        let mut problems = Vec::new();
        for r in &seats {
            let key: (i64, String) = (r.get(0), r.get(1));
            let (state, version): (String, String) = (r.get(2), r.get(3));
            match folded.get(&key) {
                Some((s, v)) if *s == state && (*v == version || !versions) => {}
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
}

pub fn row_label(i: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if i < 26 {
        (letters[i] as char).to_string()
    } else {
        format!("{}{}", letters[i / 26 - 1] as char, letters[i % 26] as char)
    }
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub fn request(show: &Show, user_name: &str, seats: &[&str]) -> HoldRequest {
    HoldRequest {
        show: show.id,
        user: user(user_name),
        seats: SeatSelection::parse(seats, 10).unwrap(),
        ttl: None,
        if_versions: vec![],
        ticket_types: vec![],
        areas: vec![],
        reference: Default::default(),
    }
}

/// Settings for tests that pile hundreds of transactions onto one row: a lock wait is
/// bounded, but generously, since these tests check outcomes and not speed.
pub fn patient() -> Engine {
    Engine::new(Settings {
        lock_timeout: Duration::from_secs(30),
        ..Settings::default()
    })
}

/// [`patient`] for the database `db`: with `distributed` set on a Citus formation, as
/// [`TestDb::engine`].
pub fn patient_on(db: &TestDb) -> Engine {
    Engine::new(Settings {
        lock_timeout: Duration::from_secs(30),
        ..db.settings()
    })
}

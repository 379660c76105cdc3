//! No hold outlives `Settings::max_hold`: every way of making one refuses a longer ttl.

use crate::common::{request, user, TestDb};
use booking_core::holds::batch::{self, BatchOptions, Batcher};
use booking_core::{best, holds, BestRequest, CancellationToken, Engine, Error, HoldRequest};
use booking_core::{HoldTtl, SeatCount, Settings};
use std::time::Duration;

fn short_lived(db: &TestDb) -> Engine {
    Engine::new(Settings {
        max_hold: Duration::from_secs(60),
        default_ttl: HoldTtl::from_secs(30).unwrap(),
        ..db.settings()
    })
}

fn asking(req: HoldRequest, secs: i64) -> HoldRequest {
    HoldRequest {
        ttl: Some(HoldTtl::from_secs(secs).unwrap()),
        ..req
    }
}

fn refused_on_ttl<T: std::fmt::Debug>(what: &str, r: booking_core::Result<T>) {
    match r {
        Err(Error::Invalid { field, .. }) if field == "ttl_seconds" => {}
        other => panic!("{what}: expected 400 on ttl_seconds, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_hold_may_not_ask_to_live_longer_than_max_hold() {
    let db = TestDb::new().await;
    let show = db.show(1, 10).await;
    let engine = short_lived(&db);
    let too_long = |seat: &str| asking(request(&show, "alice", &[seat]), 61);

    refused_on_ttl(
        "hold",
        holds::hold(&mut db.client().await, &engine, &too_long("A1")).await,
    );
    refused_on_ttl(
        "hold_pooled",
        holds::hold_pooled(&mut db.client().await, &engine, &too_long("A2")).await,
    );
    let batcher = Batcher::start(
        engine.clone(),
        db.pool.clone(),
        BatchOptions::default(),
        CancellationToken::new(),
    );
    refused_on_ttl("Batcher::hold", batcher.hold(too_long("A3")).await);
    let mut all = batch::hold_all(&db.pool, &engine, vec![too_long("A4")]).await;
    refused_on_ttl("hold_all", all.remove(0));
    let best_req = BestRequest {
        show: show.id,
        user: user("alice"),
        count: SeatCount::parse(2, 10).unwrap(),
        category: None,
        ttl: Some(HoldTtl::from_secs(61).unwrap()),
        ..BestRequest::new(show.id, user("alice"), SeatCount::parse(2, 10).unwrap())
    };
    refused_on_ttl(
        "hold_best",
        best::hold_best(&mut db.client().await, &engine, &best_req).await,
    );
    assert_eq!(
        db.count("SELECT count(*) FROM holds").await,
        0,
        "nothing held"
    );

    // At the limit, and with the default, a hold is made and lapses in time.
    let ok = holds::hold_pooled(
        &mut db.client().await,
        &engine,
        &asking(request(&show, "alice", &["A5"]), 60),
    )
    .await
    .unwrap();
    assert!(ok.expires_at - ok.created_at <= chrono::Duration::seconds(60));
    let default = batcher
        .hold(request(&show, "alice", &["A6"]))
        .await
        .unwrap();
    assert_eq!(
        (default.expires_at - default.created_at).num_seconds(),
        30,
        "the default ttl"
    );
    db.audit().await;
}

//! Idempotency keys belong to a caller and a show: the same key of the same caller on
//! two shows is two keys, for every way of claiming and storing one, and the claim's
//! advisory lock is the same in all of them.

use crate::common::TestDb;
use booking_core::idempotency::{self, Claim, Key, Stored};
use booking_core::ShowId;

fn key(show: Option<i64>, name: &str, print: u8) -> Key {
    Key {
        show: show.map(|n| ShowId::parse(&n.to_string()).unwrap()),
        scope: "user:alice".into(),
        key: name.into(),
        fingerprint: vec![print; 32],
    }
}

fn answer(body: &str) -> Stored {
    Stored {
        status: 201,
        body: body.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn a_key_is_stored_under_its_show_and_found_only_there() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    for (show, body) in [(Some(1), "one"), (Some(2), "two"), (None, "none")] {
        let tx = client.transaction().await.unwrap();
        let k = key(show, "k", 7);
        assert_eq!(idempotency::claim(&tx, &k).await.unwrap(), Claim::Fresh);
        idempotency::record(&tx, &k, &answer(body)).await.unwrap();
        tx.commit().await.unwrap();
    }
    let rows = client
        .query(
            "SELECT show_id, convert_from(body, 'UTF8') FROM idempotency_keys
              WHERE scope = 'user:alice' AND key = 'k' ORDER BY show_id",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        stored,
        [(0, "none".into()), (1, "one".into()), (2, "two".into())]
    );

    // Each show replays its own answer; another request under the key is refused
    // within its show only.
    let tx = client.transaction().await.unwrap();
    assert_eq!(
        idempotency::claim(&tx, &key(Some(2), "k", 7))
            .await
            .unwrap(),
        Claim::Replay(answer("two"))
    );
    assert_eq!(
        idempotency::claim(&tx, &key(Some(1), "k", 8))
            .await
            .unwrap(),
        Claim::Mismatch
    );
    assert_eq!(
        idempotency::claim(&tx, &key(Some(3), "k", 8))
            .await
            .unwrap(),
        Claim::Fresh
    );
    if db.distributed {
        // The forms of many keys at once (`claim_many`, `store_decided`,
        // `record_many_and_commit`) are the batch statement's, one statement over keys
        // of several shows; Citus refuses it ("cannot perform a lateral outer join when
        // a distributed subquery references complex subqueries, CTEs or local tables").
        // On a formation the batch path decides each request alone, with `claim` and
        // `record`, which are what this test proves there.
        return;
    }
    let many = idempotency::claim_many(
        &tx,
        &[
            &key(Some(1), "m", 1),
            &key(Some(2), "k", 7),
            &key(None, "k", 7),
            &key(Some(1), "k", 8),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        many,
        [
            Claim::Fresh,
            Claim::Replay(answer("two")),
            Claim::Replay(answer("none")),
            Claim::Mismatch
        ]
    );
    tx.rollback().await.unwrap();

    // Answers decided without the database: stored in their own show, a key of
    // another show untouched, a key named twice only within one show.
    let (a1, a2, a2_again, b1) = (
        key(Some(1), "d", 1),
        key(Some(2), "d", 1),
        key(Some(2), "d", 1),
        key(Some(1), "k", 7),
    );
    let decided = idempotency::store_decided(
        &client,
        &[
            (&a1, &answer("d1")),
            (&a2, &answer("d2")),
            (&a2_again, &answer("d2")),
            (&b1, &answer("other")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        decided,
        [
            Some(Claim::Fresh),
            Some(Claim::Fresh),
            Some(Claim::InUse),
            Some(Claim::Replay(answer("one")))
        ]
    );
    assert_eq!(
        db.count("SELECT count(*) FROM idempotency_keys WHERE key = 'd' AND show_id IN (1, 2)")
            .await,
        2
    );

    // A batch's answers: the same key on two shows, claimed and stored together.
    let (r1, r2) = (key(Some(1), "r", 1), key(Some(2), "r", 1));
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        idempotency::claim_many(&client, &[&r1, &r2]).await.unwrap(),
        [Claim::Fresh, Claim::Fresh]
    );
    idempotency::record_many_and_commit(&client, &[(&r1, &answer("r1")), (&r2, &answer("r2"))])
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT show_id, convert_from(body, 'UTF8') FROM idempotency_keys
              WHERE key = 'r' ORDER BY show_id",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(stored, [(1, "r1".into()), (2, "r2".into())]);
}

#[tokio::test]
async fn a_key_in_use_on_one_show_is_free_on_another() {
    let db = TestDb::new().await;
    let mut first = db.client().await;
    let mut second = db.client().await;
    // The first transaction claims alice's "k" on show 1 and keeps it.
    let working = first.transaction().await.unwrap();
    let k1 = key(Some(1), "k", 7);
    assert_eq!(
        idempotency::claim(&working, &k1).await.unwrap(),
        Claim::Fresh
    );

    // Every way of claiming sees it in use on show 1, and free on show 2 and show 0.
    let tx = second.transaction().await.unwrap();
    assert_eq!(idempotency::claim(&tx, &k1).await.unwrap(), Claim::InUse);
    if db.distributed {
        // The forms of many keys at once are the batch statement's, which Citus refuses
        // (see the test above): on a formation only `claim` and `record` are used.
        tx.rollback().await.unwrap();
        let k2 = key(Some(2), "k", 7);
        let tx = second.transaction().await.unwrap();
        assert_eq!(idempotency::claim(&tx, &k2).await.unwrap(), Claim::Fresh);
        idempotency::record(&tx, &k2, &answer("two")).await.unwrap();
        tx.commit().await.unwrap();
        idempotency::record(&working, &k1, &answer("one"))
            .await
            .unwrap();
        working.commit().await.unwrap();
        let tx = second.transaction().await.unwrap();
        assert_eq!(
            idempotency::claim(&tx, &k1).await.unwrap(),
            Claim::Replay(answer("one"))
        );
        assert_eq!(
            idempotency::claim(&tx, &k2).await.unwrap(),
            Claim::Replay(answer("two"))
        );
        return;
    }
    assert_eq!(
        idempotency::claim_many(&tx, &[&k1, &key(Some(2), "k", 7), &key(None, "k", 7)])
            .await
            .unwrap(),
        [Claim::InUse, Claim::Fresh, Claim::Fresh]
    );
    tx.rollback().await.unwrap();
    let k2 = key(Some(2), "k", 7);
    let decided =
        idempotency::store_decided(&second, &[(&k1, &answer("refused")), (&k2, &answer("two"))])
            .await
            .unwrap();
    assert_eq!(decided, [Some(Claim::InUse), Some(Claim::Fresh)]);

    // Once the first commits its answer, show 1 replays it, show 2 keeps its own.
    idempotency::record(&working, &k1, &answer("one"))
        .await
        .unwrap();
    working.commit().await.unwrap();
    let tx = second.transaction().await.unwrap();
    assert_eq!(
        idempotency::claim_many(&tx, &[&k1, &k2]).await.unwrap(),
        [Claim::Replay(answer("one")), Claim::Replay(answer("two"))]
    );
}

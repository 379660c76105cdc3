//! A hold as a cart: seats and places added to it and removed from it while it lives,
//! the same id, the same deadline.
//!
//! Lock order, as everywhere: the hold row first (so two changes of one hold run one
//! after the other), then the seats in ascending id order (an add takes them as a new
//! hold does, through `take.rs`: refused from the snapshot when taken, locked, re-read,
//! places claimed without waiting), then the buyer's limit lock.

use super::lifecycle::free_seats_of;
use super::lock::lock_hold;
use super::take::{check, snapshot_sql, take};
use super::{load, Hold, HoldRequest};
use crate::database::Cached;
use crate::domain::{Actor, AreaCode, AreaWant, HoldId, HoldStatus, SeatLabel, SeatSelection};
use crate::domain::{Reference, SeatState, TicketTypeName, UserId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{self, Cause, SeatEvent};
use crate::shows::PIN;
use deadpool_postgres::GenericClient;
use std::sync::{Arc, LazyLock};

/// What to add to a hold.
#[derive(Debug, Clone)]
pub struct HoldAddition {
    /// Seats to add; those the hold has already are passed over (a repeat adds
    /// nothing twice). May be [`SeatSelection::none`] when `areas` asks for places.
    pub seats: SeatSelection,
    /// Places of standing areas to add, each area at most once: always more places.
    pub areas: Vec<AreaWant>,
    /// The ticket type of each named seat (one of `seats`, else [`Error::Invalid`]);
    /// the others are sold as the show's default type.
    pub ticket_types: Vec<(SeatLabel, TicketTypeName)>,
}

/// Adds seats and places to the active hold `id`, all or none: its id and
/// `expires_at` stay, its total grows by their prices. Seats and places together stay
/// within [`Settings::max_seats_per_hold`](crate::Settings::max_seats_per_hold)
/// ([`Error::Invalid`]), and the show's limit per buyer applies to the hold's owner.
///
/// Only an active hold, as for a confirm ([`Error::HoldExpired`],
/// [`Error::HoldReleased`], [`Error::HoldConfirmed`]); the owner or an admin
/// ([`Error::Forbidden`]). Otherwise the refusals of [`super::hold`]
/// ([`Error::SeatsUnavailable`] naming what could not be had, and the hold unchanged).
/// Writes one `add` event for the seats and places added.
#[tracing::instrument(skip_all, fields(hold = %id))]
pub async fn add<C>(
    client: &mut C,
    engine: &Engine,
    actor: &Actor,
    id: HoldId,
    addition: &HoldAddition,
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    check_types(addition)?;
    let tx = client.transaction().await?;
    let owner = lock_own_active(&tx, engine, actor, id).await?;
    let mine = tx
        .cq(
            "SELECT s.label, s.area IS NOT NULL AS place FROM hold_seats hs
               JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
              WHERE hs.show_id = $1 AND hs.hold_id = $2",
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let has = |l: &SeatLabel| {
        mine.iter()
            .any(|r| !r.get::<_, bool>("place") && r.get::<_, &str>("label") == l.as_str())
    };
    let new: Vec<&SeatLabel> = addition.seats.labels().iter().filter(|l| !has(l)).collect();
    let req = HoldRequest {
        show: id.show(),
        user: owner,
        seats: SeatSelection::parse_or_none(new.iter().map(|l| l.as_str()), usize::MAX)?,
        ttl: None,
        if_versions: Vec::new(),
        ticket_types: addition
            .ticket_types
            .iter()
            .filter(|(l, _)| !has(l))
            .cloned()
            .collect(),
        areas: addition.areas.clone(),
        // An add changes what the hold has, not what it is for.
        reference: Reference::default(),
    };
    if req.size() == 0 {
        // Everything named is in the hold already.
        let hold = load(&tx, id).await?.ok_or(Error::HoldNotFound)?;
        tx.commit().await?;
        return Ok(hold);
    }
    let max = engine.settings().max_seats_per_hold;
    if mine.len() + req.size() > max {
        // Named as a new hold names it: `seats` when seats are added, else `areas`.
        let field = if req.seats.is_empty() {
            "areas"
        } else {
            "seats"
        };
        return Err(Error::invalid(
            field,
            format!(
                "at most {max} seats and places in one hold; it has {}",
                mine.len()
            ),
        ));
    }
    check(&req, engine.settings())?;
    let taking = take(&tx, engine, &req).await?;
    let (ids, seen, tickets) = taking.columns();
    let event = write_add(&tx, id, &ids, &seen, &tickets).await?;
    let mut hold = load(&tx, id).await?.ok_or(Error::HoldNotFound)?;
    hold.event = event;
    tx.commit().await?;
    engine.committed(None);
    Ok(hold)
}

/// Refuses ticket types named for seats not being added.
pub(super) fn check_types(addition: &HoldAddition) -> Result<()> {
    match addition
        .ticket_types
        .iter()
        .find(|(l, _)| !addition.seats.labels().contains(l))
    {
        Some((l, _)) => Err(Error::invalid(
            "ticket_types",
            format!("{l} is not a seat being added"),
        )),
        None => Ok(()),
    }
}

/// The statement of [`add_pooled`]. Built once: it is on every add's path.
static ADD_POOLED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH hl AS (
             SELECT user_id, status = 'active' AND expires_at > booking_now(show_id) AS live,
                    xmin::text AS x
               FROM holds WHERE show_id = $1 AND id = $2 FOR NO KEY UPDATE
         ), seen AS (
             SELECT xmin::text AS x,
                    (SELECT count(*) FROM hold_seats hs
                      WHERE hs.show_id = $1 AND hs.hold_id = $2) AS n
               FROM holds WHERE show_id = $1 AND id = $2
         ), snap AS ({snapshot}), go AS (
             SELECT coalesce((SELECT live FROM hl), false)
                    AND ($3::text IS NULL OR (SELECT user_id FROM hl) = $3)
                    AND (SELECT x FROM hl) = (SELECT x FROM seen)
                    AND (SELECT n FROM seen) + cardinality($4::text[]) <= $6
                    AND count(snap.id) = cardinality($4::text[])
                    AND coalesce(bool_and(snap.clean AND snap.sells AND snap.show_on_sale
                                          AND snap.max_seats_per_user IS NULL
                                          AND snap.queue_max_seats IS NULL), false) AS ok
               FROM snap
         ), locked AS (
             SELECT id, xmin::text AS x FROM seats
              WHERE show_id = $1 AND id IN (SELECT id FROM snap) AND (SELECT ok FROM go)
              ORDER BY id FOR UPDATE
         ), verdict AS (
             SELECT (SELECT ok FROM go) AND count(*) = cardinality($4::text[])
                    AND coalesce(bool_and(l.x = snap.xmin), false) AS ok
               FROM locked l JOIN snap ON snap.id = l.id
         ), wanted AS (
             SELECT id, xmin, ticket_type, price FROM snap WHERE (SELECT ok FROM verdict)
         ), hs AS (
             INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
             SELECT p.pin, $2, id, ticket_type, price FROM wanted JOIN {PIN} p ON p.pin = $1
         ), h AS (
             UPDATE holds SET total = total + (SELECT coalesce(sum(price), 0) FROM wanted)
              WHERE show_id = $1 AND id = $2 AND (SELECT ok FROM verdict)
             RETURNING expires_at
         ), taken AS (
             UPDATE seats s SET hold_id = $2
               FROM wanted w
              WHERE s.show_id = $1 AND s.id = w.id AND s.xmin::text = w.xmin
             RETURNING s.id, s.label, s.xmin, s.area
         ), {event}
         SELECT (SELECT ok FROM verdict) AS ok, (SELECT count(*) FROM taken) AS taken,
                {columns}",
        snapshot = snapshot_sql("$1", "$4::text[]", "$5::text[]"),
        event = feed::EventsSql {
            show: "$1",
            cause: Cause::Add,
            state: SeatState::Held,
            until: Some("h.expires_at"),
            was: None,
            from: "taken CROSS JOIN h",
            per: None,
        }
        .cte_of(&feed::Subject {
            hold: Some("$2"),
            ..Default::default()
        }),
        columns = feed::EVENT_COLUMNS,
    )
});

/// [`add`] on a pooled connection, in one statement when only seats are added, each
/// free and untouched meanwhile, to an active hold nobody else is changing (the common
/// case of a cart); anything else goes to [`add`] in a transaction of its own.
///
/// The statement locks the hold row first and reads the seats in its snapshot; only if
/// the hold is live, the actor's, unchanged since the snapshot (its row version), with
/// room for the seats, and every seat is there, points at nothing and is sold as asked
/// (on a show without a limit per buyer) does it lock the seats in id order, check that
/// none changed since the snapshot, and write. Refusals are then decided by [`add`],
/// which reads again under its locks.
#[tracing::instrument(skip_all, fields(hold = %id))]
pub async fn add_pooled(
    client: &mut deadpool_postgres::Client,
    engine: &Engine,
    actor: &Actor,
    id: HoldId,
    addition: &HoldAddition,
) -> Result<Hold> {
    // On Citus this statement's CTEs are planned apart, as `POOLED_SQL`'s are
    // (`pooled.rs`): there the add in a transaction, statement by statement.
    if !addition.areas.is_empty() || addition.seats.is_empty() || engine.settings().distributed {
        return add(client, engine, actor, id, addition).await;
    }
    check_types(addition)?;
    let labels: Vec<&str> = addition
        .seats
        .labels()
        .iter()
        .map(SeatLabel::as_str)
        .collect();
    let types: Vec<Option<&str>> = addition
        .seats
        .labels()
        .iter()
        .map(|l| {
            addition
                .ticket_types
                .iter()
                .find(|(t, _)| t == l)
                .map(|(_, n)| n.as_str())
        })
        .collect();
    let owner: Option<&str> = match actor {
        Actor::User(u) => Some(u.as_str()),
        Actor::Admin => None,
    };
    let max = engine.settings().max_seats_per_hold as i64;
    let row = client
        .cq_one(
            &ADD_POOLED_SQL,
            &[&id.show().get(), &id.key(), &owner, &labels, &types, &max],
        )
        .await?;
    if !row.get::<_, bool>("ok") {
        return add(client, engine, actor, id, addition).await;
    }
    let taken: i64 = row.get("taken");
    if taken != labels.len() as i64 {
        return Err(Error::Invariant(format!(
            "pointed {taken} of {} locked seats at the hold added to",
            labels.len()
        )));
    }
    // The statement committed on its own (autocommit).
    let event = feed::written_event(&row, id.show(), Cause::Add)?;
    engine.committed(None);
    let mut hold = load(&*client, id).await?.ok_or(Error::HoldNotFound)?;
    hold.event = event;
    Ok(hold)
}

/// Locks the hold row and refuses unless `actor` may change it and it is active;
/// returns its owner.
async fn lock_own_active<C: GenericClient>(
    tx: &C,
    engine: &Engine,
    actor: &Actor,
    id: HoldId,
) -> Result<UserId> {
    let locked = lock_hold(tx, engine.settings(), id, None).await?;
    let owner = UserId::from_db(locked.user_id.clone());
    actor.authorise(&owner)?;
    locked.active()?;
    Ok(owner)
}

/// The statement of an add: the seats `ids` (ascending, locked at versions `seen`,
/// sold as `tickets`) recorded in the hold and pointed at it, its total raised, one
/// `add` event (a place taken over from a lapsed hold was held, not available).
async fn write_add<C: GenericClient>(
    tx: &C,
    id: HoldId,
    ids: &[i64],
    seen: &[&str],
    tickets: &[(&str, Option<i64>)],
) -> Result<Option<Arc<SeatEvent>>> {
    let sql = format!(
        "WITH wanted AS (
             SELECT * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[])
                    AS w(id, xmin, ticket_type, price)
         ), hs AS (
             INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
             SELECT p.pin, $2, id, ticket_type, price FROM wanted JOIN {PIN} p ON p.pin = $1
         ), h AS (
             UPDATE holds SET total = total + (SELECT coalesce(sum(price), 0) FROM wanted)
              WHERE show_id = $1 AND id = $2
             RETURNING expires_at
         ), taken AS (
             UPDATE seats s SET hold_id = $2
               FROM wanted w JOIN seats o ON o.show_id = $1 AND o.id = w.id
              WHERE s.show_id = $1 AND s.id = w.id AND s.xmin::text = w.xmin
             RETURNING s.id, s.label, s.xmin, s.area, o.hold_id IS NOT NULL AS was_held
         ), {event}
         SELECT (SELECT count(*) FROM taken) AS taken, {columns}",
        event = feed::EventsSql {
            show: "$1",
            cause: Cause::Add,
            state: SeatState::Held,
            until: Some("h.expires_at"),
            was: Some("CASE WHEN was_held AND area IS NOT NULL THEN 'held' END"),
            from: "taken CROSS JOIN h",
            per: None,
        }
        .cte_of(&feed::Subject {
            hold: Some("$2"),
            ..Default::default()
        }),
        columns = feed::EVENT_COLUMNS,
    );
    let types: Vec<&str> = tickets.iter().map(|(t, _)| *t).collect();
    let prices: Vec<Option<i64>> = tickets.iter().map(|(_, p)| *p).collect();
    let row = tx
        .cq_one(
            &sql,
            &[&id.show().get(), &id.key(), &ids, &seen, &types, &prices],
        )
        .await?;
    let taken: i64 = row.get("taken");
    if taken != ids.len() as i64 {
        return Err(Error::Invariant(format!(
            "pointed {taken} of {} locked seats at the hold added to",
            ids.len()
        )));
    }
    feed::written_event(&row, id.show(), Cause::Add)
}

/// Removes seats and places (the highest-numbered of the hold's places in each area)
/// from the active hold `id`, all or none: they are available again, the total falls
/// by their prices, the id and `expires_at` stay. Removing everything the hold has
/// releases it (a `release` event, status [`HoldStatus::Released`]); otherwise one
/// `remove` event. A seat the hold does not have, or more places of an area than it
/// has: [`Error::NotInHold`], nothing changed. Otherwise as [`add`].
#[tracing::instrument(skip_all, fields(hold = %id))]
pub async fn remove<C>(
    client: &mut C,
    engine: &Engine,
    actor: &Actor,
    id: HoldId,
    seats: &SeatSelection,
    areas: &[AreaWant],
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    if seats.is_empty() && areas.is_empty() {
        return Err(Error::invalid("seats", "name at least one seat or place"));
    }
    let tx = client.transaction().await?;
    lock_own_active(&tx, engine, actor, id).await?;
    let mine = tx
        .cq(
            "SELECT s.id, s.label, s.area FROM hold_seats hs
               JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
              WHERE hs.show_id = $1 AND hs.hold_id = $2
              ORDER BY s.id",
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let mut ids: Vec<i64> = Vec::new();
    let mut missing: Vec<SeatLabel> = Vec::new();
    for l in seats.labels() {
        match mine.iter().find(|r| {
            r.get::<_, Option<&str>>("area").is_none() && r.get::<_, &str>("label") == l.as_str()
        }) {
            Some(r) => ids.push(r.get("id")),
            None => missing.push(l.clone()),
        }
    }
    let mut missing_areas: Vec<AreaCode> = Vec::new();
    for want in areas {
        let places: Vec<i64> = mine
            .iter()
            .filter(|r| r.get::<_, Option<&str>>("area") == Some(want.area.as_str()))
            .map(|r| r.get("id"))
            .collect();
        if places.len() < want.count as usize {
            missing_areas.push(want.area.clone());
        } else {
            ids.extend(places.iter().rev().take(want.count as usize));
        }
    }
    if !missing.is_empty() || !missing_areas.is_empty() {
        return Err(Error::NotInHold {
            seats: missing,
            areas: missing_areas,
        });
    }
    ids.sort_unstable();
    let event = if ids.len() == mine.len() {
        free_seats_of(&tx, id, HoldStatus::Released).await?.1
    } else {
        write_remove(&tx, id, &ids).await?
    };
    let mut hold = load(&tx, id).await?.ok_or(Error::HoldNotFound)?;
    hold.event = event;
    tx.commit().await?;
    engine.committed(None);
    Ok(hold)
}

/// The statement of a remove: the seats `ids` (ascending, the hold's) locked, then
/// dropped from the hold and pointed at nothing, its total lowered, one `remove` event.
async fn write_remove<C: GenericClient>(
    tx: &C,
    id: HoldId,
    ids: &[i64],
) -> Result<Option<Arc<SeatEvent>>> {
    tx.cq(
        "SELECT id FROM seats WHERE show_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE",
        &[&id.show().get(), &ids],
    )
    .await?;
    let sql = format!(
        "WITH gone AS (
             DELETE FROM hold_seats
              WHERE show_id = $1 AND hold_id = $2 AND seat_id = ANY($3)
             RETURNING seat_id, price
         ), h AS (
             UPDATE holds SET total = total - (SELECT coalesce(sum(price), 0) FROM gone)
              WHERE show_id = $1 AND id = $2
         ), freed AS (
             UPDATE seats SET hold_id = NULL
              WHERE show_id = $1 AND hold_id = $2 AND id = ANY($3)
             RETURNING id, label, xmin, area
         ), {event}
         SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM freed) AS freed,
                {columns}",
        event = feed::EventsSql {
            show: "$1",
            cause: Cause::Remove,
            state: SeatState::Available,
            until: None,
            was: None,
            from: "freed",
            per: None,
        }
        .cte_of(&feed::Subject {
            hold: Some("$2"),
            ..Default::default()
        }),
        columns = feed::EVENT_COLUMNS,
    );
    let r = tx
        .cq_one(&sql, &[&id.show().get(), &id.key(), &ids])
        .await?;
    let (gone, freed): (i64, i64) = (r.get("gone"), r.get("freed"));
    if gone != ids.len() as i64 || freed != gone {
        return Err(Error::Invariant(format!(
            "remove dropped {gone} and freed {freed} of {} seats",
            ids.len()
        )));
    }
    feed::written_event(&r, id.show(), Cause::Remove)
}

//! Changing what a held seat or place is sold as: new ticket types, new prices, a new
//! total, the same seats and deadline. No seat changes state, so no event is written.

use super::lock::lock_hold;
use super::{load, Hold};
use crate::database::Cached;
use crate::domain::{AreaCode, HoldId, SeatLabel, TicketTypeName, UserId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use deadpool_postgres::GenericClient;

/// Sells the hold's seats `seats` and the places of its areas `areas` (one type per
/// place it holds there, given to its places in number order) as the types named, at
/// their prices now; the others keep theirs. Only an active hold, as for a confirm
/// ([`Error::HoldExpired`], [`Error::HoldReleased`], [`Error::HoldConfirmed`]); a seat
/// or area the hold does not have: [`Error::NotInHold`]; a list of another length than
/// the hold's places there, or a type the show lacks: [`Error::Invalid`] (field
/// `ticket_types`); a type not sold for a seat's category:
/// [`Error::TicketTypeUnavailable`]. All or none.
#[tracing::instrument(skip_all, fields(hold = %id, user = %user))]
pub async fn change_tickets<C>(
    client: &mut C,
    engine: &Engine,
    user: &UserId,
    id: HoldId,
    seats: &[(SeatLabel, TicketTypeName)],
    areas: &[(AreaCode, Vec<TicketTypeName>)],
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    if seats.is_empty() && areas.is_empty() {
        return Err(Error::invalid(
            "ticket_types",
            "name at least one seat or area",
        ));
    }
    let tx = client.transaction().await?;
    let locked = lock_hold(&tx, engine.settings(), id, None).await?;
    if locked.user_id != user.as_str() {
        return Err(Error::Forbidden);
    }
    locked.active()?;
    // The hold's seats and places, in id order (places of an area in number order).
    let rows = tx
        .cq(
            "SELECT s.id, s.label, s.area FROM hold_seats hs
               JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
              WHERE hs.show_id = $1 AND hs.hold_id = $2
              ORDER BY s.id",
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let mut ids: Vec<i64> = Vec::new();
    let mut types: Vec<&str> = Vec::new();
    let mut missing: Vec<SeatLabel> = Vec::new();
    for (label, t) in seats {
        match rows
            .iter()
            .find(|r| r.get::<_, &str>("label") == label.as_str())
        {
            Some(r) => {
                ids.push(r.get("id"));
                types.push(t.as_str());
            }
            None => missing.push(label.clone()),
        }
    }
    let mut missing_areas: Vec<AreaCode> = Vec::new();
    for (area, list) in areas {
        let mine: Vec<i64> = rows
            .iter()
            .filter(|r| r.get::<_, Option<&str>>("area") == Some(area.as_str()))
            .map(|r| r.get("id"))
            .collect();
        if mine.is_empty() {
            missing_areas.push(area.clone());
        } else if mine.len() != list.len() {
            return Err(Error::invalid(
                "ticket_types",
                format!(
                    "the hold has {} places of {area}: name one type for each",
                    mine.len()
                ),
            ));
        } else {
            ids.extend(mine);
            types.extend(list.iter().map(TicketTypeName::as_str));
        }
    }
    if !missing.is_empty() || !missing_areas.is_empty() {
        return Err(Error::NotInHold {
            seats: missing,
            areas: missing_areas,
        });
    }
    // The one price rule: a type is sold for the categories it lists.
    let priced = tx
        .cq(
            "SELECT w.id, s.label, s.area, w.type, tp.price, tp.type IS NOT NULL AS sells,
                    EXISTS (SELECT 1 FROM ticket_types tt
                             WHERE tt.show_id = $1 AND tt.type = w.type) AS type_known
               FROM unnest($2::bigint[], $3::text[]) AS w(id, type)
               JOIN seats s ON s.show_id = $1 AND s.id = w.id
               LEFT JOIN ticket_prices tp
                 ON tp.show_id = s.show_id AND tp.category = s.category AND tp.type = w.type",
            &[&id.show().get(), &ids, &types],
        )
        .await?;
    if let Some(r) = priced.iter().find(|r| !r.get::<_, bool>("type_known")) {
        return Err(Error::invalid(
            "ticket_types",
            format!("the show has no ticket type {}", r.get::<_, &str>("type")),
        ));
    }
    let mut refused_seats = Vec::new();
    let mut refused_areas: Vec<(AreaCode, TicketTypeName)> = Vec::new();
    for r in priced.iter().filter(|r| !r.get::<_, bool>("sells")) {
        let t = TicketTypeName::from_db(r.get("type"));
        match r.get::<_, Option<String>>("area") {
            Some(a) => {
                let pair = (AreaCode::from_db(a), t);
                if !refused_areas.contains(&pair) {
                    refused_areas.push(pair);
                }
            }
            None => refused_seats.push((SeatLabel::from_db(r.get("label")), t)),
        }
    }
    if !refused_seats.is_empty() || !refused_areas.is_empty() {
        return Err(Error::TicketTypeUnavailable {
            tickets: refused_seats,
            areas: refused_areas,
        });
    }
    let prices: Vec<Option<i64>> = priced.iter().map(|r| r.get("price")).collect();
    let priced_ids: Vec<i64> = priced.iter().map(|r| r.get("id")).collect();
    let priced_types: Vec<&str> = priced.iter().map(|r| r.get("type")).collect();
    tx.cexec(
        "WITH changed AS (
             UPDATE hold_seats hs SET ticket_type = w.type, price = w.price
               FROM unnest($3::bigint[], $4::text[], $5::bigint[]) AS w(id, type, price)
              WHERE hs.show_id = $1 AND hs.hold_id = $2 AND hs.seat_id = w.id
             RETURNING hs.seat_id, hs.price
         )
         UPDATE holds h SET total = (
                 SELECT coalesce(sum(CASE WHEN c.seat_id IS NOT NULL THEN c.price ELSE hs.price END), 0)
                   FROM hold_seats hs LEFT JOIN changed c ON c.seat_id = hs.seat_id
                  WHERE hs.show_id = $1 AND hs.hold_id = $2)
          WHERE h.show_id = $1 AND h.id = $2",
        &[&id.show().get(), &id.key(), &priced_ids, &priced_types, &prices],
    )
    .await?;
    let hold = load(&tx, id).await?.ok_or(Error::HoldNotFound)?;
    tx.commit().await?;
    Ok(hold)
}

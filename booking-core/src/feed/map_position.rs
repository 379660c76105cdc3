//! Where a seat map stands in the feed, so that a client can follow it without a gap.

use super::event::{Position, TxSnapshot};
use crate::error::{Error, Result};
use std::fmt;

/// The events a seat map reflects: every event up to `after`, and, when the map was read
/// in a snapshot that saw some transactions the feed had not handed out yet, the events
/// of those too. A follower resuming from it ([`Feed::subscribe_from`]) gets exactly the
/// events the map does not reflect.
///
/// Why a snapshot and not one position: the feed hands out a transaction's events once
/// every older transaction has ended, but a read sees every transaction committed before
/// it, older ones still running or not. What a read saw is therefore not always a prefix
/// of the feed. It is closed under the order of each seat, though: a transaction never
/// takes a seat last written by a younger one (see [`crate::holds`]), so every earlier
/// change of a seat the map shows committed before the later one, and the read saw it.
///
/// Text form (the `position` of `GET /shows/{id}/seats`, given back as `since`):
/// `{xid}.{id}`, an event id, when the map is exactly the feed up to that event; else
/// `{xid}.{id}~{xmin}:{xmax}:{xip,...}` with the snapshot. Opaque to clients.
///
/// [`Feed::subscribe_from`]: super::Feed::subscribe_from
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapPosition {
    after: Position,
    seen: Option<TxSnapshot>,
}

/// The most transactions in progress a position's snapshot may name.
const MAX_RUNNING: usize = 1000;

impl MapPosition {
    /// The feed up to and including `after`.
    pub fn at(after: Position) -> MapPosition {
        MapPosition { after, seen: None }
    }

    /// The feed up to `after`, plus the events of the transactions `seen` sees. The
    /// snapshot is dropped when it adds nothing (every transaction it sees is older
    /// than `after`'s).
    pub fn with_snapshot(after: Position, seen: TxSnapshot) -> MapPosition {
        // The snapshot's stay of the show was over at `after` already, or every
        // transaction it sees is older than `after`'s.
        let (_, epoch) = seen.placement();
        if after.epoch > epoch || (after.epoch == epoch && after.xid >= seen.xmax()) {
            return MapPosition::at(after);
        }
        MapPosition {
            after,
            seen: Some(seen),
        }
    }

    /// What a read in snapshot `seen` reflects, with no position known: every event of
    /// a transaction older than all those running then, and those of the others it saw.
    pub fn of_snapshot(seen: TxSnapshot) -> MapPosition {
        let (node, epoch) = seen.placement();
        let after = Position {
            xid: seen.xmin(),
            ..Position::start_of(node, epoch)
        };
        MapPosition::with_snapshot(after, seen)
    }

    /// Events up to here are reflected; a follower starts after it.
    pub fn after(&self) -> Position {
        self.after
    }

    /// Whether the map reflects the event at `event` already.
    pub fn includes(&self, event: Position) -> bool {
        event <= self.after || self.seen.as_ref().is_some_and(|s| s.reflects(event))
    }

    /// Parses the text form (an event id is one too); [`Error::Invalid`] naming
    /// `field` otherwise.
    pub fn parse(s: &str, field: &str) -> Result<MapPosition> {
        let bad = || {
            Error::invalid(
                field,
                "not a feed position (an event id, or a seat map's `position`)",
            )
        };
        let (event, snapshot) = match s.split_once('~') {
            Some((e, snap)) => (e, Some(snap)),
            None => (s, None),
        };
        let after = Position::parse(event).map_err(|_| bad())?;
        let Some(snapshot) = snapshot else {
            return Ok(MapPosition::at(after));
        };
        let number = |t: &str| -> Result<u64> {
            if t.is_empty() || t.len() > 19 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        // `xmin:xmax:xip`, on a formation after `{node}.{epoch}:`.
        let parts: Vec<&str> = snapshot.splitn(5, ':').collect();
        let (placement, xmin, xmax, xip) = match parts[..] {
            [xmin, xmax, xip] => (None, xmin, xmax, xip),
            [placement, xmin, xmax, xip] => (Some(placement), xmin, xmax, xip),
            _ => return Err(bad()),
        };
        let (node, epoch) = match placement.map(|p| p.split_once('.')) {
            None => (0, 0),
            Some(Some((n, e))) => {
                let small = |t: &str| -> Result<i32> {
                    if t.is_empty() || t.len() > 9 || !t.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    t.parse().map_err(|_| bad())
                };
                (small(n)?, small(e)?)
            }
            Some(None) => return Err(bad()),
        };
        let (xmin, xmax) = (number(xmin)?, number(xmax)?);
        let running = if xip.is_empty() {
            Vec::new()
        } else {
            xip.split(',').map(number).collect::<Result<Vec<u64>>>()?
        };
        // Syntax only: a position the server did not write (running outside
        // xmin..xmax, say) names some set of events all the same, and whom it
        // misleads is the client that made it up.
        if running.len() > MAX_RUNNING {
            return Err(bad());
        }
        Ok(MapPosition::with_snapshot(
            after,
            TxSnapshot::new(node, epoch, xmin, xmax, running),
        ))
    }
}

impl fmt::Display for MapPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.after)?;
        if let Some(s) = &self.seen {
            write!(f, "~{s}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for MapPosition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pos(s: &str) -> Position {
        Position::parse(s).unwrap()
    }

    #[test]
    fn positions_round_trip_and_say_what_they_include() {
        let plain = MapPosition::parse("100.7", "since").unwrap();
        assert_eq!(plain.to_string(), "100.7");
        assert!(plain.includes(pos("100.7")) && !plain.includes(pos("100.8")));

        let snap = MapPosition::parse("100.7~98:110:101,105", "since").unwrap();
        assert_eq!(snap.to_string(), "100.7~98:110:101,105");
        assert!(snap.includes(pos("99.1")), "below the position");
        assert!(snap.includes(pos("104.3")), "seen by the snapshot");
        assert!(!snap.includes(pos("101.9")), "running then");
        assert!(!snap.includes(pos("105.1")), "running then");
        assert!(!snap.includes(pos("110.1")), "after the snapshot");

        // A snapshot that adds nothing is dropped.
        assert_eq!(
            MapPosition::parse("120.1~98:110:", "since")
                .unwrap()
                .to_string(),
            "120.1"
        );
    }

    #[test]
    fn formation_positions_name_their_node_and_epoch() {
        let p = pos("2.1.500.7");
        assert_eq!((p.node(), p.epoch(), p.xid(), p.id()), (2, 1, 500, 7));
        assert_eq!(p.to_string(), "2.1.500.7");
        // In one show's order a later stay comes after, whatever its xids.
        assert!(pos("2.0.900.1") < pos("1.1.5.1"));
        let map = MapPosition::parse("1.1.100.7~1.1:98:110:101", "since").unwrap();
        assert_eq!(map.to_string(), "1.1.100.7~1.1:98:110:101");
        assert!(map.includes(pos("2.0.999.9")), "an earlier stay: seen");
        assert!(map.includes(pos("1.1.104.3")) && !map.includes(pos("1.1.101.9")));
        assert!(!map.includes(pos("2.2.50.1")), "a later stay: not seen");
        for bad in [
            "1.2.3",
            "1.2.3.4.5",
            "1234567890.0.1.1",
            "1.1.2~1:3:4:",
            "1.1.2~x.1:3:4:",
        ] {
            assert!(MapPosition::parse(bad, "since").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_positions_are_refused() {
        let many = format!("1.2~3:9:{}", vec!["4"; MAX_RUNNING + 1].join(","));
        assert!(MapPosition::parse(&many, "since").is_err());
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "a.b",
            "1.2~",
            "1.2~3",
            "1.2~3:4",
            "1.2~3:9:4,",
            "1.2~3:9:,4",
            "1.2~3:9:x",
            "1.2~3:9:4:5",
            "1.2~3:99999999999999999999:",
            "1.2~-3:9:",
        ] {
            assert!(MapPosition::parse(bad, "since").is_err(), "{bad:?}");
        }
    }
}

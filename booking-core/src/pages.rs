//! Pages of lists: the size of a page ([`Limit`]), where the next one starts
//! ([`Cursor`]) and a page itself ([`Page`]).
//!
//! Lists are paged by keyset, never by `OFFSET`: a cursor holds the sort key of the
//! last row of its page (a time, and the ids that break its ties), and the next page is
//! the rows strictly after it in the list's order, read by one range scan of the index
//! in that order. A page therefore costs its own rows however deep it is, and rows
//! added while a client pages neither repeat a row nor hide one that was there when it
//! began (a new row sorts before the cursor, in a page already read, or after it, in a
//! page still to come). `DESIGN.md`, "Pages", says more.
//!
//! A cursor is opaque to clients: URL-safe base64 of a version byte, the list it
//! belongs to, and its key. It is untrusted input, parsed once by [`Cursor::parse`];
//! one of another list (or another show's) is refused by the query it is given to.

use crate::error::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use uuid::Uuid;

/// How many rows a page has at most: 1 to [`Limit::MAX`], [`Limit::DEFAULT`] unless
/// asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    /// The size of a page when the caller names none.
    pub const DEFAULT: u32 = 50;
    /// The largest page.
    pub const MAX: u32 = 200;

    /// `n` rows a page: [`Error::Invalid`] (field `limit`) unless 1 to [`Limit::MAX`].
    pub fn new(n: u32) -> Result<Limit> {
        if (1..=Limit::MAX).contains(&n) {
            Ok(Limit(n))
        } else {
            Err(Limit::refusal())
        }
    }

    /// A limit as a query string gives it (decimal digits).
    pub fn parse(s: &str) -> Result<Limit> {
        if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Limit::refusal());
        }
        s.parse().map_err(|_| Limit::refusal()).and_then(Limit::new)
    }

    fn refusal() -> Error {
        Error::invalid(
            "limit",
            format!(
                "a page has 1 to {} rows (default {})",
                Limit::MAX,
                Limit::DEFAULT
            ),
        )
    }

    /// The number of rows.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Rows to read: one more than a page, to learn whether another page follows.
    pub(crate) fn fetch(self) -> i64 {
        i64::from(self.0) + 1
    }
}

impl Default for Limit {
    fn default() -> Self {
        Limit(Limit::DEFAULT)
    }
}

/// The list a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    ShowHolds = 1,
    ShowBookings = 2,
    UserBookings = 3,
    Shows = 4,
    Venues = 5,
    ShowBlocks = 6,
}

impl List {
    fn from_byte(b: u8) -> Option<List> {
        Some(match b {
            1 => List::ShowHolds,
            2 => List::ShowBookings,
            3 => List::UserBookings,
            4 => List::Shows,
            5 => List::Venues,
            6 => List::ShowBlocks,
            _ => return None,
        })
    }
}

/// Where the next page of a list starts: the sort key of the last row of the page
/// before. Sent to clients as opaque text ([`Cursor::encode`], also its JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    list: List,
    /// The row's time (microseconds, as PostgreSQL keeps them).
    pub(crate) at: DateTime<Utc>,
    /// The row's show (the show's own id for the list of shows).
    pub(crate) show: i64,
    /// The row's id within its show (nil for shows).
    pub(crate) key: Uuid,
}

const VERSION: u8 = 1;
const BYTES: usize = 2 + 8 + 8 + 16;

impl Cursor {
    /// The cursor after the row numbered `id` of a list ordered by such numbers (venues:
    /// `show` is the venue's id; a show's blocks: `show` is the show, `key` the block's
    /// number).
    pub(crate) fn numbered(list: List, show: i64, id: Option<i64>) -> Cursor {
        let key = id.map_or(Uuid::nil(), |n| Uuid::from_u64_pair(0, n as u64));
        Cursor::new(list, DateTime::UNIX_EPOCH, show, key)
    }

    /// The number [`Cursor::numbered`] put in `key`.
    pub(crate) fn number(&self) -> i64 {
        self.key.as_u64_pair().1 as i64
    }

    pub(crate) fn new(list: List, at: DateTime<Utc>, show: i64, key: Uuid) -> Cursor {
        Cursor {
            list,
            at,
            show,
            key,
        }
    }

    /// A cursor as a client sent it back: [`Error::Invalid`] (field `cursor`) unless it
    /// is one that [`Cursor::encode`] wrote.
    pub fn parse(s: &str) -> Result<Cursor> {
        let refusal = || {
            Error::invalid(
                "cursor",
                "not a cursor of this API (pass the `next_cursor` of the page before, unchanged)",
            )
        };
        // 34 bytes are 46 characters: anything longer is refused before decoding.
        if s.len() > 64 {
            return Err(refusal());
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| refusal())?;
        if bytes.len() != BYTES || bytes[0] != VERSION {
            return Err(refusal());
        }
        let list = List::from_byte(bytes[1]).ok_or_else(refusal)?;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(w)
        };
        // Within what PostgreSQL stores (a time outside its range would fail the
        // statement, not the cursor), and what this API writes.
        let at = DateTime::from_timestamp_micros(word(2))
            .filter(|t| (1..=9999).contains(&t.year()))
            .ok_or_else(refusal)?;
        let show = word(10);
        let mut key = [0u8; 16];
        key.copy_from_slice(&bytes[18..34]);
        if show < 1 {
            return Err(refusal());
        }
        Ok(Cursor::new(list, at, show, Uuid::from_bytes(key)))
    }

    /// The cursor as text for clients: URL-safe base64 without padding, 46 characters.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(BYTES);
        bytes.push(VERSION);
        bytes.push(self.list as u8);
        bytes.extend_from_slice(&self.at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(&self.show.to_be_bytes());
        bytes.extend_from_slice(self.key.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// This cursor, if it belongs to `list` (and, for a show's lists, to `show`); a
    /// cursor of another list is refused as one that was tampered with.
    pub(crate) fn of(self, list: List, show: Option<i64>) -> Result<Cursor> {
        if self.list != list || show.is_some_and(|s| s != self.show) {
            return Err(Error::invalid(
                "cursor",
                "this cursor belongs to another list (pass the `next_cursor` of this list's page before)",
            ));
        }
        Ok(self)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

/// One page of a list: its rows, and where the next page starts (`None` on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// Up to the limit asked for, in the list's order.
    pub items: Vec<T>,
    /// Pass it back for the next page; `None`: this was the last.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// The page of `rows` read with [`Limit::fetch`]: the first `limit` of them, and a
    /// cursor at the last of those (made by `key`) when there were more.
    pub(crate) fn of(mut rows: Vec<T>, limit: Limit, key: impl Fn(&T) -> Cursor) -> Page<T> {
        let more = rows.len() > limit.get() as usize;
        rows.truncate(limit.get() as usize);
        let next_cursor = if more { rows.last().map(key) } else { None };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written() {
        let at = DateTime::from_timestamp_micros(1_767_225_600_123_456).unwrap();
        let c = Cursor::new(List::ShowBookings, at, 42, Uuid::new_v4());
        let text = c.encode();
        assert_eq!(text.len(), 46);
        assert_eq!(Cursor::parse(&text).unwrap(), c);
    }

    #[test]
    fn anything_else_is_refused() {
        let at = DateTime::from_timestamp_micros(0).unwrap();
        let good = Cursor::new(List::Shows, at, 7, Uuid::nil()).encode();
        let mut flipped = good.clone().into_bytes();
        flipped[1] = if flipped[1] == b'A' { b'B' } else { b'A' };
        for bad in [
            "",
            "x",
            "not a cursor",
            &good[..45],
            &format!("{good}A"),
            &format!("{good}="),
            std::str::from_utf8(&flipped).unwrap(),
            &"A".repeat(10_000),
        ] {
            match Cursor::parse(bad) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, "cursor"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn a_time_postgresql_cannot_store_is_refused() {
        for micros in [i64::MIN, -200_000 * 31_556_952_000_000, i64::MAX] {
            let mut bytes = vec![VERSION, List::Shows as u8];
            bytes.extend_from_slice(&micros.to_be_bytes());
            bytes.extend_from_slice(&7i64.to_be_bytes());
            bytes.extend_from_slice(Uuid::nil().as_bytes());
            let text = URL_SAFE_NO_PAD.encode(bytes);
            assert!(Cursor::parse(&text).is_err(), "{micros}");
        }
    }

    #[test]
    fn limits_are_one_to_two_hundred() {
        assert_eq!(Limit::parse("1").unwrap().get(), 1);
        assert_eq!(Limit::parse("200").unwrap().get(), 200);
        assert_eq!(Limit::default().get(), 50);
        for bad in [
            "0",
            "201",
            "-1",
            "+5",
            "1e2",
            "",
            " 5",
            "0050",
            "99999999999",
        ] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The compact form of a seat map (`?format=compact`, docs/API.md): the layout once,
//! then one character and one version per seat.
//!
//! A 100,000-seat map in full is ~12 MB of JSON, most of it the same field names and
//! the same category, row and price repeated per seat. Here the fixed part (rows,
//! numbers, kinds of seat, aisles, features) is written once when the map is read
//! ([`Layout::of`]), and an answer after a change writes only `states` and `versions`.

use crate::http::ApiError;
use booking_core::{Seat, SeatMap, SeatState};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Which form of the map a request asks for (`?format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per seat (no `format`, or `format=full`).
    Full,
    /// `format=compact`: the layout once, a character and a version per seat.
    Compact,
}

impl Format {
    /// The `format` parameter: absent, `full` or `compact`; anything else is
    /// `400 invalid_request` naming `format`.
    pub fn parse(raw: Option<&str>) -> Result<Format, ApiError> {
        match raw {
            None | Some("full") => Ok(Format::Full),
            Some("compact") => Ok(Format::Compact),
            Some(_) => Err(ApiError::invalid(
                "format",
                "Invalid format: `full` (the default) or `compact`.",
            )),
        }
    }
}

/// The compact form of a map read from the database and not kept (no fragments to
/// reuse: the layout is written for this answer alone).
pub fn of_map(map: &SeatMap) -> Bytes {
    let layout = Layout::of(&map.seats);
    let ticket_types = format!("\"ticket_types\":{}", json(&map.ticket_types));
    let mut out = Vec::with_capacity(256 + layout.as_str().len() + map.seats.len() * 8);
    render(
        &mut out,
        &map.show_id.to_string(),
        &ticket_types,
        &layout,
        map.seats.iter().map(|s| (s.state, s.version.as_str())),
        json(&map.areas).as_bytes(),
        &map.position.to_string(),
    );
    out.into()
}

/// The states in the order of their code in `states` (`"0"` is available...).
pub const STATE_NAMES: [SeatState; 4] = [
    SeatState::Available,
    SeatState::Held,
    SeatState::Booked,
    SeatState::Blocked,
];

/// The code of `state` in `states`.
pub fn state_code(state: SeatState) -> u8 {
    match state {
        SeatState::Available => b'0',
        SeatState::Held => b'1',
        SeatState::Booked => b'2',
        SeatState::Blocked => b'3',
    }
}

/// The fixed part of a compact map, as JSON members (`"state_names":..,"rows":..,...`),
/// without braces: written once per read of the map.
pub struct Layout(Box<str>);

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl Layout {
    /// The layout of `seats`, in map order (by section, row, number: seats of a row
    /// are consecutive).
    pub fn of(seats: &[Seat]) -> Layout {
        // Kinds: each distinct (category, price) once, seats pointing at one.
        let mut kinds: Vec<(&str, Option<i64>)> = Vec::new();
        let mut kind_of = Vec::with_capacity(seats.len());
        // Rows: consecutive seats of one (section, row), their numbers as runs.
        let mut rows = String::new();
        let mut features: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut aisles = Vec::new();
        let mut labels_derived = true;
        let mut i = 0;
        while i < seats.len() {
            let first = &seats[i];
            let mut runs: Vec<(i32, i32)> = Vec::new();
            let mut j = i;
            while j < seats.len() && seats[j].row == first.row && seats[j].section == first.section
            {
                let n = seats[j].number;
                match runs.last_mut() {
                    Some(run) if run.1 + 1 == n => run.1 = n,
                    _ => runs.push((n, n)),
                }
                j += 1;
            }
            if !rows.is_empty() {
                rows.push(',');
            }
            let _ = write!(rows, "{{\"row\":{}", json(&first.row));
            if let Some(s) = &first.section {
                let _ = write!(rows, ",\"section\":{}", json(s));
            }
            let _ = write!(rows, ",\"numbers\":{}}}", json(&runs));
            i = j;
        }
        for (i, s) in seats.iter().enumerate() {
            let kind = (s.category.as_str(), s.price);
            let k = match kinds.iter().position(|x| *x == kind) {
                Some(k) => k,
                None => {
                    kinds.push(kind);
                    kinds.len() - 1
                }
            };
            kind_of.push(k);
            if s.aisle_after {
                aisles.push(i);
            }
            for f in &s.features {
                features.entry(f.as_str()).or_default().push(i);
            }
            let derived = match &s.section {
                Some(sec) => format!("{sec}-{}{}", s.row, s.number),
                None => format!("{}{}", s.row, s.number),
            };
            labels_derived &= derived == s.label.as_str();
        }
        let mut out = String::with_capacity(64 + seats.len() * 3);
        let names: Vec<&str> = STATE_NAMES.iter().map(|s| s.as_str()).collect();
        let _ = write!(out, "\"state_names\":{},\"rows\":[{rows}]", json(&names));
        out.push_str(",\"kinds\":[");
        for (k, (category, price)) in kinds.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"category\":{},\"price\":{}}}",
                json(category),
                json(price)
            );
        }
        out.push_str("],\"kind\":");
        if kinds.len() <= 1 {
            out.push('0'); // one kind: every seat's, no array needed
        } else {
            out.push_str(&json(&kind_of));
        }
        let _ = write!(
            out,
            ",\"aisle_after\":{},\"features\":{}",
            json(&aisles),
            json(&features)
        );
        if !labels_derived {
            let labels: Vec<&str> = seats.iter().map(|s| s.label.as_str()).collect();
            let _ = write!(out, ",\"labels\":{}", json(&labels));
        }
        Layout(out.into())
    }

    /// The JSON members.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes `{"show_id":..,"format":"compact",<ticket_types>,<layout>,"states":"..",
/// "versions":[..],"areas":..,"position":".."}` into `out`; `seats` yields each seat's
/// state and version in map order.
pub fn render<'a>(
    out: &mut Vec<u8>,
    show_id: &str,
    ticket_types: &str,
    layout: &Layout,
    seats: impl Iterator<Item = (SeatState, &'a str)> + Clone,
    areas_json: &[u8],
    position: &str,
) {
    out.extend_from_slice(b"{\"show_id\":");
    out.extend_from_slice(json(show_id).as_bytes());
    out.extend_from_slice(b",\"format\":\"compact\",");
    out.extend_from_slice(ticket_types.as_bytes());
    out.push(b',');
    out.extend_from_slice(layout.as_str().as_bytes());
    out.extend_from_slice(b",\"states\":\"");
    out.extend(seats.clone().map(|(state, _)| state_code(state)));
    out.extend_from_slice(b"\",\"versions\":[");
    for (i, (_, version)) in seats.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if version.bytes().all(|b| b.is_ascii_alphanumeric()) {
            out.push(b'"');
            out.extend_from_slice(version.as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(json(version).as_bytes());
        }
    }
    out.extend_from_slice(b"],\"areas\":");
    out.extend_from_slice(areas_json);
    out.extend_from_slice(b",\"position\":\"");
    out.extend_from_slice(position.as_bytes());
    out.extend_from_slice(b"\"}");
}

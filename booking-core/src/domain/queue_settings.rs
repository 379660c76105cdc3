//! A show's waiting-room settings, parsed once.

use crate::error::{Error, Result};
use serde::Serialize;

/// How a queued show admits its buyers: `admit_per_minute` buyers a minute, each for
/// `admission_minutes`, with at most `max_seats` live seats (held and booked) each.
/// Built by [`QueueSettings::parse`], so every value is in its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueSettings {
    admit_per_minute: u32,
    admission_minutes: u32,
    max_seats: u32,
}

/// Bounds of each setting (inclusive), as the database checks them too.
pub const ADMIT_PER_MINUTE: (u32, u32) = (1, 100_000);
/// Bounds of `admission_minutes`: a minute to a day.
pub const ADMISSION_MINUTES: (u32, u32) = (1, 1_440);
/// Bounds of `max_seats`.
pub const MAX_SEATS: (u32, u32) = (1, 100);

impl QueueSettings {
    /// The settings, each in its bounds, or [`Error::Invalid`] naming the field
    /// (`queue.admit_per_minute`, `queue.admission_minutes`, `queue.max_seats`).
    pub fn parse(admit_per_minute: i64, admission_minutes: i64, max_seats: i64) -> Result<Self> {
        let within = |name: &str, v: i64, (lo, hi): (u32, u32)| -> Result<u32> {
            match u32::try_from(v) {
                Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                _ => Err(Error::invalid(
                    format!("queue.{name}"),
                    format!("must be {lo} to {hi}"),
                )),
            }
        };
        Ok(QueueSettings {
            admit_per_minute: within("admit_per_minute", admit_per_minute, ADMIT_PER_MINUTE)?,
            admission_minutes: within("admission_minutes", admission_minutes, ADMISSION_MINUTES)?,
            max_seats: within("max_seats", max_seats, MAX_SEATS)?,
        })
    }

    /// From the columns of a show row (`None` when the show has no queue).
    pub(crate) fn from_db(
        admit_per_minute: Option<i32>,
        admission_minutes: Option<i32>,
        max_seats: Option<i32>,
    ) -> Option<Self> {
        Some(QueueSettings {
            admit_per_minute: admit_per_minute? as u32,
            admission_minutes: admission_minutes? as u32,
            max_seats: max_seats? as u32,
        })
    }

    /// Buyers admitted a minute.
    pub fn admit_per_minute(&self) -> u32 {
        self.admit_per_minute
    }

    /// How long an admission lasts, in minutes.
    pub fn admission_minutes(&self) -> u32 {
        self.admission_minutes
    }

    /// Most live seats (held and booked) one admitted buyer may have of the show.
    pub fn max_seats(&self) -> u32 {
        self.max_seats
    }

    /// The time between two admissions, in microseconds (`60 s / admit_per_minute`).
    pub fn interval_micros(&self) -> i64 {
        60_000_000 / i64::from(self.admit_per_minute)
    }
}

//! How many seats a best-available request asks for.

use crate::error::{Error, Result};

/// A number of seats for one hold: 1 to the configured maximum.
///
/// ```
/// use booking_core::SeatCount;
/// assert_eq!(SeatCount::parse(4, 10).unwrap().get(), 4);
/// assert!(SeatCount::parse(0, 10).is_err());
/// assert!(SeatCount::parse(11, 10).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeatCount(usize);

impl SeatCount {
    /// `n` seats; [`Error::Invalid`] (field `count`) unless `n` is 1 to `max`
    /// (usually [`Settings::max_seats_per_hold`](crate::Settings::max_seats_per_hold)).
    pub fn parse(n: i64, max: usize) -> Result<Self> {
        match usize::try_from(n) {
            Ok(n) if (1..=max).contains(&n) => Ok(SeatCount(n)),
            _ => Err(Error::invalid("count", format!("must be 1 to {max}"))),
        }
    }

    /// The number of seats, at least 1.
    pub fn get(self) -> usize {
        self.0
    }
}

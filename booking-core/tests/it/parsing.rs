//! Property tests of the domain newtypes: every untrusted string is parsed once, into a
//! value that keeps the documented rules, or refused with `Error::Invalid` — never a
//! panic, whatever the input.

use booking_core::{
    BookingId, Category, Currency, Error, HoldId, HoldTtl, RowLabel, SeatLabel, SeatSelection,
    ShowId, UserId,
};
use proptest::prelude::*;

fn is_invalid(e: &Error) -> bool {
    matches!(e, Error::Invalid { .. })
}

fn invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Invalid { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn seat_labels_are_parsed_or_refused(s in "\\PC{0,12}|[A-Z]{0,4}[0-9]{0,4}") {
        match SeatLabel::parse(&s) {
            Ok(l) => {
                prop_assert_eq!(l.as_str(), s.as_str());
                prop_assert!((1..=3).contains(&l.row().len()));
                prop_assert!(l.row().bytes().all(|b| b.is_ascii_uppercase()));
                prop_assert!((1..=SeatLabel::MAX_NUMBER).contains(&l.number()));
                prop_assert_eq!(format!("{}{}", l.row(), l.number()), s);
                let row = RowLabel::parse(l.row()).unwrap();
                prop_assert_eq!(SeatLabel::new(None, &row, l.number()).unwrap(), l);
            }
            Err(e) => prop_assert!(is_invalid(&e)),
        }
    }

    #[test]
    fn row_labels_are_one_to_three_capitals(s in "\\PC{0,6}|[A-Z]{0,5}") {
        let ok = (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase());
        match RowLabel::parse(&s) {
            Ok(r) => { prop_assert!(ok); prop_assert_eq!(r.as_str(), s.as_str()); }
            Err(e) => { prop_assert!(!ok); prop_assert!(is_invalid(&e)); }
        }
    }

    #[test]
    fn user_ids_are_visible_ascii(s in "\\PC{0,140}|[!-~]{120,130}") {
        let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
        match UserId::parse(&s) {
            Ok(u) => { prop_assert!(ok); prop_assert_eq!(u.as_str(), s.as_str()); }
            Err(_) => prop_assert!(!ok),
        }
    }

    #[test]
    fn hold_and_booking_ids_round_trip(show in 1i64..1_000_000_000_000_000_000, key in any::<u128>()) {
        let text = format!("{show}-{}", uuid::Uuid::from_u128(key).hyphenated());
        let hold = HoldId::parse(&text).unwrap();
        prop_assert_eq!(hold.to_string(), text.clone());
        prop_assert_eq!(hold.show().get(), show);
        prop_assert_eq!(BookingId::parse(&text).unwrap().to_string(), text);
    }

    #[test]
    fn ids_from_anything_are_parsed_or_refused(s in "\\PC{0,60}|[0-9]{1,20}-[0-9a-fA-F-]{30,40}") {
        for r in [HoldId::parse(&s).map(|h| h.to_string()), BookingId::parse(&s).map(|b| b.to_string())] {
            match r {
                // One spelling per id: what parses is what the API hands out.
                Ok(t) => prop_assert_eq!(t, s.clone()),
                Err(e) => prop_assert!(is_invalid(&e)),
            }
        }
        match ShowId::parse(&s) {
            Ok(id) => { prop_assert!(id.get() > 0); prop_assert_eq!(id.to_string(), s); }
            Err(e) => prop_assert!(is_invalid(&e)),
        }
    }

    #[test]
    fn ttls_are_one_to_3600_seconds(secs in any::<i64>()) {
        match HoldTtl::from_secs(secs) {
            Ok(t) => prop_assert!((1..=3600).contains(&(t.secs() as i64)) && t.secs() as i64 == secs),
            Err(e) => { prop_assert!(!(1..=3600).contains(&secs)); prop_assert!(is_invalid(&e)); }
        }
    }

    #[test]
    fn selections_are_distinct_and_bounded(labels in proptest::collection::vec("[A-C][1-4]|\\PC{0,4}", 0..14), max in 1usize..12) {
        let r = SeatSelection::parse(labels.iter().map(String::as_str), max);
        let distinct = labels.iter().collect::<std::collections::HashSet<_>>().len() == labels.len();
        let all_valid = labels.iter().all(|l| SeatLabel::parse(l).is_ok());
        let ok = !labels.is_empty() && labels.len() <= max && distinct && all_valid;
        prop_assert_eq!(r.is_ok(), ok);
        if !ok { prop_assert!(invalid(r)); }
    }

    #[test]
    fn categories_and_currencies_never_panic(s in "\\PC{0,40}") {
        let _ = Category::parse(&s);
        if let Ok(c) = Currency::parse(&s) {
            prop_assert!(c.as_str().len() == 3 && c.as_str().bytes().all(|b| b.is_ascii_uppercase()));
        }
    }
}

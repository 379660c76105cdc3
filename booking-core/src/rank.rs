//! Ranking groups of free seats, best first: pure, no database, so every rule is tested
//! on hand-drawn seat maps (see the tests at the end).
//!
//! # What "best" means (API.md, "Best available")
//!
//! - Rows: the row about two thirds back from the front is best; the others rank by
//!   their distance from it, towards the front and back alike. With `R` rows the ideal
//!   row is `2(R-1)/3`; a row's *tier* is `|3r - 2(R-1)|` (three times its distance, in
//!   integers). Rows of one tier are of the same quality.
//! - Within a row: the group whose centre is nearest the row's centre
//!   (`|first + last - (n + 1)|` for a row of `n` seats).
//! - Adjacent groups lie in one run of free seats: consecutive numbers of one row with
//!   no aisle between them.
//! - A group *strands* a seat when it leaves exactly one free seat between itself and a
//!   taken seat, an aisle or the row's end. Such a group ranks after every group that
//!   strands nothing in a row of the same tier or better: "quality" in API.md's rule is
//!   the row's tier. So a stranding group is chosen only when every non-stranding
//!   group lies in a worse row (or none is left at all).
//!
//! The ranking key is therefore `(tier, strands, centre distance, row, first seat)`;
//! of two rows of one tier the one further back wins (the ideal row is behind the
//! middle, so the house leans back), of two equally central groups the left one.
//!
//! # Cost
//!
//! [`rank`] makes one pass over the seats: each run of free seats is met once and each
//! of its windows scored in O(1) (a sliding count of seats of the wrong category), and
//! only the best `k` windows are kept in a bounded heap (O(seats · log k)), never a
//! sort of all windows. Groups of scattered seats (not `adjacent`, and no run is long
//! enough) are built from the rows nearest a few anchor rows, each visiting only the
//! rows it needs. The stranding rule is a rule of side-by-side groups: scattered
//! groups are only offered when no run is long enough, and take seats singly anyway.

use std::collections::{BinaryHeap, HashSet};

/// One seat as the ranking sees it. A house is a slice of places in seat-map order:
/// row index (0 = front), then number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Row index, 0 at the front; rows are numbered without gaps.
    pub row: u32,
    /// Seat number in the row, from 1.
    pub number: u16,
    /// An aisle runs right after this seat.
    pub aisle_after: bool,
    /// Neither booked nor held (a hold past its `expires_at` does not count).
    pub free: bool,
    /// Of the category asked for (every seat is, when none was asked).
    pub eligible: bool,
}

/// What the caller wants: `count` seats, side by side or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Seats in the group; `0` gives no group.
    pub count: usize,
    /// Only groups side by side in one row, not across an aisle. Without it, such
    /// groups still come first; scattered ones only when none fits.
    pub adjacent: bool,
}

/// A candidate group: indexes into the house, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Indexes of its seats into the house passed to [`rank`], ascending (seat-map
    /// order).
    pub seats: Vec<usize>,
    /// Leaves a single free seat stranded.
    pub strands: bool,
    key: Key,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    tier: u32,
    strands: bool,
    /// For scattered groups: how many rows they span (fewer is closer together).
    spread: u32,
    centre: u32,
    /// Rows from the back: of two rows of one tier, the one further back wins.
    back: u32,
    first: u16,
}

/// The tier of row `row` among `rows` rows: 0 for the row two thirds back, growing
/// with the distance from it (towards the front and the back alike).
fn tier(row: u32, rows: u32) -> u32 {
    (3 * i64::from(row) - 2 * (i64::from(rows) - 1)).unsigned_abs() as u32
}

/// The rows of a house: `(first index, end index)` of each, front first.
fn rows_of(house: &[Place]) -> Vec<(usize, usize)> {
    let mut rows = Vec::new();
    let mut start = 0;
    for i in 1..=house.len() {
        if i == house.len() || house[i].row != house[start].row {
            rows.push((start, i));
            start = i;
        }
    }
    rows
}

/// The best groups of free seats for `want`, best first, at most `k` of them (they
/// may overlap). Empty when no group satisfies the request.
///
/// Adjacent groups are always preferred: without `want.adjacent` they are still the
/// seats closest together, and scattered groups are offered only when no run of free
/// seats is long enough.
pub fn rank(house: &[Place], want: Want, k: usize) -> Vec<Group> {
    if want.count == 0 || k == 0 || house.is_empty() {
        return Vec::new();
    }
    let groups = adjacent_groups(house, want.count, k);
    if groups.is_empty() && !want.adjacent {
        return scattered_groups(house, want.count, k);
    }
    groups
}

fn adjacent_groups(house: &[Place], count: usize, k: usize) -> Vec<Group> {
    let rows = rows_of(house);
    let row_count = rows.len() as u32;
    // A max-heap of the best k: the worst kept window is on top, ready to be evicted.
    let mut best: BinaryHeap<(Key, usize)> = BinaryHeap::with_capacity(k + 1);
    for (row, &(start, end)) in rows.iter().enumerate() {
        // The row's position, not its stored index: robust to gaps in the numbering.
        let row = row as u32;
        let row_tier = tier(row, row_count);
        let seats_in_row = u32::from(house[end - 1].number);
        let mut run_start = None;
        for i in start..end {
            let p = house[i];
            if p.free && run_start.is_none() {
                run_start = Some(i);
            }
            // The run ends at this seat when it is the last free one before a taken
            // seat, an aisle or the row's end.
            let closes = p.free && (p.aisle_after || i + 1 == end || !house[i + 1].free);
            if !p.free {
                run_start = None;
            } else if closes {
                let a = run_start.take().expect("a free seat opened a run");
                let rank_of_row = (row_tier, row_count - 1 - row);
                windows_of_run(house, a, i, count, rank_of_row, seats_in_row, &mut best, k);
            }
        }
    }
    let mut kept = best.into_vec();
    kept.sort_unstable();
    kept.into_iter()
        .map(|(key, s)| Group {
            seats: (s..s + count).collect(),
            strands: key.strands,
            key,
        })
        .collect()
}

/// Scores every window of `count` seats of the run `a..=b` and keeps the best `k`.
#[allow(clippy::too_many_arguments)]
fn windows_of_run(
    house: &[Place],
    a: usize,
    b: usize,
    count: usize,
    (row_tier, row_back): (u32, u32),
    seats_in_row: u32,
    best: &mut BinaryHeap<(Key, usize)>,
    k: usize,
) {
    if b + 1 - a < count {
        return;
    }
    // Sliding count of seats of another category inside the window.
    let mut wrong = house[a..a + count].iter().filter(|p| !p.eligible).count();
    for s in a..=b + 1 - count {
        if s > a {
            wrong -= usize::from(!house[s - 1].eligible);
            wrong += usize::from(!house[s + count - 1].eligible);
        }
        if wrong > 0 {
            continue;
        }
        let e = s + count - 1;
        let (first, last) = (house[s].number, house[e].number);
        let key = Key {
            tier: row_tier,
            strands: s - a == 1 || b - e == 1,
            spread: 0,
            centre: (i64::from(first) + i64::from(last) - i64::from(seats_in_row) - 1)
                .unsigned_abs() as u32,
            back: row_back,
            first,
        };
        if best.len() < k {
            best.push((key, s));
        } else if best.peek().is_some_and(|top| (key, s) < *top) {
            best.pop();
            best.push((key, s));
        }
    }
}

/// How many anchor rows scattered groups are built around.
const SCATTER_ANCHORS: usize = 8;

/// Groups of seats not side by side, as close together as possible: for each of the
/// best few rows that have a free seat (the anchors), the free seats nearest the
/// anchor row's centre, then those of the nearest rows (the better row first) until
/// `count` are found. Groups spanning fewer rows rank first.
fn scattered_groups(house: &[Place], count: usize, k: usize) -> Vec<Group> {
    let rows = rows_of(house);
    let row_count = rows.len() as u32;
    // Each row's free seats, nearest its centre first: sorts each seat once in all.
    let by_row: Vec<Vec<usize>> = rows
        .iter()
        .map(|&(start, end)| {
            let n = i64::from(house[end - 1].number) + 1;
            let mut free: Vec<usize> = (start..end)
                .filter(|&i| house[i].free && house[i].eligible)
                .collect();
            free.sort_by_key(|&i| ((2 * i64::from(house[i].number) - n).abs(), i));
            free
        })
        .collect();
    if by_row.iter().map(Vec::len).sum::<usize>() < count {
        return Vec::new();
    }
    let mut anchors: Vec<usize> = (0..rows.len()).filter(|&r| !by_row[r].is_empty()).collect();
    anchors.sort_by_key(|&r| (tier(r as u32, row_count), r));
    anchors.truncate(SCATTER_ANCHORS.min(k));

    let mut seen = HashSet::new();
    let mut groups = Vec::new();
    for anchor in anchors {
        let mut seats = Vec::with_capacity(count);
        let mut spread = 0;
        let mut distance = 0;
        while seats.len() < count && distance < rows.len() {
            // The two rows at this distance, the better one first.
            let mut pair: Vec<usize> = [anchor.checked_sub(distance), Some(anchor + distance)]
                .into_iter()
                .flatten()
                .filter(|&r| r < rows.len())
                .collect();
            pair.dedup();
            pair.sort_by_key(|&r| tier(r as u32, row_count));
            for r in pair {
                let take = (count - seats.len()).min(by_row[r].len());
                if take > 0 {
                    seats.extend_from_slice(&by_row[r][..take]);
                    spread += 1;
                }
            }
            distance += 1;
        }
        seats.sort_unstable();
        if seats.len() == count && seen.insert(seats.clone()) {
            let key = Key {
                tier: tier(anchor as u32, row_count),
                strands: false,
                spread,
                centre: 0,
                back: row_count - 1 - anchor as u32,
                first: house[seats[0]].number,
            };
            groups.push(Group {
                seats,
                strands: false,
                key,
            });
        }
    }
    groups.sort_by_key(|g| g.key);
    groups
}

#[cfg(test)]
mod tests {
    //! Seat maps: one string a row, front row first. `.` free, `x` taken, `p` a free
    //! premium seat, `P` a taken one, `|` an aisle after the seat before it. In the
    //! expected maps, `#` marks the seats chosen.
    use super::*;

    fn house(rows: &[&str]) -> Vec<Place> {
        let mut places = Vec::new();
        for (r, line) in rows.iter().enumerate() {
            let mut number = 0u16;
            for ch in line.chars() {
                match ch {
                    '|' => {
                        let last: &mut Place = places.last_mut().expect("aisle after a seat");
                        last.aisle_after = true;
                    }
                    '.' | 'x' | 'p' | 'P' => {
                        number += 1;
                        places.push(Place {
                            row: r as u32,
                            number,
                            aisle_after: false,
                            free: ch == '.' || ch == 'p',
                            // Tests that ask for premium only: see `premium`.
                            eligible: true,
                        });
                    }
                    ' ' => {}
                    other => panic!("unexpected {other:?} in a seat map"),
                }
            }
        }
        places
    }

    /// The same house, where only premium seats (`p`, `P`) may be chosen.
    fn premium(rows: &[&str]) -> Vec<Place> {
        let kinds: Vec<bool> = rows
            .iter()
            .flat_map(|l| l.chars().filter(|c| ".xpP".contains(*c)))
            .map(|c| c == 'p' || c == 'P')
            .collect();
        let mut h = house(rows);
        for (p, is_premium) in h.iter_mut().zip(kinds) {
            p.eligible = is_premium;
        }
        h
    }

    /// The map with `group` drawn in as `#`.
    fn draw(rows: &[&str], group: &[usize]) -> Vec<String> {
        let mut i = 0;
        rows.iter()
            .map(|line| {
                line.chars()
                    .map(|ch| {
                        if ".xpP".contains(ch) {
                            let mark = if group.contains(&i) { '#' } else { ch };
                            i += 1;
                            mark
                        } else {
                            ch
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn best(rows: &[&str], count: usize, adjacent: bool) -> Vec<String> {
        pick(rows, &house(rows), count, adjacent)
    }

    fn pick(rows: &[&str], h: &[Place], count: usize, adjacent: bool) -> Vec<String> {
        let groups = rank(h, Want { count, adjacent }, 16);
        let first = groups.first().map(|g| g.seats.clone()).unwrap_or_default();
        draw(rows, &first)
    }

    #[test]
    fn the_row_two_thirds_back_and_the_centre_of_it_is_best() {
        let rows = [
            "..........", // A, front
            "..........",
            "..........", // C: two thirds back of rows 0..3 is row 2
            "..........",
        ];
        assert_eq!(
            best(&rows, 2, true),
            ["..........", "..........", "....##....", ".........."]
        );
    }

    #[test]
    fn rows_rank_by_distance_from_the_ideal_row_and_ties_go_back() {
        // Seven rows: the ideal is row 4 (E). D and F are as near; F is further back.
        let rows = [
            "......", "......", "......", "......", "xxxxxx", // E, full
            "......", "......",
        ];
        assert_eq!(
            best(&rows, 2, true),
            ["......", "......", "......", "......", "xxxxxx", "..##..", "......"]
        );
        // With E and F full, D (one row from E) beats G (two rows from it).
        let rows = [
            "......", "......", "......", "......", "xxxxxx", "xxxxxx", "......",
        ];
        assert_eq!(
            best(&rows, 2, true),
            ["......", "......", "......", "..##..", "xxxxxx", "xxxxxx", "......"]
        );
    }

    #[test]
    fn an_aisle_breaks_adjacency() {
        // One row, aisle after seat 4; the free run 3..6 spans the aisle.
        let rows = ["xx..|..xx"];
        assert_eq!(best(&rows, 3, true), ["xx..|..xx"], "no group of 3");
        assert_eq!(best(&rows, 2, true), ["xx##|..xx"]);
    }

    #[test]
    fn a_row_with_an_aisle_picks_the_centre_block_not_across_it() {
        // 12 seats, aisles after 3 and 9: the centre block 4..9 has the centre seats.
        // The centred 5..8 would leave 4 and 9 alone by the aisles: 4..7 leaves a pair.
        let rows = ["...|......|..."];
        assert_eq!(best(&rows, 4, true), ["...|####..|..."]);
        // Six fit exactly in the centre block.
        assert_eq!(best(&rows, 6, true), ["...|######|..."]);
        // Seven fit nowhere side by side.
        assert_eq!(best(&rows, 7, true), ["...|......|..."]);
    }

    #[test]
    fn a_nearly_full_row_is_not_left_with_a_stranded_single() {
        // Free: 3..5. Any pair leaves one seat alone next to a taken seat; with one
        // row there is no other choice, so the most central pair it is.
        let rows = ["xx...xxx"];
        assert_eq!(best(&rows, 2, true), ["xx.##xxx"]);

        // Rows B and D are of one tier (one row from the ideal row C, which is full).
        // Any pair in B strands a seat; D takes a pair cleanly, though off-centre.
        let rows = [
            "xxxxxxxx", // A
            "xx...xxx", // B: tier |3-6| = 3
            "xxxxxxxx", // C: the ideal row, full
            "......xx", // D: tier |9-6| = 3
        ];
        assert_eq!(
            best(&rows, 2, true),
            ["xxxxxxxx", "xx...xxx", "xxxxxxxx", "..##..xx"]
        );
    }

    #[test]
    fn a_group_in_a_better_row_may_strand_a_single_when_no_clean_one_is_as_good() {
        let rows = [
            "........", // A: tier 6
            "........", // B: tier 3
            "x...xxxx", // C: ideal; a pair strands one of the 3 free seats
            "xxxxxxxx", // D
        ];
        // No clean pair in row C: the better row wins, stranding one seat.
        assert_eq!(
            best(&rows, 2, true),
            ["........", "........", "x.##xxxx", "xxxxxxxx"]
        );
        // In the same row, a clean group beats a more central stranding one. Free run
        // 3..7 of 10: 5+6 (the centre) would leave 7 alone, 4+5 would leave 3; 6+7
        // leaves 3..5 together.
        let rows = ["..........", "..........", "xx.....xxx", ".........."];
        assert_eq!(
            best(&rows, 2, true),
            ["..........", "..........", "xx...##xxx", ".........."]
        );
    }

    #[test]
    fn a_stranded_seat_counts_next_to_an_aisle_and_a_row_end() {
        // Free run 1..3 ends at an aisle: a pair leaves a single at the row end or
        // at the aisle either way; the other block 4..7 fits the pair cleanly
        // (4+5 leaves 6,7 together).
        let rows = ["...|....x"];
        assert_eq!(best(&rows, 2, true), ["...|##..x"]);
    }

    #[test]
    fn a_house_with_only_singles_left_has_no_adjacent_group() {
        let rows = [".x.x.", "x.x.x", ".x.x."];
        assert_eq!(best(&rows, 2, true), [".x.x.", "x.x.x", ".x.x."]);
        assert!(rank(
            &house(&rows),
            Want {
                count: 2,
                adjacent: true
            },
            16
        )
        .is_empty());
        // One seat is still fine, and the best single is the ideal row's centre... row
        // 1 (ideal of 3 rows is 1.33 -> row 1) has seats 2 and 4, equally central.
        assert_eq!(best(&rows, 1, true), [".x.x.", "x#x.x", ".x.x."]);
    }

    #[test]
    fn not_adjacent_takes_the_best_seats_close_together() {
        // Only singles left: two seats of the ideal row.
        let rows = [".x.x.", "x.x.x", ".x.x."];
        assert_eq!(best(&rows, 2, false), [".x.x.", "x#x#x", ".x.x."]);
        // Three: the ideal row's two, then the nearest row's centre seat.
        assert_eq!(best(&rows, 3, false), [".x.x.", "x#x#x", ".x#x."]);
        // When a side-by-side group exists, it is preferred.
        let rows = ["x.x.x", "xx..x", ".x.x."];
        assert_eq!(best(&rows, 2, false), ["x.x.x", "xx##x", ".x.x."]);
        // Not enough seats at all.
        assert_eq!(best(&["x.x"], 2, false), ["x.x"]);
    }

    #[test]
    fn a_category_limits_the_seats_but_not_the_stranding_rule() {
        // Only row B is premium, its free run B2..B5. The centred 3+4 would leave B2
        // and B5 alone; 2+3 leaves 4+5 together.
        let rows = ["......", "PppppP", "......"];
        assert_eq!(
            pick(&rows, &premium(&rows), 2, true),
            ["......", "P##ppP", "......"]
        );
        // No premium group of 5.
        assert_eq!(
            pick(&rows, &premium(&rows), 5, true),
            ["......", "PppppP", "......"]
        );
    }

    #[test]
    fn only_the_best_k_are_kept_best_first() {
        let rows = ["..........", "..........", ".........."];
        let g = rank(
            &house(&rows),
            Want {
                count: 2,
                adjacent: true,
            },
            3,
        );
        assert_eq!(g.len(), 3);
        assert_eq!(draw(&rows, &g[0].seats)[1], "....##....");
        assert!(g.windows(2).all(|w| w[0].key <= w[1].key));
    }
}

//! Where a reader of the whole feed stands: one position per node.

use super::Position;
use std::collections::BTreeMap;

/// The last event handed out of each node's transactions. On one PostgreSQL it has
/// the one node 0 and is a single position; on a Citus formation each node's events
/// are one `(xid, id)` order of their own, cut at that node's watermark, so a reader
/// moves through each separately, by `(xid, id)`.
///
/// A node is the node whose transaction wrote the event, not the one that holds it
/// now: a shard move takes a show's events to another node with their `xid`s, and
/// they stay in the order of the node that wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    nodes: BTreeMap<i32, Position>,
}

impl Cursor {
    /// Every node at its start.
    pub fn start() -> Cursor {
        Cursor::default()
    }

    /// A cursor at `p` for `p`'s node, and at the start of every other.
    pub fn at(p: Position) -> Cursor {
        let mut c = Cursor::default();
        c.advance(p);
        c
    }

    /// The last event handed out of `node`'s transactions ([`Position::START`] of that
    /// node when none was).
    pub fn of(&self, node: i32) -> Position {
        self.nodes
            .get(&node)
            .copied()
            .unwrap_or(Position::start_of(node, 0))
    }

    /// Moves `p`'s node to `p` (never back).
    pub fn advance(&mut self, p: Position) {
        let at = self.nodes.entry(p.node).or_insert(p);
        if p.node_order() > at.node_order() {
            *at = p;
        }
    }

    /// Whether the event at `p` is at or before where the cursor stands on its node:
    /// handed out already.
    pub fn passed(&self, p: Position) -> bool {
        p.node_order() <= self.of(p.node).node_order()
    }

    /// Whether, this cursor being the feed's retention horizon ([`super::horizon`]), a
    /// follower of one show resuming after `since` may have lost events: an event of
    /// `since`'s node after `since` was pruned. Events of the show's later stays on other
    /// nodes are younger than `since`'s, and pruning goes by age on every node alike, so
    /// if one of them was pruned so was `since`'s own. A position of node 0 on a
    /// formation (before every event: node 0, the coordinator, holds none) is before
    /// every node's events.
    pub fn expired(&self, since: Position) -> bool {
        if since.node_order() < self.of(since.node).node_order() {
            return true;
        }
        since.node == 0 && self.nodes.keys().any(|n| *n != 0)
    }

    /// Each node's position, in node order.
    pub fn nodes(&self) -> impl Iterator<Item = Position> + '_ {
        self.nodes.values().copied()
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
    fn each_node_moves_on_its_own_and_never_back() {
        let mut c = Cursor::start();
        c.advance(pos("1.0.500.3"));
        c.advance(pos("2.0.40.9"));
        // A moved show's event written by node 1, in a later stay on node 2: node 1's.
        c.advance(pos("1.1.450.1"));
        assert_eq!(c.of(1), pos("1.0.500.3"), "never back");
        assert_eq!(c.of(2), pos("2.0.40.9"));
        assert!(c.passed(pos("1.1.499.7")) && !c.passed(pos("1.0.501.1")));
        assert!(c.passed(pos("2.3.40.9")) && !c.passed(pos("2.0.41.1")));
        assert!(!c.passed(pos("3.0.1.1")), "a node never read");
        assert_eq!(Cursor::at(pos("7.5")).of(0), pos("7.5"));
    }
}

-- Issue 20: webhooks routed per node on a Citus formation.
--
-- An endpoint's place in the feed (V9's `webhooks.routed_*`) is one `(xid, id)`
-- position: on a formation each node's transactions are an order of their own, cut at
-- that node's watermark (V16), so an endpoint needs one position per node, as the
-- feed's pump keeps (`feed::Cursor`). `webhook_cursors` holds them: a row per node
-- the endpoint has read events of, moved in the transaction that inserts their
-- deliveries. On plain PostgreSQL it stays empty and `routed_*` is the cursor, as
-- before. Like `webhooks`, a plain table on the coordinator.
CREATE TABLE webhook_cursors (
    webhook_id uuid    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    node       integer NOT NULL,
    xid        xid8    NOT NULL,
    id         bigint  NOT NULL,
    PRIMARY KEY (webhook_id, node)
);

-- A delivery's event's node and its show's stay on a node (V16's `node` and `epoch`):
-- with the xid and id, its feed position, which its `webhook-id` is. A show's events
-- are in `(epoch, xid, id)` order across shard moves, so that is the order in which an
-- endpoint gets them. Both 0 on plain PostgreSQL (constant defaults: no rewrite),
-- where the order is `(xid, id)` as before.
ALTER TABLE webhook_deliveries
    ADD COLUMN node integer NOT NULL DEFAULT 0,
    ADD COLUMN epoch integer NOT NULL DEFAULT 0;
DROP INDEX webhook_deliveries_pending;
CREATE INDEX webhook_deliveries_pending
    ON webhook_deliveries (webhook_id, show_id, epoch, xid, event_id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

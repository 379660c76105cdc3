-- pgbench twin of GET /shows/{id}/seats: booking-core's seat-map query (seats.rs,
-- `seat_map`) on a 1,000-seat show (20 rows x 50, 100 seats held), all rows fetched.
-- Variables: show.
SELECT s.label, s.section, s.row_label, s.number, s.category, s.aisle_after, s.features,
       s.block_id, s.booking_id IS NOT NULL AS booked,
       (h.status = 'active' AND h.expires_at > now()) IS TRUE AS held,
       s.xmin::text || CASE WHEN h.status = 'active' AND h.expires_at <= now() THEN 'x' ELSE '' END AS version
  FROM seats s LEFT JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
 WHERE s.show_id = :show
 ORDER BY s.row_index, s.number;

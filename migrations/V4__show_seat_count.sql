-- A show's seats are fixed when it is created: store how many, so that listing shows
-- with their counts reads only the seats that are taken (through the partial indexes
-- seats_by_hold and seats_by_booking) instead of every seat of every show.
ALTER TABLE shows ADD COLUMN seats_total integer;
UPDATE shows SET seats_total = (SELECT count(*) FROM seats WHERE seats.show_id = shows.id);
ALTER TABLE shows ALTER COLUMN seats_total SET NOT NULL;

-- Issue 19, the waiting room: a show's queue settings, the queue's state and its
-- entries. Everything about a queue is here, so a restart of every server loses
-- nobody's place, and any server process may admit (see DESIGN.md "Waiting room").

-- A show's queue: admitted at `queue_admit_per_minute`, each admission valid for
-- `queue_admission_minutes`, at most `queue_max_seats` live seats per admitted buyer.
-- All three or none (none: no queue); a queue needs the sales_start it opens at.
ALTER TABLE shows
    ADD COLUMN queue_admit_per_minute int
        CHECK (queue_admit_per_minute BETWEEN 1 AND 100000),
    ADD COLUMN queue_admission_minutes int
        CHECK (queue_admission_minutes BETWEEN 1 AND 1440),
    ADD COLUMN queue_max_seats int CHECK (queue_max_seats BETWEEN 1 AND 100),
    ADD CONSTRAINT shows_queue_whole CHECK (
        (queue_admit_per_minute IS NULL) = (queue_admission_minutes IS NULL)
        AND (queue_admission_minutes IS NULL) = (queue_max_seats IS NULL)),
    ADD CONSTRAINT shows_queue_needs_start CHECK (
        queue_max_seats IS NULL OR sales_start IS NOT NULL);

-- The state of a show's queue, one row a queued show. This row is the queue's lock:
-- joins before the shuffle take it FOR SHARE (they run together), the shuffle, joins
-- after it and every admitting pass take it FOR UPDATE (one at a time).
CREATE TABLE queues (
    show_id bigint PRIMARY KEY REFERENCES shows (id),
    -- When the pre-queue was given its random order (NULL: not yet).
    shuffled_at timestamptz,
    -- The position the next joiner after the shuffle gets.
    next_position bigint NOT NULL DEFAULT 1,
    -- Positions 1 to this are admitted (or were, and expired).
    admitted_through bigint NOT NULL DEFAULT 0,
    -- The schedule's time of the last admission (NULL: none yet).
    last_admitted_at timestamptz
);

-- One entry a buyer and queued show: their place, then their admission.
CREATE TABLE queue_entries (
    show_id bigint NOT NULL REFERENCES queues (show_id) ON DELETE CASCADE,
    user_id text NOT NULL,
    joined_at timestamptz NOT NULL DEFAULT now(),
    -- Joined the pre-queue (before sales_start): ready at sales_start, not at joined_at.
    early boolean NOT NULL,
    -- 1 = first; NULL until the pre-queue is shuffled.
    position bigint,
    admitted_at timestamptz,
    admission_expires_at timestamptz,
    PRIMARY KEY (show_id, user_id),
    UNIQUE (show_id, position),
    CHECK ((admitted_at IS NULL) = (admission_expires_at IS NULL)),
    CHECK (admitted_at IS NULL OR position IS NOT NULL)
);

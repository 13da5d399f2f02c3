-- NoteFlow schema, version 1.
--
-- Times are milliseconds since the Unix epoch (INTEGER); audio durations and segment/turn bounds are
-- seconds (REAL). Ids are hyphenated UUID strings. Every child row belongs to a meeting, directly or
-- through a job, and goes with it (ON DELETE CASCADE; the store enables foreign_keys).

CREATE TABLE meetings (
    id         TEXT    NOT NULL PRIMARY KEY,
    title      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE meeting_audio (
    meeting_id    TEXT NOT NULL PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    bytes         BLOB NOT NULL,
    duration_secs REAL NOT NULL,
    format_hint   TEXT
) STRICT;

CREATE TABLE segments (
    meeting_id TEXT    NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    start_secs REAL    NOT NULL,
    end_secs   REAL    NOT NULL,
    text       TEXT    NOT NULL,
    speaker    TEXT,
    PRIMARY KEY (meeting_id, idx)
) STRICT;

CREATE TABLE jobs (
    -- AUTOINCREMENT: a seq is never reused, even after its job is deleted, so listing cursors
    -- (`after_seq`) stay valid.
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    meeting_id       TEXT    NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    state            TEXT    NOT NULL
                     CHECK (state IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    progress         REAL    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    attempt          INTEGER NOT NULL CHECK (attempt >= 1),
    request_id       TEXT    UNIQUE,
    min_speakers     INTEGER CHECK (min_speakers >= 0),
    max_speakers     INTEGER CHECK (max_speakers >= 0),
    -- Speaker labels, each followed by a newline; a backslash or newline inside a label is written
    -- as \\ or \n. Empty when there are none.
    speakers         TEXT    NOT NULL DEFAULT '',
    segments_updated INTEGER NOT NULL DEFAULT 0 CHECK (segments_updated >= 0),
    error            TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    worker_id        TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    -- A claim (worker and lease) exists exactly while the job is RUNNING.
    CHECK ((state = 'RUNNING') = (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL))
) STRICT;

-- The queue (claim the lowest seq in state QUEUED), counts and listings filtered by state.
CREATE INDEX jobs_by_state ON jobs (state, seq);
-- Listings by meeting, and the cascade from meetings.
CREATE INDEX jobs_by_meeting ON jobs (meeting_id, seq);
-- At most one active job per meeting; also serves the lookup of that job.
CREATE UNIQUE INDEX jobs_active_per_meeting ON jobs (meeting_id) WHERE state IN ('QUEUED', 'RUNNING');

CREATE TABLE job_turns (
    job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    start_secs REAL    NOT NULL,
    end_secs   REAL    NOT NULL,
    speaker    TEXT    NOT NULL,
    PRIMARY KEY (job_id, idx)
) STRICT;

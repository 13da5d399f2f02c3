-- NoteFlow schema for PostgreSQL, version 1 (the SQLite schema at its version 2, in PostgreSQL's
-- types). Several server replicas share these tables; the invariants that must hold whatever they
-- do concurrently are constraints here, not checks in a process.
--
-- Times are milliseconds since the Unix epoch (bigint) from the clocks of the replicas, which are
-- expected to be synchronised (NTP): leases are compared across replicas. Audio durations and
-- segment/turn bounds are seconds (double precision). Every child row belongs to a meeting,
-- directly or through a job, and goes with it (ON DELETE CASCADE).
--
-- Every table is keyed so that a later version can add a tenant column in front of its key.

CREATE TABLE meetings (
    id         uuid   NOT NULL PRIMARY KEY,
    title      text   NOT NULL,
    created_at bigint NOT NULL
);

-- The audio's facts; its bytes are in meeting_audio_chunks.
CREATE TABLE meeting_audio (
    meeting_id    uuid             NOT NULL PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    size_bytes    bigint           NOT NULL CHECK (size_bytes >= 0),
    duration_secs double precision NOT NULL,
    format_hint   text
);

-- The audio's bytes in chunks of at most 1 MiB, in order: no single value is large enough to strain
-- the protocol or the server's memory, and a reader streams them one by one.
CREATE TABLE meeting_audio_chunks (
    meeting_id uuid    NOT NULL REFERENCES meeting_audio (meeting_id) ON DELETE CASCADE,
    idx        integer NOT NULL CHECK (idx >= 0),
    bytes      bytea   NOT NULL,
    PRIMARY KEY (meeting_id, idx)
);

CREATE TABLE segments (
    meeting_id uuid             NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    idx        integer          NOT NULL CHECK (idx >= 0),
    start_secs double precision NOT NULL,
    end_secs   double precision NOT NULL,
    text       text             NOT NULL,
    speaker    text,
    PRIMARY KEY (meeting_id, idx)
);

CREATE TABLE jobs (
    -- An identity is never reused, even after its job is deleted, so listing cursors stay valid.
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               uuid    NOT NULL UNIQUE,
    meeting_id       uuid    NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    state            text    NOT NULL
                     CHECK (state IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    progress         real    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    attempt          integer NOT NULL CHECK (attempt >= 1),
    -- The idempotency key: unique across every job, whichever replica started it.
    request_id       text    UNIQUE,
    min_speakers     integer CHECK (min_speakers >= 0),
    max_speakers     integer CHECK (max_speakers >= 0),
    speakers         jsonb   NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(speakers) = 'array'),
    segments_updated integer NOT NULL DEFAULT 0 CHECK (segments_updated >= 0),
    error            text,
    created_at       bigint  NOT NULL,
    started_at       bigint,
    finished_at      bigint,
    worker_id        text,
    lease_expires_at bigint,
    cancel_requested boolean NOT NULL DEFAULT false,
    -- A claim (worker and lease) exists exactly while the job is RUNNING.
    CHECK ((state = 'RUNNING') = (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- The queue: claims take the lowest seq among QUEUED jobs.
CREATE INDEX jobs_queued ON jobs (seq) WHERE state = 'QUEUED';
-- The rescuer looks for RUNNING jobs whose lease lapsed.
CREATE INDEX jobs_running_leases ON jobs (lease_expires_at) WHERE state = 'RUNNING';
-- Counts and listings filtered by state.
CREATE INDEX jobs_by_state ON jobs (state, seq);
-- Listings by meeting, and the cascade from meetings.
CREATE INDEX jobs_by_meeting ON jobs (meeting_id, seq);
-- At most one active job per meeting, whichever replicas start jobs for it at the same time.
CREATE UNIQUE INDEX jobs_active_per_meeting ON jobs (meeting_id) WHERE state IN ('QUEUED', 'RUNNING');

CREATE TABLE job_turns (
    job_id     uuid             NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx        integer          NOT NULL,
    start_secs double precision NOT NULL,
    end_secs   double precision NOT NULL,
    speaker    text             NOT NULL,
    PRIMARY KEY (job_id, idx)
);

-- Every replica LISTENs on channel `noteflow_jobs`; this trigger tells them what changed, whoever
-- changed it, in the same transaction (a notice is delivered only if the change commits). The
-- payload is "<kind> <job id>"; heartbeats that only extend a lease stay silent.
CREATE FUNCTION noteflow_job_notice() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    IF TG_OP = 'INSERT' OR (NEW.state = 'QUEUED' AND OLD.state <> 'QUEUED') THEN
        kind := 'queued';
    ELSIF NEW.state <> OLD.state AND NEW.state IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
        kind := 'ended';
    ELSIF NEW.cancel_requested AND NOT OLD.cancel_requested THEN
        kind := 'cancel';
    ELSIF NEW.state <> OLD.state OR NEW.progress <> OLD.progress THEN
        kind := 'progressed';
    ELSE
        RETURN NULL;
    END IF;
    PERFORM pg_notify('noteflow_jobs', kind || ' ' || NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notice AFTER INSERT OR UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION noteflow_job_notice();

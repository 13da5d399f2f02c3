-- NoteFlow schema, version 2: a job's speaker labels as a JSON array of strings.
--
-- Version 1 wrote them in a hand-made text encoding (each label followed by a newline, backslash
-- and newline escaped). JSON needs no codec of ours, SQLite can check it, and PostgreSQL reads the
-- same text as `jsonb`.
--
-- The conversion of each version-1 list is done by `noteflow_speakers_v1_to_json`, a function the
-- store registers on its connection while it migrates: it fails on a malformed list, which aborts
-- the migration and leaves the database at version 1.

ALTER TABLE jobs ADD COLUMN speakers_json TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(speakers_json) AND json_type(speakers_json) = 'array');

UPDATE jobs SET speakers_json = noteflow_speakers_v1_to_json(speakers) WHERE speakers <> '';

ALTER TABLE jobs DROP COLUMN speakers;

ALTER TABLE jobs RENAME COLUMN speakers_json TO speakers;

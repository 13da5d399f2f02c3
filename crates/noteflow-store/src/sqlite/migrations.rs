//! The schema of [`SqliteStore`](super::SqliteStore): `migrations/NNNN_*.sql`, embedded in the
//! binary and applied in order at open, each in one IMMEDIATE transaction together with its bump
//! of `PRAGMA user_version` (the number of migrations applied), so a failed migration leaves the
//! database as it was.
//!
//! A conversion SQL cannot express is written in Rust as a SQL function that the script calls;
//! such functions exist on the connection only while migrations run.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::{Connection, TransactionBehavior};

use crate::BoxError;

/// The schema, one migration per entry, applied in order. Never edit an entry once released: add one.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_speakers_json.sql"),
];

/// Called by migration 2: a version-1 speaker list as a JSON array of strings.
const SPEAKERS_V1_TO_JSON: &str = "noteflow_speakers_v1_to_json";

/// Brings the database to the latest schema version. Refuses a database whose version is newer
/// than this build knows (written by a newer noteflow).
pub(super) fn migrate(conn: &mut Connection) -> Result<(), BoxError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(version)
        .map_err(|_| format!("the database has an invalid schema version ({version})"))?;
    if applied > known {
        return Err(format!(
            "the database has schema version {applied}, but this noteflow only knows versions up to \
             {known}: it was written by a newer noteflow. Upgrade noteflow, or use another data directory"
        )
        .into());
    }
    if applied == known {
        return Ok(());
    }
    conn.create_scalar_function(
        SPEAKERS_V1_TO_JSON,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        speakers_v1_to_json,
    )?;
    let outcome = apply(conn, applied);
    conn.remove_function(SPEAKERS_V1_TO_JSON, 1)?;
    outcome
}

/// Applies the migrations after the first `applied`.
fn apply(conn: &mut Connection, applied: usize) -> Result<(), BoxError> {
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let target = index + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration to schema version {target} failed: {e}"))?;
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
        tracing::info!(version = target, "applied database migration");
    }
    Ok(())
}

fn speakers_v1_to_json(ctx: &Context<'_>) -> rusqlite::Result<String> {
    let text: String = ctx.get(0)?;
    let labels =
        decode_v1_speakers(&text).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
    serde_json::to_string(&labels).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
}

/// Schema version 1's `jobs.speakers`: each label followed by a newline, a backslash or newline
/// inside a label written as `\\` or `\n`.
fn decode_v1_speakers(text: &str) -> Result<Vec<String>, String> {
    let malformed = || format!("malformed version-1 speaker list {text:?}");
    let mut labels = Vec::new();
    let mut label = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => labels.push(std::mem::take(&mut label)),
            '\\' => match chars.next() {
                Some('\\') => label.push('\\'),
                Some('n') => label.push('\n'),
                _ => return Err(malformed()),
            },
            c => label.push(c),
        }
    }
    if label.is_empty() {
        Ok(labels)
    } else {
        Err(malformed())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::params;

    use super::*;
    use crate::{JobId, JobState, JobStore, SqliteStore, StoreError};

    #[test]
    fn version_1_speaker_lists_decode() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("\n", &[""]),
            ("\n\n", &["", ""]),
            ("A\nB\n", &["A", "B"]),
            ("a\\nb\nc\\\\n\n\\\\\n", &["a\nb", "c\\n", "\\"]),
        ];
        for (text, labels) in cases {
            assert_eq!(decode_v1_speakers(text).unwrap(), *labels, "{text:?}");
        }
        for malformed in ["A", "A\nB", "bad\\x\n", "trailing\\"] {
            let err = decode_v1_speakers(malformed).unwrap_err();
            assert!(err.contains("malformed"), "{malformed:?}: {err}");
        }
    }

    /// A data directory as noteflow left it at schema version 1, with one meeting and one job per
    /// entry of `speakers` (the column's text, in version 1's encoding).
    fn version_1_data_dir(dir: &Path, speakers: &[&str]) -> Vec<JobId> {
        let conn = Connection::open(dir.join("noteflow.db")).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let meeting = "123e4567-e89b-12d3-a456-426614174000";
        conn.execute(
            "INSERT INTO meetings (id, title, created_at) VALUES (?1, 'old', 1)",
            [meeting],
        )
        .unwrap();
        speakers
            .iter()
            .map(|text| {
                let id = JobId::new_random();
                conn.execute(
                    "INSERT INTO jobs (id, meeting_id, state, progress, attempt, speakers, \
                     created_at, finished_at) VALUES (?1, ?2, 'COMPLETED', 1, 1, ?3, 1, 2)",
                    params![id.to_string(), meeting, text],
                )
                .unwrap();
                id
            })
            .collect()
    }

    fn user_version(dir: &Path) -> i64 {
        Connection::open(dir.join("noteflow.db"))
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    /// The `jobs.speakers` column of job `id`, as stored.
    fn stored_speakers(conn: &Connection, id: JobId) -> String {
        conn.query_row(
            "SELECT speakers FROM jobs WHERE id = ?1",
            [id.to_string()],
            |row| row.get(0),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_version_1_database_keeps_its_speakers() {
        let dir = tempfile::tempdir().unwrap();
        let lists: &[(&str, &[&str])] = &[
            ("SPEAKER_00\nSPEAKER_01\n", &["SPEAKER_00", "SPEAKER_01"]),
            (
                "back\\\\slash\nnew\\nline\n\nboth\\\\\\n\\\\n\n",
                &["back\\slash", "new\nline", "", "both\\\n\\n"],
            ),
            ("", &[]),
            ("\n", &[""]),
            ("[\"json-like\"]\n", &["[\"json-like\"]"]),
        ];
        let texts: Vec<&str> = lists.iter().map(|(text, _)| *text).collect();
        let ids = version_1_data_dir(dir.path(), &texts);

        let store = SqliteStore::open(dir.path()).unwrap();
        for (id, (text, labels)) in ids.iter().zip(lists) {
            let job = store.get_job(*id).await.unwrap().unwrap();
            assert_eq!(job.speakers, *labels, "from {text:?}");
            assert_eq!(
                job.state,
                JobState::Completed,
                "the rest of the row is kept"
            );
        }
        drop(store);
        assert_eq!(user_version(dir.path()), MIGRATIONS.len() as i64);

        // The column holds JSON now, and SQLite refuses anything else in it.
        let conn = Connection::open(dir.path().join("noteflow.db")).unwrap();
        assert_eq!(
            stored_speakers(&conn, ids[1]),
            r#"["back\\slash","new\nline","","both\\\n\\n"]"#
        );
        for bad in ["SPEAKER_00\n", "{}", "\"A\""] {
            let refused = conn.execute(
                "UPDATE jobs SET speakers = ?1 WHERE id = ?2",
                params![bad, ids[0].to_string()],
            );
            assert!(refused.is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_malformed_version_1_list_stops_the_migration_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ids = version_1_data_dir(dir.path(), &["fine\n", "dangling\\"]);

        let err = SqliteStore::open(dir.path()).unwrap_err();
        let StoreError::Open { .. } = &err else {
            panic!("expected StoreError::Open, got {err:?}");
        };
        let message = err.to_string();
        assert!(message.contains("schema version 2"), "{message}");
        assert!(message.contains("dangling"), "{message}");

        assert_eq!(user_version(dir.path()), 1);
        let conn = Connection::open(dir.path().join("noteflow.db")).unwrap();
        assert_eq!(
            stored_speakers(&conn, ids[0]),
            "fine\n",
            "the rolled-back migration left version 1's data"
        );
    }
}

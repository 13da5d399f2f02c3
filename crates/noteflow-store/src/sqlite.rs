//! [`SqliteStore`]: embedded SQLite in a data directory.
//!
//! - The directory holds `noteflow.db` (plus SQLite's `-wal` and `-shm` files) and `noteflow.lock`.
//!   An exclusive lock on the latter, held for the store's lifetime, guarantees that one process at
//!   a time uses the directory; that is what lets the server treat every other worker's claim as
//!   abandoned at startup.
//! - WAL mode: one writer connection (behind a mutex: SQLite serialises writers anyway) and a small
//!   pool of read-only connections, so status reads are not queued behind writes.
//! - The schema lives in `migrations/`, embedded in the binary and applied in order at open; `PRAGMA
//!   user_version` records how many have been applied (`sqlite/migrations.rs`).
//! - SQLite calls block, so each call runs on tokio's blocking thread pool.
//! - What a call decides (errors, messages, the next state) comes from [`contract`](crate::contract);
//!   SQLite's own errors become [`StoreError::Backend`] at the edge of each call (busy and locked
//!   are [`BackendErrorKind::Contention`]), so nothing of `rusqlite` leaves this module.
//!
//! Every state-changing `UPDATE` carries its guard in its own `WHERE`: a worker's update checks the
//! claim (state RUNNING, attempt, worker), so a stale worker's write matches no row and changes
//! nothing; a cancel checks the state it read; recovery checks the claim and the expired lease it
//! read. The single writer and IMMEDIATE transactions already rule out a change between the read
//! and the write, so here the guards are defence in depth; they are also what keeps the same
//! statements correct in a store whose transactions run at READ COMMITTED (PostgreSQL), where an
//! update that matches nothing means another transaction got there first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Params, Row, ToSql,
    TransactionBehavior,
};

use crate::contract::{
    check_inputs_replaceable, check_queue_room, check_startable, claim_of, ending,
    heartbeat_answer, indexed_segments, into_meeting_page, into_page, lease_deadline,
    reuse_request_id, rows_to_fetch, usable_progress, zero_counts, CancelAction, Completion,
    Ending, RecoveryAction, CANCELLED_BEFORE_START, CANCELLED_WHILE_RUNNING,
};
use crate::{
    now_millis, AudioInfo, BackendErrorKind, BoxError, CancelRequest, Claim, Created, Heartbeat,
    IdError, Job, JobFilter, JobId, JobPage, JobResult, JobState, JobStore, Meeting, MeetingCursor,
    MeetingId, MeetingPage, Millis, NewJob, Outcome, Recovery, Segment, SegmentInput, StorageMode,
    StoreError, StoreResult, StoredAudio, TurnRecord, WorkerId,
};

mod migrations;

const DB_FILE: &str = "noteflow.db";
const LOCK_FILE: &str = "noteflow.lock";
/// Enough for concurrent status polling; each reader is one open file and a page cache.
const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times `cancel` reads the job again when its guarded update matched nothing (the job
/// changed state in between). Never more than once here (see the module documentation).
const CANCEL_ROUNDS: usize = 4;

/// Stores everything in `noteflow.db` inside a data directory that it locks for its lifetime.
pub struct SqliteStore {
    db: Arc<Db>,
}

struct Db {
    path: PathBuf,
    // Fields drop in declaration order: the readers close first so the writer, closing last, can
    // checkpoint and remove the WAL; the lock is released only after every connection is closed.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    writer: Mutex<Connection>,
    _lock: std::fs::File,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.db.path)
            .finish_non_exhaustive()
    }
}

fn open_error(db_path: &Path, source: impl Into<BoxError>) -> StoreError {
    StoreError::Open {
        path: db_path.display().to_string(),
        source: source.into(),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, applying any pending migrations. Fails
    /// with [`StoreError::Locked`] when another store (in this process or another) holds the
    /// directory, and with [`StoreError::Open`] when the directory cannot be created or locked or
    /// the database cannot be opened (not a database, or written by a newer version of noteflow).
    pub fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        let path = data_dir.join(DB_FILE);
        if data_dir.exists() && !data_dir.is_dir() {
            let why = format!("{} exists and is not a directory", data_dir.display());
            return Err(open_error(&path, why));
        }
        std::fs::create_dir_all(data_dir).map_err(|e| {
            open_error(
                &path,
                format!(
                    "cannot create the data directory {}: {e}",
                    data_dir.display()
                ),
            )
        })?;
        let lock = lock_data_dir(data_dir, &path)?;

        let mut writer = open_writer(&path).map_err(|e| open_error(&path, e))?;
        migrations::migrate(&mut writer).map_err(|e| open_error(&path, e))?;
        // Readers are opened after the migrations so they never see a half-built schema.
        let readers = (0..READERS)
            .map(|_| open_reader(&path).map(Mutex::new))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| open_error(&path, e))?;

        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(SqliteStore {
            db: Arc::new(Db {
                path,
                readers,
                next_reader: AtomicUsize::new(0),
                writer: Mutex::new(writer),
                _lock: lock,
            }),
        })
    }

    /// The database file (`<data_dir>/noteflow.db`).
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// Runs `work` on the writer connection, off the async runtime.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> CallResult<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || Ok(work(&mut lock(&db.writer))?)).await
    }

    /// Runs `work` on a reader connection, off the async runtime.
    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> CallResult<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || Ok(work(&mut db.reader())?)).await
    }
}

/// How a call on a connection fails: with an answer of the contract (an error for the caller), or
/// with a SQLite error, which [`backend_error`] turns into a [`StoreError`] when the call returns.
/// `?` works on both inside a call.
enum CallError {
    Store(StoreError),
    Sqlite(rusqlite::Error),
}

type CallResult<T> = Result<T, CallError>;

impl From<StoreError> for CallError {
    fn from(e: StoreError) -> Self {
        CallError::Store(e)
    }
}

impl From<rusqlite::Error> for CallError {
    fn from(e: rusqlite::Error) -> Self {
        CallError::Sqlite(e)
    }
}

impl From<CallError> for StoreError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Store(e) => e,
            CallError::Sqlite(e) => backend_error(e),
        }
    }
}

/// A SQLite error as the store reports it: busy and locked (another connection held the lock past
/// the busy timeout; the transaction was not applied) are contention, which a retry may get past.
fn backend_error(e: rusqlite::Error) -> StoreError {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => BackendErrorKind::Contention,
        _ => BackendErrorKind::Other,
    };
    StoreError::backend(kind, e)
}

impl Db {
    /// A free reader if there is one, else waits for one (rotating so waiters spread out).
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let count = self.readers.len();
        for offset in 0..count {
            match self.readers[(start + offset) % count].try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.readers[start % count])
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // Poisoning means an earlier call panicked while using the connection. Its transaction, if any,
    // was rolled back when the panic dropped it, so the connection itself is fine to reuse.
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn blocking<T, F>(work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

/// The data directory's lock file, locked exclusively: [`StoreError::Locked`] when another store
/// holds it, [`StoreError::Open`] (about `db_path`) when it cannot be opened or locked at all.
fn lock_data_dir(data_dir: &Path, db_path: &Path) -> StoreResult<std::fs::File> {
    let lock_path = data_dir.join(LOCK_FILE);
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            let why = format!("cannot open the lock file {}: {e}", lock_path.display());
            open_error(db_path, why)
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: data_dir.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            let why = format!("cannot lock {}: {e}", lock_path.display());
            Err(open_error(db_path, why))
        }
    }
}

fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // Set first, so that switching the journal mode waits for a lock rather than failing.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some file systems (network mounts) cannot do WAL; the store still works, with reads and
        // writes excluding each other.
        tracing::warn!(path = %path.display(), journal_mode = %mode, "SQLite could not enable WAL mode");
    }
    // Safe in WAL mode: a power loss may drop the last commits but never corrupts the database.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

const SELECT_JOB_BY_ID: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?1");

const SELECT_ACTIVE_JOB: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE meeting_id = ?1 AND state IN ('QUEUED', 'RUNNING')"
);

fn parse<T: FromStr<Err = IdError>>(text: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|e: IdError| StoreError::Corrupt(e.to_string()))
}

fn parse_state(text: &str) -> StoreResult<JobState> {
    JobState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown job state '{text}'")))
}

fn job_from_row(row: &Row<'_>) -> CallResult<Job> {
    Ok(Job {
        id: parse(&row.get::<_, String>("id")?)?,
        meeting_id: parse(&row.get::<_, String>("meeting_id")?)?,
        seq: row.get("seq")?,
        state: parse_state(&row.get::<_, String>("state")?)?,
        // Stored as the f64 widening of an f32, so narrowing gives the f32 back exactly.
        progress: row.get::<_, f64>("progress")? as f32,
        attempt: row.get("attempt")?,
        request_id: row.get("request_id")?,
        min_speakers: row.get("min_speakers")?,
        max_speakers: row.get("max_speakers")?,
        speakers: speakers_from_json(&row.get::<_, String>("speakers")?)?,
        segments_updated: row.get("segments_updated")?,
        error: row.get("error")?,
        created_at: row.get("created_at")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        worker_id: row.get("worker_id")?,
        lease_expires_at: row.get("lease_expires_at")?,
        cancel_requested: row.get("cancel_requested")?,
    })
}

/// The job row `sql` yields (a SELECT or an UPDATE ... RETURNING), if any.
fn query_job(conn: &Connection, sql: &str, params: impl Params) -> CallResult<Option<Job>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(job_from_row).transpose()
}

/// Like [`query_job`], for statements that must yield a row (the job was read in the same
/// transaction).
fn query_existing_job(conn: &Connection, sql: &str, params: impl Params) -> CallResult<Job> {
    query_job(conn, sql, params)?.ok_or(CallError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
}

fn meeting_exists(conn: &Connection, id: &str) -> CallResult<bool> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM meetings WHERE id = ?1")?;
    Ok(stmt.exists([id])?)
}

/// Checks, in the transaction of `conn`, that the meeting's audio or segments may be replaced.
fn check_meeting_idle(conn: &Connection, id: MeetingId, key: &str) -> CallResult<()> {
    let exists = meeting_exists(conn, key)?;
    let active = query_job(conn, SELECT_ACTIVE_JOB, [key])?.is_some();
    Ok(check_inputs_replaceable(id, exists, active)?)
}

/// Speaker labels in the `jobs.speakers` column: a JSON array of strings (schema version 2).
fn speakers_to_json(labels: &[String]) -> CallResult<String> {
    serde_json::to_string(labels)
        .map_err(|e| StoreError::backend(BackendErrorKind::Other, e).into())
}

fn speakers_from_json(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("malformed speaker list {text:?}: {e}")))
}

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    fn mode(&self) -> StorageMode {
        StorageMode::Sqlite
    }

    async fn create_meeting(&self, title: &str) -> StoreResult<Meeting> {
        let meeting = Meeting {
            id: MeetingId::new_random(),
            title: title.to_owned(),
            created_at: now_millis(),
            audio: None,
            segments: Vec::new(),
        };
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO meetings (id, title, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                meeting.id.to_string(),
                meeting.title,
                meeting.created_at
            ])?;
            Ok(meeting)
        })
        .await
    }

    async fn get_meeting(&self, id: MeetingId) -> StoreResult<Option<Meeting>> {
        self.read(move |conn| {
            let key = id.to_string();
            // One snapshot for the meeting, its audio and its segments.
            let tx = conn.transaction()?;
            let Some((title, created_at)) = tx
                .prepare_cached("SELECT title, created_at FROM meetings WHERE id = ?1")?
                .query_row([&key], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
            else {
                return Ok(None);
            };
            let audio = tx
                .prepare_cached(
                    "SELECT length(bytes), duration_secs, format_hint FROM meeting_audio \
                     WHERE meeting_id = ?1",
                )?
                .query_row([&key], |row| {
                    Ok(AudioInfo {
                        size_bytes: row.get(0)?,
                        duration_secs: row.get(1)?,
                        format_hint: row.get(2)?,
                    })
                })
                .optional()?;
            let segments = tx
                .prepare_cached(
                    "SELECT idx, start_secs, end_secs, text, speaker FROM segments \
                     WHERE meeting_id = ?1 ORDER BY idx",
                )?
                .query_map([&key], |row| {
                    Ok(Segment {
                        index: row.get(0)?,
                        start: row.get(1)?,
                        end: row.get(2)?,
                        text: row.get(3)?,
                        speaker: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(Meeting {
                id,
                title,
                created_at,
                audio,
                segments,
            }))
        })
        .await
    }

    async fn list_meetings(
        &self,
        limit: u32,
        after: Option<MeetingCursor>,
    ) -> StoreResult<MeetingPage> {
        let after = after.map(|c| (c.created_at, c.id.to_string()));
        self.read(move |conn| {
            let fetch = rows_to_fetch(limit);
            let sql = format!(
                "SELECT m.id, m.title, m.created_at, length(a.bytes), a.duration_secs, \
                 a.format_hint FROM meetings m LEFT JOIN meeting_audio a ON a.meeting_id = m.id \
                 {} ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
                if after.is_some() {
                    "WHERE (m.created_at, m.id) < (?, ?)"
                } else {
                    ""
                }
            );
            let mut args: Vec<&dyn ToSql> = Vec::new();
            if let Some((created_at, id)) = &after {
                args.push(created_at);
                args.push(id);
            }
            args.push(&fetch);
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(args.as_slice())?;
            let mut meetings = Vec::new();
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let size: Option<u64> = row.get(3)?;
                meetings.push(Meeting {
                    id: parse(&id)?,
                    title: row.get(1)?,
                    created_at: row.get(2)?,
                    audio: match size {
                        Some(size_bytes) => Some(AudioInfo {
                            size_bytes,
                            duration_secs: row.get(4)?,
                            format_hint: row.get(5)?,
                        }),
                        None => None,
                    },
                    segments: Vec::new(),
                });
            }
            Ok(into_meeting_page(meetings, limit))
        })
        .await
    }

    async fn delete_meeting(&self, id: MeetingId) -> StoreResult<bool> {
        self.write(move |conn| {
            // Audio, segments, jobs and their turns go with it (ON DELETE CASCADE).
            let deleted = conn
                .prepare_cached("DELETE FROM meetings WHERE id = ?1")?
                .execute([id.to_string()])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn put_audio(&self, id: MeetingId, audio: StoredAudio) -> StoreResult<()> {
        self.write(move |conn| {
            let key = id.to_string();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            check_meeting_idle(&tx, id, &key)?;
            tx.prepare_cached(
                "INSERT INTO meeting_audio (meeting_id, bytes, duration_secs, format_hint) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (meeting_id) DO UPDATE SET bytes = excluded.bytes, \
                 duration_secs = excluded.duration_secs, format_hint = excluded.format_hint",
            )?
            .execute(params![
                key,
                audio.bytes,
                audio.duration_secs,
                audio.format_hint
            ])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_audio(&self, id: MeetingId) -> StoreResult<Option<StoredAudio>> {
        self.read(move |conn| {
            let audio = conn
                .prepare_cached(
                    "SELECT bytes, duration_secs, format_hint FROM meeting_audio WHERE meeting_id = ?1",
                )?
                .query_row([id.to_string()], |row| {
                    Ok(StoredAudio {
                        bytes: row.get(0)?,
                        duration_secs: row.get(1)?,
                        format_hint: row.get(2)?,
                    })
                })
                .optional()?;
            Ok(audio)
        })
        .await
    }

    async fn replace_segments(
        &self,
        id: MeetingId,
        segments: Vec<SegmentInput>,
    ) -> StoreResult<u32> {
        // Before anything is looked up, as in every store (SQLite would store a NaN as NULL).
        let segments = indexed_segments(segments)?;
        self.write(move |conn| {
            let key = id.to_string();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            check_meeting_idle(&tx, id, &key)?;
            tx.prepare_cached("DELETE FROM segments WHERE meeting_id = ?1")?
                .execute([&key])?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO segments (meeting_id, idx, start_secs, end_secs, text, speaker) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for segment in &segments {
                    insert.execute(params![
                        key,
                        segment.index,
                        segment.start,
                        segment.end,
                        segment.text,
                        segment.speaker
                    ])?;
                }
            }
            tx.commit()?;
            Ok(segments.len() as u32)
        })
        .await
    }

    async fn create_job(&self, new: NewJob, max_queued: u64) -> StoreResult<Created> {
        self.write(move |conn| {
            let meeting_key = new.meeting_id.to_string();
            // IMMEDIATE takes the write lock up front: the checks below and the insert see the same
            // state, whatever else writes to the file.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

            if let Some(request_id) = &new.request_id {
                let by_request = concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs WHERE request_id = ?1"
                );
                if let Some(holder) = query_job(&tx, by_request, [request_id])? {
                    return Ok(reuse_request_id(&new, holder)?);
                }
            }

            let exists = meeting_exists(&tx, &meeting_key)?;
            let has_audio = tx
                .prepare_cached("SELECT 1 FROM meeting_audio WHERE meeting_id = ?1")?
                .exists([&meeting_key])?;
            check_startable(new.meeting_id, exists, has_audio)?;

            if let Some(active) = query_job(&tx, SELECT_ACTIVE_JOB, [&meeting_key])? {
                return Ok(Created::Existing(active));
            }

            let queued: u64 = tx
                .prepare_cached("SELECT COUNT(*) FROM jobs WHERE state = 'QUEUED'")?
                .query_row([], |row| row.get(0))?;
            check_queue_room(queued, max_queued)?;

            let insert = concat!(
                "INSERT INTO jobs (id, meeting_id, state, progress, attempt, request_id, \
                 min_speakers, max_speakers, created_at) \
                 VALUES (?1, ?2, 'QUEUED', 0, 1, ?3, ?4, ?5, ?6) RETURNING ",
                job_columns!()
            );
            let job = query_existing_job(
                &tx,
                insert,
                params![
                    JobId::new_random().to_string(),
                    meeting_key,
                    new.request_id,
                    new.min_speakers,
                    new.max_speakers,
                    now_millis()
                ],
            )?;
            tx.commit()?;
            Ok(Created::New(job))
        })
        .await
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.read(move |conn| query_job(conn, SELECT_JOB_BY_ID, [id.to_string()]))
            .await
    }

    async fn list_jobs(
        &self,
        filter: &JobFilter,
        limit: u32,
        after_seq: Option<i64>,
    ) -> StoreResult<JobPage> {
        let meeting = filter.meeting_id.map(|id| id.to_string());
        let state = filter.state.map(JobState::as_str);
        self.read(move |conn| {
            // Only the conditions in use go into the SQL, so the planner can pick the matching
            // index (a `?1 IS NULL OR ...` condition would hide it).
            let mut conditions = Vec::new();
            let mut args: Vec<&dyn ToSql> = Vec::new();
            if let Some(meeting) = &meeting {
                conditions.push("meeting_id = ?");
                args.push(meeting);
            }
            if let Some(state) = &state {
                conditions.push("state = ?");
                args.push(state);
            }
            if let Some(after_seq) = &after_seq {
                conditions.push("seq < ?");
                args.push(after_seq);
            }
            let fetch = rows_to_fetch(limit);
            args.push(&fetch);
            let where_clause = if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            };
            let sql = format!(
                "SELECT {} FROM jobs{where_clause} ORDER BY seq DESC LIMIT ?",
                job_columns!()
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(args.as_slice())?;
            let mut jobs = Vec::new();
            while let Some(row) = rows.next()? {
                jobs.push(job_from_row(row)?);
            }
            Ok(into_page(jobs, limit))
        })
        .await
    }

    async fn claim_next(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> StoreResult<Option<(Job, Claim)>> {
        let worker = worker.clone();
        self.write(move |conn| {
            let now = now_millis();
            // One statement: finding the oldest queued job and taking it cannot be split by another
            // claimer. The outer `state = 'QUEUED'` is the guard: at READ COMMITTED a concurrent
            // claimer of the same row would otherwise take it a second time (PostgreSQL would also
            // add FOR UPDATE SKIP LOCKED to the subquery so that it moves on to the next job).
            let claim = concat!(
                "UPDATE jobs SET state = 'RUNNING', worker_id = ?1, started_at = ?2, progress = 0, \
                 lease_expires_at = ?3 \
                 WHERE seq = (SELECT seq FROM jobs WHERE state = 'QUEUED' ORDER BY seq LIMIT 1) \
                 AND state = 'QUEUED' \
                 RETURNING ",
                job_columns!()
            );
            let job = query_job(
                conn,
                claim,
                params![worker.as_str(), now, lease_deadline(now, lease)],
            )?;
            Ok(job.map(|job| {
                let claim = claim_of(&job, worker);
                (job, claim)
            }))
        })
        .await
    }

    async fn heartbeat(
        &self,
        claim: &Claim,
        progress: Option<f32>,
        lease: Duration,
    ) -> StoreResult<Heartbeat> {
        let claim = claim.clone();
        let progress = usable_progress(progress).map(f64::from);
        self.write(move |conn| {
            let cancel_requested: Option<bool> = conn
                .prepare_cached(
                    "UPDATE jobs SET lease_expires_at = ?1, progress = MAX(progress, COALESCE(?2, progress)) \
                     WHERE id = ?3 AND state = 'RUNNING' AND attempt = ?4 AND worker_id = ?5 \
                     RETURNING cancel_requested",
                )?
                .query_row(
                    params![
                        lease_deadline(now_millis(), lease),
                        progress,
                        claim.job_id.to_string(),
                        claim.attempt,
                        claim.worker.as_str()
                    ],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(heartbeat_answer(cancel_requested))
        })
        .await
    }

    async fn finish(&self, claim: &Claim, outcome: Outcome) -> StoreResult<bool> {
        let Ending {
            state,
            progress,
            error,
            completion,
        } = ending(outcome)?;
        let claim = claim.clone();
        self.write(move |conn| {
            // NULL leaves a column as it is.
            let speakers = completion
                .as_ref()
                .map(|c| speakers_to_json(&c.result.speakers))
                .transpose()?;
            let segments_updated = completion.as_ref().map(|c| c.segments_updated);

            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let meeting_id: Option<String> = tx
                .prepare_cached(
                    "UPDATE jobs SET state = ?1, progress = COALESCE(?2, progress), \
                     error = COALESCE(?3, error), speakers = COALESCE(?4, speakers), \
                     segments_updated = COALESCE(?5, segments_updated), finished_at = ?6, \
                     worker_id = NULL, lease_expires_at = NULL \
                     WHERE id = ?7 AND state = 'RUNNING' AND attempt = ?8 AND worker_id = ?9 \
                     RETURNING meeting_id",
                )?
                .query_row(
                    params![
                        state.as_str(),
                        progress.map(f64::from),
                        error,
                        speakers,
                        segments_updated,
                        now_millis(),
                        claim.job_id.to_string(),
                        claim.attempt,
                        claim.worker.as_str()
                    ],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(meeting_id) = meeting_id else {
                // A stale claim: dropping the transaction rolls back (it changed nothing anyway).
                return Ok(false);
            };

            if let Some(Completion {
                result:
                    JobResult {
                        turns,
                        segment_speakers,
                        ..
                    },
                ..
            }) = completion
            {
                let job_key = claim.job_id.to_string();
                let mut insert_turn = tx.prepare_cached(
                    "INSERT INTO job_turns (job_id, idx, start_secs, end_secs, speaker) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (index, turn) in (0i64..).zip(&turns) {
                    insert_turn.execute(params![
                        job_key,
                        index,
                        turn.start,
                        turn.end,
                        turn.speaker
                    ])?;
                }
                let mut relabel = tx.prepare_cached(
                    "UPDATE segments SET speaker = ?1 WHERE meeting_id = ?2 AND idx = ?3",
                )?;
                for (index, speaker) in &segment_speakers {
                    // An index with no segment matches no row and is ignored.
                    relabel.execute(params![speaker, meeting_id, index])?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn release(&self, claim: &Claim) -> StoreResult<bool> {
        let claim = claim.clone();
        self.write(move |conn| {
            // One guarded statement; every right-hand side sees the row as it was, so the cancel
            // flag picks the branch for all the columns at once.
            let released = conn
                .prepare_cached(
                    "UPDATE jobs SET \
                     state = CASE WHEN cancel_requested THEN 'CANCELLED' ELSE 'QUEUED' END, \
                     error = CASE WHEN cancel_requested THEN ?1 ELSE error END, \
                     finished_at = CASE WHEN cancel_requested THEN ?2 ELSE NULL END, \
                     progress = CASE WHEN cancel_requested THEN progress ELSE 0 END, \
                     started_at = CASE WHEN cancel_requested THEN started_at ELSE NULL END, \
                     worker_id = NULL, lease_expires_at = NULL \
                     WHERE id = ?3 AND state = 'RUNNING' AND attempt = ?4 AND worker_id = ?5",
                )?
                .execute(params![
                    CANCELLED_WHILE_RUNNING,
                    now_millis(),
                    claim.job_id.to_string(),
                    claim.attempt,
                    claim.worker.as_str()
                ])?;
            Ok(released > 0)
        })
        .await
    }

    async fn cancel(&self, id: JobId) -> StoreResult<Option<CancelRequest>> {
        self.write(move |conn| {
            let key = id.to_string();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let cancel_queued = concat!(
                "UPDATE jobs SET state = 'CANCELLED', finished_at = ?1, error = ?2 \
                 WHERE id = ?3 AND state = 'QUEUED' RETURNING ",
                job_columns!()
            );
            let request_cancel = concat!(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'RUNNING' \
                 RETURNING ",
                job_columns!()
            );
            // Each update is guarded by the state it was chosen for. One that matches nothing means
            // the job changed state since it was read (possible only at READ COMMITTED): read it
            // again and decide again.
            for _ in 0..CANCEL_ROUNDS {
                let Some(job) = query_job(&tx, SELECT_JOB_BY_ID, [&key])? else {
                    return Ok(None);
                };
                let request = match CancelAction::for_state(job.state) {
                    CancelAction::CancelQueued => query_job(
                        &tx,
                        cancel_queued,
                        params![now_millis(), CANCELLED_BEFORE_START, key],
                    )?
                    .map(CancelRequest::CancelledQueued),
                    CancelAction::RequestCancel => {
                        query_job(&tx, request_cancel, [&key])?.map(CancelRequest::Requested)
                    }
                    CancelAction::AlreadyTerminal => {
                        return Ok(Some(CancelRequest::AlreadyTerminal(job)));
                    }
                };
                if let Some(request) = request {
                    tx.commit()?;
                    return Ok(Some(request));
                }
            }
            Err(StoreError::Task(format!(
                "job {id} kept changing state while being cancelled; try again"
            ))
            .into())
        })
        .await
    }

    async fn recover_abandoned(
        &self,
        me: &WorkerId,
        max_attempts: u32,
        now: Millis,
    ) -> StoreResult<Recovery> {
        let me = me.clone();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let abandoned = tx
                .prepare_cached(
                    "SELECT id, attempt, worker_id, cancel_requested FROM jobs \
                     WHERE state = 'RUNNING' AND worker_id <> ?1 AND lease_expires_at <= ?2 \
                     ORDER BY seq",
                )?
                .query_map(params![me.as_str(), now], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, u32>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, bool>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;

            // `now` may be Millis::MAX ("every lease"): rows get the real time.
            let finished_at = now_millis();
            let mut recovery = Recovery::default();
            // Each update is guarded by the claim it takes over, as read above (still RUNNING, same
            // attempt and worker, lease still lapsed): one that matches nothing lost a race (the
            // worker finished or heartbeated, another recoverer was first) and is not reported.
            macro_rules! taken_over {
                () => {
                    " WHERE id = ?1 AND state = 'RUNNING' AND attempt = ?2 AND worker_id = ?3 \
                     AND lease_expires_at <= ?4"
                };
            }
            for (key, attempt, worker_id, cancel_requested) in abandoned {
                let id: JobId = parse(&key)?;
                let action = RecoveryAction::decide(cancel_requested, attempt, max_attempts);
                let taken = match action.terminal() {
                    Some((state, error)) => {
                        let sql = concat!(
                            "UPDATE jobs SET state = ?5, error = ?6, finished_at = ?7, \
                             worker_id = NULL, lease_expires_at = NULL",
                            taken_over!()
                        );
                        let args = params![
                            key,
                            attempt,
                            worker_id,
                            now,
                            state.as_str(),
                            error,
                            finished_at
                        ];
                        tx.prepare_cached(sql)?.execute(args)?
                    }
                    None => {
                        let sql = concat!(
                            "UPDATE jobs SET state = 'QUEUED', attempt = attempt + 1, progress = 0, \
                             started_at = NULL, worker_id = NULL, lease_expires_at = NULL",
                            taken_over!()
                        );
                        tx.prepare_cached(sql)?
                            .execute(params![key, attempt, worker_id, now])?
                    }
                };
                if taken > 0 {
                    action.record(id, &mut recovery);
                }
            }
            tx.commit()?;
            Ok(recovery)
        })
        .await
    }

    async fn result_turns(&self, id: JobId) -> StoreResult<Option<Vec<TurnRecord>>> {
        self.read(move |conn| {
            let key = id.to_string();
            // One snapshot for the state check and the turns.
            let tx = conn.transaction()?;
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM jobs WHERE id = ?1")?
                .query_row([&key], |row| row.get(0))
                .optional()?;
            if state.as_deref() != Some(JobState::Completed.as_str()) {
                return Ok(None);
            }
            let turns = tx
                .prepare_cached(
                    "SELECT start_secs, end_secs, speaker FROM job_turns WHERE job_id = ?1 \
                     ORDER BY start_secs, end_secs, idx",
                )?
                .query_map([&key], |row| {
                    Ok(TurnRecord {
                        start: row.get(0)?,
                        end: row.get(1)?,
                        speaker: row.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(turns))
        })
        .await
    }

    async fn count_by_state(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        self.read(|conn| {
            let mut counts = zero_counts();
            let mut stmt =
                conn.prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let state = parse_state(&row.get::<_, String>(0)?)?;
                counts.insert(state, row.get(1)?);
            }
            Ok(counts)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::conformance_tests!(conformance, async {
        let dir = tempfile::tempdir().unwrap();
        (SqliteStore::open(dir.path()).unwrap(), dir)
    });

    fn open_error_message(result: StoreResult<SqliteStore>) -> String {
        match result {
            Err(err @ StoreError::Open { .. }) => err.to_string(),
            Err(other) => panic!("expected StoreError::Open, got {other:?}"),
            Ok(store) => panic!("expected StoreError::Open, got {store:?}"),
        }
    }

    /// Two connections to one database: the second, not waiting at all, finds the first holding
    /// the write lock.
    fn busy_error() -> rusqlite::Error {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contended.db");
        let mut holder = Connection::open(&path).unwrap();
        holder.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let _write_lock = holder
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let mut other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        let second_writer = other.transaction_with_behavior(TransactionBehavior::Immediate);
        match second_writer {
            Err(e) => e,
            Ok(_) => panic!("a second writer got the lock"),
        }
    }

    #[test]
    fn busy_is_retryable_contention_and_other_failures_are_not() {
        let busy = backend_error(busy_error());
        assert!(busy.is_busy(), "{busy:?}");
        assert!(busy.is_retryable(), "{busy:?}");
        assert!(
            matches!(
                busy,
                StoreError::Backend {
                    kind: BackendErrorKind::Contention,
                    ..
                }
            ),
            "{busy:?}"
        );
        assert!(busy.to_string().contains("locked"), "{busy}");

        let conn = Connection::open_in_memory().unwrap();
        let syntax = backend_error(conn.execute_batch("SELEKT 1").unwrap_err());
        assert!(!syntax.is_busy() && !syntax.is_retryable(), "{syntax:?}");
        let missing = StoreError::from(CallError::Sqlite(rusqlite::Error::QueryReturnedNoRows));
        assert!(
            matches!(
                missing,
                StoreError::Backend {
                    kind: BackendErrorKind::Other,
                    ..
                }
            ),
            "{missing:?}"
        );
        // A contract answer passes through unchanged.
        let id = MeetingId::new_random();
        let answer = StoreError::from(CallError::from(StoreError::MeetingNotFound(id)));
        assert!(matches!(answer, StoreError::MeetingNotFound(m) if m == id));
    }

    #[tokio::test]
    async fn creates_the_directory_and_reports_its_path() {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("nested").join("data");
        let store = SqliteStore::open(&data_dir).unwrap();
        assert_eq!(store.path(), data_dir.join("noteflow.db"));
        assert!(store.path().is_file());
        assert!(data_dir.join("noteflow.lock").is_file());
        assert_eq!(store.mode(), StorageMode::Sqlite);
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (meeting, running, done) = {
            let store = SqliteStore::open(dir.path()).unwrap();
            let meeting = store.create_meeting("persisted").await.unwrap().id;
            store
                .put_audio(
                    meeting,
                    StoredAudio {
                        bytes: vec![7; 64],
                        duration_secs: 2.0,
                        format_hint: Some("flac".into()),
                    },
                )
                .await
                .unwrap();
            let segment = SegmentInput {
                start: 0.0,
                end: 1.0,
                text: "hi".into(),
                speaker: None,
            };
            store
                .replace_segments(meeting, vec![segment])
                .await
                .unwrap();
            let new_job = |request_id: &str| NewJob {
                meeting_id: meeting,
                min_speakers: Some(1),
                max_speakers: None,
                request_id: Some(request_id.into()),
            };
            let done = store
                .create_job(new_job("first"), 10)
                .await
                .unwrap()
                .into_job();
            let (_, claim) = store
                .claim_next(&WorkerId::from_string("a"), Duration::from_secs(60))
                .await
                .unwrap()
                .unwrap();
            let result = crate::JobResult {
                turns: vec![TurnRecord {
                    start: 0.0,
                    end: 1.0,
                    speaker: "S0".into(),
                }],
                speakers: vec!["S0".into()],
                segment_speakers: vec![(0, "S0".into())],
            };
            assert!(store
                .finish(&claim, Outcome::Completed(result))
                .await
                .unwrap());
            let running = store
                .create_job(new_job("second"), 10)
                .await
                .unwrap()
                .into_job();
            store
                .claim_next(&WorkerId::from_string("a"), Duration::from_secs(60))
                .await
                .unwrap()
                .unwrap();
            (meeting, running, done)
            // The store is dropped here, as when the process exits: its lock is released.
        };

        let store = SqliteStore::open(dir.path()).unwrap();
        let reopened = store.get_meeting(meeting).await.unwrap().unwrap();
        assert_eq!(reopened.title, "persisted");
        assert_eq!(reopened.audio.unwrap().size_bytes, 64);
        assert_eq!(reopened.segments[0].speaker.as_deref(), Some("S0"));
        assert_eq!(
            store.get_audio(meeting).await.unwrap().unwrap().bytes,
            vec![7; 64]
        );
        let turns = store.result_turns(done.id).await.unwrap().unwrap();
        assert_eq!(turns.len(), 1);
        let existing = store.create_job(
            NewJob {
                meeting_id: meeting,
                min_speakers: None,
                max_speakers: None,
                request_id: Some("first".into()),
            },
            10,
        );
        assert_eq!(
            existing.await.unwrap(),
            Created::Existing(store.get_job(done.id).await.unwrap().unwrap())
        );

        // The job worker "a" was running when its process stopped is taken over by the new one.
        let me = WorkerId::from_string("b");
        let recovery = store.recover_abandoned(&me, 3, Millis::MAX).await.unwrap();
        assert_eq!(recovery.requeued, [running.id]);
        let (job, claim) = store
            .claim_next(&me, Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((job.id, claim.attempt), (running.id, 2));
        assert!(job.seq > done.seq);
    }

    #[tokio::test]
    async fn a_locked_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        let data_dir = dir.path().display().to_string();
        let err = match SqliteStore::open(dir.path()) {
            Err(err) => err,
            Ok(store) => panic!("expected StoreError::Locked, got {store:?}"),
        };
        let StoreError::Locked { path } = &err else {
            panic!("expected StoreError::Locked, got {err:?}");
        };
        assert_eq!(path, &data_dir, "the data directory, not the database file");
        let message = err.to_string();
        assert!(
            message.contains("in use by another noteflow server"),
            "{message}"
        );

        // The refused open did not disturb the first store.
        first.create_meeting("still fine").await.unwrap();
        drop(first);
        SqliteStore::open(dir.path()).expect("the lock is released when the store is dropped");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("noteflow.db")).unwrap();
        let current: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(current, migrations::MIGRATIONS.len() as i64);
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);

        let message = open_error_message(SqliteStore::open(dir.path()));
        assert!(message.contains("schema version 99"), "{message}");
        assert!(message.contains("newer noteflow"), "{message}");
    }

    #[test]
    fn reopening_does_not_reapply_migrations() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        drop(SqliteStore::open(dir.path()).unwrap());
    }

    #[test]
    fn a_regular_file_is_not_a_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"hello").unwrap();
        let message = open_error_message(SqliteStore::open(&file));
        assert!(message.contains("not a directory"), "{message}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("noteflow.db"), vec![b'x'; 4096]).unwrap();
        open_error_message(SqliteStore::open(dir.path()));
    }

    #[tokio::test]
    async fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let meeting = store.create_meeting("m").await.unwrap();

        // Hold the writer connection from another thread, as a long write would.
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let db = Arc::clone(&store.db);
        let holder = std::thread::spawn(move || {
            let _writer = lock(&db.writer);
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        held_rx.recv().unwrap();

        let reads = async {
            for _ in 0..8 {
                assert_eq!(
                    store.get_meeting(meeting.id).await.unwrap(),
                    Some(meeting.clone())
                );
                assert_eq!(store.count_by_state().await.unwrap().len(), 5);
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), reads).await;
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        outcome.expect("reads completed while the writer was busy");
    }
}

//! [`PostgresStore`]: one PostgreSQL database shared by several server replicas.
//!
//! - Connections come from a pool (`deadpool-postgres` over `tokio-postgres`); every call takes one
//!   for its duration. Transactions run at PostgreSQL's default READ COMMITTED.
//! - The schema is embedded and migrated under an advisory lock when a store connects
//!   (`postgres/migrations.rs`), so replicas may start together.
//! - The invariants hold in the database whatever the replicas do: `request_id` is unique, a
//!   partial unique index allows one QUEUED or RUNNING job per meeting, and every worker write is an
//!   `UPDATE` guarded by (job, state RUNNING, attempt, worker) in its `WHERE`. At READ COMMITTED a
//!   check that reads one table and writes another ("the meeting has no active job", then replace
//!   its audio) could interleave with a `create_job`, so those calls first lock the meeting row
//!   (`SELECT ... FOR UPDATE`), which serialises them per meeting.
//! - Claims take the oldest QUEUED job with `FOR UPDATE SKIP LOCKED`: concurrent claimers move on to
//!   the next job instead of waiting for each other.
//! - Audio is stored in chunks of [`AUDIO_CHUNK_BYTES`] and read back chunk by chunk.
//! - A trigger on `jobs` sends a `NOTIFY` for every change that matters to another replica (a job
//!   queued, a cancel asked for, progress, an end); a dedicated connection `LISTEN`s and turns them
//!   into [`StoreNotice`]s (`postgres/notices.rs`).
//! - What a call decides (errors, messages, the next state) comes from [`contract`](crate::contract);
//!   the driver's and the pool's errors become [`StoreError::Backend`] at the edge
//!   ([`backend_error`]), so nothing of `tokio-postgres` leaves this module.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures::{pin_mut, TryStreamExt};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use crate::contract::{
    check_inputs_replaceable, check_queue_room, check_startable, claim_of, ending,
    heartbeat_answer, indexed_segments, into_meeting_page, into_page, lease_deadline,
    reuse_request_id, rows_to_fetch, usable_progress, zero_counts, CancelAction, Completion,
    Ending, RecoveryAction, CANCELLED_BEFORE_START, CANCELLED_WHILE_RUNNING,
};
use crate::{
    now_millis, AudioInfo, BackendErrorKind, BoxError, CancelRequest, Claim, Created, Heartbeat,
    Job, JobFilter, JobId, JobPage, JobResult, JobState, JobStore, Meeting, MeetingCursor,
    MeetingId, MeetingPage, Millis, NewJob, Outcome, PoolStatus, Recovery, Segment, SegmentInput,
    StorageMode, StoreError, StoreNotice, StoreResult, StoredAudio, TurnRecord, WorkerId,
};

mod migrations;
mod notices;

#[cfg(feature = "conformance")]
pub mod testing;

/// The size of the chunks audio is stored in: small enough that no single value strains the
/// protocol or a server's memory, large enough that a long recording is a few hundred rows.
pub const AUDIO_CHUNK_BYTES: usize = 1 << 20;

/// How many times a call whose transaction lost a race on a unique constraint is run again: the
/// second run sees the winner's row (see [`PostgresStore::create_job`]).
const UNIQUE_RACE_ROUNDS: usize = 3;

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The most connections the pool opens (the notice listener has one more of its own).
    pub pool_size: usize,
    /// How long opening one connection may take before the call fails as unavailable.
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection before it fails as unavailable.
    pub wait_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(10),
        }
    }
}

/// Stores everything in a PostgreSQL database that several processes may share.
pub struct PostgresStore {
    pool: Pool,
    notices: broadcast::Sender<StoreNotice>,
    /// Stops the notice listener when the store is dropped.
    _listener: notices::ListenerTask,
    /// The server, port, database and user, for logs (never the password).
    target: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// What a `postgres://` URL names, without its password: `user@host:port/database`.
pub fn describe_url(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => describe_config(&config),
        Err(_) => "an unparsable PostgreSQL URL".to_owned(),
    }
}

fn describe_config(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or("(default database)");
    format!("{user}@{host}:{port}/{db}")
}

fn open_error(target: &str, source: impl Into<BoxError>) -> StoreError {
    StoreError::Open {
        path: target.to_owned(),
        source: source.into(),
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/database`),
    /// applies any pending migrations (waiting for another process migrating the same database),
    /// and starts listening for notices. [`StoreError::Open`] when the URL is malformed, the server
    /// cannot be reached within the connect timeout, or the schema is newer than this build.
    pub async fn connect(url: &str, options: PostgresOptions) -> StoreResult<PostgresStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| open_error("the PostgreSQL URL", e))?;
        config.connect_timeout(options.connect_timeout);
        // Finds a peer that vanished without closing the connection (a host that died).
        config.keepalives_idle(Duration::from_secs(30));
        let target = describe_config(&config);

        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A closed connection is dropped when it comes back to the pool; one that dies while
                // idle fails its next call as unavailable (retryable), and the pool replaces it.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| open_error(&target, e))?;

        let mut conn = pool.get().await.map_err(|e| {
            open_error(
                &target,
                format!("cannot connect to PostgreSQL: {}", pool_error_text(&e)),
            )
        })?;
        migrations::migrate(&mut conn)
            .await
            .map_err(|e| open_error(&target, e))?;
        drop(conn);

        let (notices, _) = broadcast::channel(1024);
        let listener =
            notices::ListenerTask::start(config, notices.clone(), options.connect_timeout).await;
        tracing::debug!(%target, "connected to PostgreSQL");
        Ok(PostgresStore {
            pool,
            notices,
            _listener: listener,
            target,
        })
    }

    /// The database this store uses, as `user@host:port/database` (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn conn(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(pool_error)
    }
}

fn pool_error_text(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => pg_error_text(e),
        other => other.to_string(),
    }
}

/// A driver error with its cause: a connection error's own text is terse ("error connecting to
/// server"); its source says why.
fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// A pool failure as the store reports it: no connection within the wait or connect timeout, or a
/// connection refused, is the database being unavailable.
fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => backend_error(e),
        PoolError::Timeout(_) | PoolError::Closed => {
            StoreError::backend(BackendErrorKind::Unavailable, e)
        }
        other => StoreError::backend(BackendErrorKind::Other, other),
    }
}

/// What a driver error means for the caller.
fn classify(e: &tokio_postgres::Error) -> BackendErrorKind {
    if let Some(code) = e.code() {
        return if [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
        ]
        .contains(code)
        {
            BackendErrorKind::Contention
        } else if code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
        {
            BackendErrorKind::Unavailable
        } else {
            BackendErrorKind::Other
        };
    }
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    let text = e.to_string();
    if e.is_closed()
        || io
        || text.starts_with("error connecting")
        || text.starts_with("timeout")
        || text.contains("connection closed")
    {
        BackendErrorKind::Unavailable
    } else {
        BackendErrorKind::Other
    }
}

/// A driver error as the store reports it (see [`classify`]).
fn backend_error(e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(classify(&e), e)
}

/// `?` for driver results inside the store: the error becomes a [`StoreError`].
trait PgResult<T> {
    fn pg(self) -> StoreResult<T>;
}

impl<T> PgResult<T> for Result<T, tokio_postgres::Error> {
    fn pg(self) -> StoreResult<T> {
        self.map_err(backend_error)
    }
}

fn is_unique_violation(e: &StoreError) -> bool {
    let StoreError::Backend { source, .. } = e else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        == Some(&SqlState::UNIQUE_VIOLATION)
}

const SELECT_JOB_BY_ID: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");

const SELECT_ACTIVE_JOB: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE meeting_id = $1 AND state IN ('QUEUED', 'RUNNING')"
);

fn corrupt(what: &str, value: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what} {value} is out of range"))
}

fn to_u32(value: i32, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| corrupt(what, value))
}

fn opt_u32(value: Option<i32>, what: &str) -> StoreResult<Option<u32>> {
    value.map(|v| to_u32(v, what)).transpose()
}

/// A count or index of the interface as PostgreSQL's `integer`.
fn to_i32(value: u32, what: &str) -> StoreResult<i32> {
    i32::try_from(value)
        .map_err(|_| StoreError::InvalidInput(format!("{what} {value} is too large")))
}

fn opt_i32(value: Option<u32>, what: &str) -> StoreResult<Option<i32>> {
    value.map(|v| to_i32(v, what)).transpose()
}

fn job_from_row(row: &Row) -> StoreResult<Job> {
    let state: String = row.try_get("state").pg()?;
    let speakers: serde_json::Value = row.try_get("speakers").pg()?;
    Ok(Job {
        id: JobId::from_uuid(row.try_get("id").pg()?),
        meeting_id: MeetingId::from_uuid(row.try_get("meeting_id").pg()?),
        seq: row.try_get("seq").pg()?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown job state '{state}'")))?,
        progress: row.try_get("progress").pg()?,
        attempt: to_u32(row.try_get("attempt").pg()?, "attempt")?,
        request_id: row.try_get("request_id").pg()?,
        min_speakers: opt_u32(row.try_get("min_speakers").pg()?, "min_speakers")?,
        max_speakers: opt_u32(row.try_get("max_speakers").pg()?, "max_speakers")?,
        speakers: serde_json::from_value(speakers.clone())
            .map_err(|e| StoreError::Corrupt(format!("malformed speaker list {speakers}: {e}")))?,
        segments_updated: to_u32(row.try_get("segments_updated").pg()?, "segments_updated")?,
        error: row.try_get("error").pg()?,
        created_at: row.try_get("created_at").pg()?,
        started_at: row.try_get("started_at").pg()?,
        finished_at: row.try_get("finished_at").pg()?,
        worker_id: row.try_get("worker_id").pg()?,
        lease_expires_at: row.try_get("lease_expires_at").pg()?,
        cancel_requested: row.try_get("cancel_requested").pg()?,
    })
}

/// The job row `sql` yields (a SELECT or an UPDATE ... RETURNING), if any.
async fn query_job(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<Job>> {
    let row = client.query_opt(sql, params).await.pg()?;
    row.as_ref().map(job_from_row).transpose()
}

/// Locks the meeting's row until the transaction ends (see the module documentation); whether it
/// exists.
async fn lock_meeting(client: &impl GenericClient, id: MeetingId) -> StoreResult<bool> {
    let row = client
        .query_opt(
            "SELECT 1 FROM meetings WHERE id = $1 FOR UPDATE",
            &[&id.as_uuid()],
        )
        .await
        .pg()?;
    Ok(row.is_some())
}

/// Locks the meeting and checks that its audio or segments may be replaced.
async fn lock_idle_meeting(client: &impl GenericClient, id: MeetingId) -> StoreResult<()> {
    let exists = lock_meeting(client, id).await?;
    let active = query_job(client, SELECT_ACTIVE_JOB, &[&id.as_uuid()])
        .await?
        .is_some();
    check_inputs_replaceable(id, exists, active)
}

/// A read-only transaction that sees one snapshot throughout (REPEATABLE READ), for reads that span
/// several statements (a meeting with its audio and segments, audio facts with their chunks).
async fn read_snapshot(conn: &mut Object) -> StoreResult<deadpool_postgres::Transaction<'_>> {
    conn.build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .pg()
}

#[async_trait::async_trait]
impl JobStore for PostgresStore {
    fn mode(&self) -> StorageMode {
        StorageMode::Postgres
    }

    async fn create_meeting(&self, title: &str) -> StoreResult<Meeting> {
        let meeting = Meeting {
            id: MeetingId::new_random(),
            title: title.to_owned(),
            created_at: now_millis(),
            audio: None,
            segments: Vec::new(),
        };
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached("INSERT INTO meetings (id, title, created_at) VALUES ($1, $2, $3)")
            .await
            .pg()?;
        conn.execute(
            &stmt,
            &[&meeting.id.as_uuid(), &meeting.title, &meeting.created_at],
        )
        .await
        .pg()?;
        Ok(meeting)
    }

    async fn get_meeting(&self, id: MeetingId) -> StoreResult<Option<Meeting>> {
        let mut conn = self.conn().await?;
        // One snapshot for the meeting, its audio and its segments.
        let tx = read_snapshot(&mut conn).await?;
        let key = id.as_uuid();
        let Some(row) = tx
            .query_opt(
                "SELECT title, created_at FROM meetings WHERE id = $1",
                &[&key],
            )
            .await
            .pg()?
        else {
            return Ok(None);
        };
        let audio = tx
            .query_opt(
                "SELECT size_bytes, duration_secs, format_hint FROM meeting_audio \
                 WHERE meeting_id = $1",
                &[&key],
            )
            .await
            .pg()?
            .map(|row| -> StoreResult<AudioInfo> {
                let size: i64 = row.try_get(0).pg()?;
                Ok(AudioInfo {
                    size_bytes: u64::try_from(size).map_err(|_| corrupt("audio size", size))?,
                    duration_secs: row.try_get(1).pg()?,
                    format_hint: row.try_get(2).pg()?,
                })
            })
            .transpose()?;
        let segments = tx
            .query(
                "SELECT idx, start_secs, end_secs, text, speaker FROM segments \
                 WHERE meeting_id = $1 ORDER BY idx",
                &[&key],
            )
            .await
            .pg()?
            .iter()
            .map(|row| {
                Ok(Segment {
                    index: to_u32(row.try_get(0).pg()?, "segment index")?,
                    start: row.try_get(1).pg()?,
                    end: row.try_get(2).pg()?,
                    text: row.try_get(3).pg()?,
                    speaker: row.try_get(4).pg()?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await.pg()?;
        Ok(Some(Meeting {
            id,
            title: row.try_get(0).pg()?,
            created_at: row.try_get(1).pg()?,
            audio,
            segments,
        }))
    }

    async fn list_meetings(
        &self,
        limit: u32,
        after: Option<MeetingCursor>,
    ) -> StoreResult<MeetingPage> {
        let conn = self.conn().await?;
        let fetch = i64::try_from(rows_to_fetch(limit)).unwrap_or(i64::MAX);
        // Row comparison on (created_at, id) walks the listing order; uuid compares as its bytes,
        // as MeetingId's Ord does.
        let rows = match after {
            Some(cursor) => {
                conn.query(
                    "SELECT m.id, m.title, m.created_at, a.size_bytes, a.duration_secs, \
                     a.format_hint FROM meetings m \
                     LEFT JOIN meeting_audio a ON a.meeting_id = m.id \
                     WHERE (m.created_at, m.id) < ($1, $2) \
                     ORDER BY m.created_at DESC, m.id DESC LIMIT $3",
                    &[&cursor.created_at, &cursor.id.as_uuid(), &fetch],
                )
                .await
            }
            None => {
                conn.query(
                    "SELECT m.id, m.title, m.created_at, a.size_bytes, a.duration_secs, \
                     a.format_hint FROM meetings m \
                     LEFT JOIN meeting_audio a ON a.meeting_id = m.id \
                     ORDER BY m.created_at DESC, m.id DESC LIMIT $1",
                    &[&fetch],
                )
                .await
            }
        }
        .pg()?;
        let meetings = rows
            .iter()
            .map(|row| {
                let size: Option<i64> = row.try_get(3).pg()?;
                let audio = match size {
                    Some(size) => Some(AudioInfo {
                        size_bytes: u64::try_from(size).map_err(|_| corrupt("audio size", size))?,
                        duration_secs: row.try_get(4).pg()?,
                        format_hint: row.try_get(5).pg()?,
                    }),
                    None => None,
                };
                Ok(Meeting {
                    id: MeetingId::from_uuid(row.try_get(0).pg()?),
                    title: row.try_get(1).pg()?,
                    created_at: row.try_get(2).pg()?,
                    audio,
                    segments: Vec::new(),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_meeting_page(meetings, limit))
    }

    async fn delete_meeting(&self, id: MeetingId) -> StoreResult<bool> {
        let conn = self.conn().await?;
        // Audio, chunks, segments, jobs and their turns go with it (ON DELETE CASCADE).
        let deleted = conn
            .execute("DELETE FROM meetings WHERE id = $1", &[&id.as_uuid()])
            .await
            .pg()?;
        Ok(deleted > 0)
    }

    async fn put_audio(&self, id: MeetingId, audio: StoredAudio) -> StoreResult<()> {
        let size = i64::try_from(audio.bytes.len())
            .map_err(|_| StoreError::InvalidInput("the audio is too large".into()))?;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.pg()?;
        lock_idle_meeting(&tx, id).await?;
        let key = id.as_uuid();
        tx.execute(
            "INSERT INTO meeting_audio (meeting_id, size_bytes, duration_secs, format_hint) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (meeting_id) DO UPDATE SET size_bytes = excluded.size_bytes, \
             duration_secs = excluded.duration_secs, format_hint = excluded.format_hint",
            &[&key, &size, &audio.duration_secs, &audio.format_hint],
        )
        .await
        .pg()?;
        tx.execute(
            "DELETE FROM meeting_audio_chunks WHERE meeting_id = $1",
            &[&key],
        )
        .await
        .pg()?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO meeting_audio_chunks (meeting_id, idx, bytes) VALUES ($1, $2, $3)",
            )
            .await
            .pg()?;
        for (index, chunk) in (0i32..).zip(audio.bytes.chunks(AUDIO_CHUNK_BYTES)) {
            tx.execute(&insert, &[&key, &index, &chunk]).await.pg()?;
        }
        tx.commit().await.pg()?;
        Ok(())
    }

    async fn get_audio(&self, id: MeetingId) -> StoreResult<Option<StoredAudio>> {
        let mut conn = self.conn().await?;
        // One snapshot: the facts and the chunks of the same upload.
        let tx = read_snapshot(&mut conn).await?;
        let key = id.as_uuid();
        let Some(facts) = tx
            .query_opt(
                "SELECT size_bytes, duration_secs, format_hint FROM meeting_audio \
                 WHERE meeting_id = $1",
                &[&key],
            )
            .await
            .pg()?
        else {
            return Ok(None);
        };
        let size: i64 = facts.try_get(0).pg()?;
        let size = usize::try_from(size).map_err(|_| corrupt("audio size", size))?;
        // The chunks are streamed one row at a time into one buffer, so the audio is never held
        // twice.
        let mut bytes = Vec::with_capacity(size);
        let chunks = tx
            .query_raw(
                "SELECT bytes FROM meeting_audio_chunks WHERE meeting_id = $1 ORDER BY idx",
                [&key],
            )
            .await
            .pg()?;
        pin_mut!(chunks);
        while let Some(row) = chunks.try_next().await.pg()? {
            bytes.extend_from_slice(row.try_get::<_, &[u8]>(0).pg()?);
        }
        tx.commit().await.pg()?;
        if bytes.len() != size {
            return Err(StoreError::Corrupt(format!(
                "the audio of meeting {id} has {} bytes in its chunks, but {size} were stored",
                bytes.len()
            )));
        }
        Ok(Some(StoredAudio {
            bytes,
            duration_secs: facts.try_get(1).pg()?,
            format_hint: facts.try_get(2).pg()?,
        }))
    }

    async fn replace_segments(
        &self,
        id: MeetingId,
        segments: Vec<SegmentInput>,
    ) -> StoreResult<u32> {
        // Before anything is looked up, as in every store.
        let segments = indexed_segments(segments)?;
        let count = segments.len() as u32;
        let indices = segments
            .iter()
            .map(|s| to_i32(s.index, "segment index"))
            .collect::<StoreResult<Vec<_>>>()?;
        let starts: Vec<f64> = segments.iter().map(|s| s.start).collect();
        let ends: Vec<f64> = segments.iter().map(|s| s.end).collect();
        let texts: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
        let speakers: Vec<Option<&str>> = segments.iter().map(|s| s.speaker.as_deref()).collect();

        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.pg()?;
        lock_idle_meeting(&tx, id).await?;
        let key = id.as_uuid();
        tx.execute("DELETE FROM segments WHERE meeting_id = $1", &[&key])
            .await
            .pg()?;
        // One statement for the whole transcript, however long.
        tx.execute(
            "INSERT INTO segments (meeting_id, idx, start_secs, end_secs, text, speaker) \
             SELECT $1, * FROM unnest($2::integer[], $3::float8[], $4::float8[], $5::text[], \
             $6::text[])",
            &[&key, &indices, &starts, &ends, &texts, &speakers],
        )
        .await
        .pg()?;
        tx.commit().await.pg()?;
        Ok(count)
    }

    async fn create_job(&self, new: NewJob, max_queued: u64) -> StoreResult<Created> {
        let min_speakers = opt_i32(new.min_speakers, "min_speakers")?;
        let max_speakers = opt_i32(new.max_speakers, "max_speakers")?;
        // Two replicas may both find a request id unused and both insert it (for different
        // meetings: the meeting lock below serialises the same meeting): the loser's insert fails
        // on the unique constraint, and its next round finds the winner's job.
        let mut round = 0;
        loop {
            round += 1;
            match self
                .try_create_job(&new, min_speakers, max_speakers, max_queued)
                .await
            {
                Err(e) if round < UNIQUE_RACE_ROUNDS && is_unique_violation(&e) => continue,
                other => return other,
            }
        }
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(SELECT_JOB_BY_ID).await.pg()?;
        let row = conn.query_opt(&stmt, &[&id.as_uuid()]).await.pg()?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(
        &self,
        filter: &JobFilter,
        limit: u32,
        after_seq: Option<i64>,
    ) -> StoreResult<JobPage> {
        let meeting = filter.meeting_id.map(|id| id.as_uuid());
        let state = filter.state.map(JobState::as_str);
        let fetch = i64::try_from(rows_to_fetch(limit)).unwrap_or(i64::MAX);
        // Only the conditions in use go into the SQL, so the planner can pick the matching index.
        let mut conditions = Vec::new();
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(meeting) = &meeting {
            args.push(meeting);
            conditions.push(format!("meeting_id = ${}", args.len()));
        }
        if let Some(state) = &state {
            args.push(state);
            conditions.push(format!("state = ${}", args.len()));
        }
        if let Some(after_seq) = &after_seq {
            args.push(after_seq);
            conditions.push(format!("seq < ${}", args.len()));
        }
        args.push(&fetch);
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {} FROM jobs{where_clause} ORDER BY seq DESC LIMIT ${}",
            job_columns!(),
            args.len()
        );
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(&sql).await.pg()?;
        let jobs = conn
            .query(&stmt, &args)
            .await
            .pg()?
            .iter()
            .map(job_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_page(jobs, limit))
    }

    async fn claim_next(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> StoreResult<Option<(Job, Claim)>> {
        let now = now_millis();
        // One statement: the subquery locks the oldest QUEUED job that no other claimer holds
        // (SKIP LOCKED moves on instead of waiting), and the outer `state = 'QUEUED'` guards
        // against a row that changed after it was chosen.
        let claim = concat!(
            "UPDATE jobs SET state = 'RUNNING', worker_id = $1, started_at = $2, progress = 0, \
             lease_expires_at = $3 \
             WHERE seq = (SELECT seq FROM jobs WHERE state = 'QUEUED' ORDER BY seq LIMIT 1 \
             FOR UPDATE SKIP LOCKED) \
             AND state = 'QUEUED' \
             RETURNING ",
            job_columns!()
        );
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(claim).await.pg()?;
        let deadline = lease_deadline(now, lease);
        let row = conn
            .query_opt(&stmt, &[&worker.as_str(), &now, &deadline])
            .await
            .pg()?;
        let Some(job) = row.as_ref().map(job_from_row).transpose()? else {
            return Ok(None);
        };
        let claim = claim_of(&job, worker.clone());
        Ok(Some((job, claim)))
    }

    async fn heartbeat(
        &self,
        claim: &Claim,
        progress: Option<f32>,
        lease: Duration,
    ) -> StoreResult<Heartbeat> {
        let progress = usable_progress(progress);
        let attempt = to_i32(claim.attempt, "attempt")?;
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "UPDATE jobs SET lease_expires_at = $1, \
                 progress = GREATEST(progress, COALESCE($2, progress)) \
                 WHERE id = $3 AND state = 'RUNNING' AND attempt = $4 AND worker_id = $5 \
                 RETURNING cancel_requested",
            )
            .await
            .pg()?;
        let row = conn
            .query_opt(
                &stmt,
                &[
                    &lease_deadline(now_millis(), lease),
                    &progress,
                    &claim.job_id.as_uuid(),
                    &attempt,
                    &claim.worker.as_str(),
                ],
            )
            .await
            .pg()?;
        let cancel_requested = row.map(|row| row.try_get::<_, bool>(0)).transpose().pg()?;
        Ok(heartbeat_answer(cancel_requested))
    }

    async fn finish(&self, claim: &Claim, outcome: Outcome) -> StoreResult<bool> {
        let Ending {
            state,
            progress,
            error,
            completion,
        } = ending(outcome)?;
        let attempt = to_i32(claim.attempt, "attempt")?;
        // NULL leaves a column as it is.
        let speakers = completion
            .as_ref()
            .map(|c| serde_json::json!(c.result.speakers));
        let segments_updated = completion
            .as_ref()
            .map(|c| to_i32(c.segments_updated, "segments_updated"))
            .transpose()?;

        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.pg()?;
        let row = tx
            .query_opt(
                "UPDATE jobs SET state = $1, progress = COALESCE($2, progress), \
                 error = COALESCE($3, error), speakers = COALESCE($4, speakers), \
                 segments_updated = COALESCE($5, segments_updated), finished_at = $6, \
                 worker_id = NULL, lease_expires_at = NULL \
                 WHERE id = $7 AND state = 'RUNNING' AND attempt = $8 AND worker_id = $9 \
                 RETURNING meeting_id",
                &[
                    &state.as_str(),
                    &progress,
                    &error,
                    &speakers,
                    &segments_updated,
                    &now_millis(),
                    &claim.job_id.as_uuid(),
                    &attempt,
                    &claim.worker.as_str(),
                ],
            )
            .await
            .pg()?;
        let Some(row) = row else {
            // A stale claim: dropping the transaction rolls it back (it changed nothing anyway).
            return Ok(false);
        };
        let meeting_id: uuid::Uuid = row.try_get(0).pg()?;

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
            let indices: Vec<i32> = (0..turns.len() as i32).collect();
            let starts: Vec<f64> = turns.iter().map(|t| t.start).collect();
            let ends: Vec<f64> = turns.iter().map(|t| t.end).collect();
            let labels: Vec<&str> = turns.iter().map(|t| t.speaker.as_str()).collect();
            tx.execute(
                "INSERT INTO job_turns (job_id, idx, start_secs, end_secs, speaker) \
                 SELECT $1, * FROM unnest($2::integer[], $3::float8[], $4::float8[], $5::text[])",
                &[&claim.job_id.as_uuid(), &indices, &starts, &ends, &labels],
            )
            .await
            .pg()?;
            // An index beyond i32 names no segment (segments are indexed from 0 in an i32); like
            // any index with no segment, it is ignored.
            let (segment_indices, segment_labels): (Vec<i32>, Vec<&str>) = segment_speakers
                .iter()
                .filter_map(|(index, label)| Some((i32::try_from(*index).ok()?, label.as_str())))
                .unzip();
            tx.execute(
                "UPDATE segments SET speaker = relabel.speaker \
                 FROM unnest($2::integer[], $3::text[]) AS relabel (idx, speaker) \
                 WHERE segments.meeting_id = $1 AND segments.idx = relabel.idx",
                &[&meeting_id, &segment_indices, &segment_labels],
            )
            .await
            .pg()?;
        }
        tx.commit().await.pg()?;
        Ok(true)
    }

    async fn release(&self, claim: &Claim) -> StoreResult<bool> {
        let attempt = to_i32(claim.attempt, "attempt")?;
        let conn = self.conn().await?;
        // One guarded statement; every right-hand side sees the row as it was, so the cancel flag
        // picks the branch for all the columns at once.
        let released = conn
            .execute(
                "UPDATE jobs SET \
                 state = CASE WHEN cancel_requested THEN 'CANCELLED' ELSE 'QUEUED' END, \
                 error = CASE WHEN cancel_requested THEN $1::text ELSE error END, \
                 finished_at = CASE WHEN cancel_requested THEN $2::bigint ELSE NULL END, \
                 progress = CASE WHEN cancel_requested THEN progress ELSE 0 END, \
                 started_at = CASE WHEN cancel_requested THEN started_at ELSE NULL END, \
                 worker_id = NULL, lease_expires_at = NULL \
                 WHERE id = $3 AND state = 'RUNNING' AND attempt = $4 AND worker_id = $5",
                &[
                    &CANCELLED_WHILE_RUNNING,
                    &now_millis(),
                    &claim.job_id.as_uuid(),
                    &attempt,
                    &claim.worker.as_str(),
                ],
            )
            .await
            .pg()?;
        Ok(released > 0)
    }

    async fn cancel(&self, id: JobId) -> StoreResult<Option<CancelRequest>> {
        let key = id.as_uuid();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.pg()?;
        // The row lock makes the state read here the state the update below changes: a claim, a
        // finish or a recovery of the same job waits for this transaction.
        let select = concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1 FOR UPDATE"
        );
        let Some(job) = query_job(&tx, select, &[&key]).await? else {
            return Ok(None);
        };
        let request = match CancelAction::for_state(job.state) {
            CancelAction::CancelQueued => {
                let sql = concat!(
                    "UPDATE jobs SET state = 'CANCELLED', finished_at = $1, error = $2 \
                     WHERE id = $3 AND state = 'QUEUED' RETURNING ",
                    job_columns!()
                );
                query_job(&tx, sql, &[&now_millis(), &CANCELLED_BEFORE_START, &key])
                    .await?
                    .map(CancelRequest::CancelledQueued)
            }
            CancelAction::RequestCancel => {
                let sql = concat!(
                    "UPDATE jobs SET cancel_requested = true WHERE id = $1 AND state = 'RUNNING' \
                     RETURNING ",
                    job_columns!()
                );
                query_job(&tx, sql, &[&key])
                    .await?
                    .map(CancelRequest::Requested)
            }
            CancelAction::AlreadyTerminal => return Ok(Some(CancelRequest::AlreadyTerminal(job))),
        };
        let request = request
            .ok_or_else(|| StoreError::Corrupt(format!("job {id} changed state while locked")))?;
        tx.commit().await.pg()?;
        Ok(Some(request))
    }

    async fn recover_abandoned(
        &self,
        me: &WorkerId,
        max_attempts: u32,
        now: Millis,
    ) -> StoreResult<Recovery> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.pg()?;
        // Rows another recoverer (another replica's rescuer) is taking over right now are skipped,
        // not waited for: it will deal with them.
        let abandoned = tx
            .query(
                "SELECT id, attempt, worker_id, cancel_requested FROM jobs \
                 WHERE state = 'RUNNING' AND worker_id <> $1 AND lease_expires_at <= $2 \
                 ORDER BY seq FOR UPDATE SKIP LOCKED",
                &[&me.as_str(), &now],
            )
            .await
            .pg()?;

        // `now` may be Millis::MAX ("every lease"): rows get the real time.
        let finished_at = now_millis();
        let mut recovery = Recovery::default();
        for row in &abandoned {
            let key: uuid::Uuid = row.try_get(0).pg()?;
            let attempt: i32 = row.try_get(1).pg()?;
            let worker_id: String = row.try_get(2).pg()?;
            let cancel_requested: bool = row.try_get(3).pg()?;
            let action =
                RecoveryAction::decide(cancel_requested, to_u32(attempt, "attempt")?, max_attempts);
            // Guarded by the claim taken over, as read above (the row is locked, so this is
            // defence in depth).
            let taken = match action.terminal() {
                Some((state, error)) => tx
                    .execute(
                        "UPDATE jobs SET state = $5, error = $6, finished_at = $7, \
                         worker_id = NULL, lease_expires_at = NULL \
                         WHERE id = $1 AND state = 'RUNNING' AND attempt = $2 AND worker_id = $3 \
                         AND lease_expires_at <= $4",
                        &[
                            &key,
                            &attempt,
                            &worker_id,
                            &now,
                            &state.as_str(),
                            &error,
                            &finished_at,
                        ],
                    )
                    .await
                    .pg()?,
                None => tx
                    .execute(
                        "UPDATE jobs SET state = 'QUEUED', attempt = attempt + 1, progress = 0, \
                         started_at = NULL, worker_id = NULL, lease_expires_at = NULL \
                         WHERE id = $1 AND state = 'RUNNING' AND attempt = $2 AND worker_id = $3 \
                         AND lease_expires_at <= $4",
                        &[&key, &attempt, &worker_id, &now],
                    )
                    .await
                    .pg()?,
            };
            if taken > 0 {
                action.record(JobId::from_uuid(key), &mut recovery);
            }
        }
        tx.commit().await.pg()?;
        Ok(recovery)
    }

    async fn result_turns(&self, id: JobId) -> StoreResult<Option<Vec<TurnRecord>>> {
        let mut conn = self.conn().await?;
        // One snapshot for the state check and the turns.
        let tx = read_snapshot(&mut conn).await?;
        let key = id.as_uuid();
        let state: Option<String> = tx
            .query_opt("SELECT state FROM jobs WHERE id = $1", &[&key])
            .await
            .pg()?
            .map(|row| row.try_get(0))
            .transpose()
            .pg()?;
        if state.as_deref() != Some(JobState::Completed.as_str()) {
            return Ok(None);
        }
        let turns = tx
            .query(
                "SELECT start_secs, end_secs, speaker FROM job_turns WHERE job_id = $1 \
                 ORDER BY start_secs, end_secs, idx",
                &[&key],
            )
            .await
            .pg()?
            .iter()
            .map(|row| {
                Ok(TurnRecord {
                    start: row.try_get(0).pg()?,
                    end: row.try_get(1).pg()?,
                    speaker: row.try_get(2).pg()?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await.pg()?;
        Ok(Some(turns))
    }

    async fn count_by_state(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        let conn = self.conn().await?;
        let mut counts = zero_counts();
        for row in conn
            .query("SELECT state, COUNT(*) FROM jobs GROUP BY state", &[])
            .await
            .pg()?
        {
            let state: String = row.try_get(0).pg()?;
            let count: i64 = row.try_get(1).pg()?;
            let state = JobState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown job state '{state}'")))?;
            counts.insert(state, u64::try_from(count).unwrap_or(0));
        }
        Ok(counts)
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<StoreNotice>> {
        Some(self.notices.subscribe())
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            max_size: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        })
    }

    fn is_shared(&self) -> bool {
        true
    }
}

impl PostgresStore {
    /// One run of [`JobStore::create_job`], in its own transaction.
    async fn try_create_job(
        &self,
        new: &NewJob,
        min_speakers: Option<i32>,
        max_speakers: Option<i32>,
        max_queued: u64,
    ) -> StoreResult<Created> {
        let meeting = new.meeting_id.as_uuid();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.pg()?;

        if let Some(request_id) = &new.request_id {
            let by_request = concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE request_id = $1"
            );
            if let Some(holder) = query_job(&tx, by_request, &[request_id]).await? {
                return reuse_request_id(new, holder);
            }
        }

        // Serialises job creation (and audio and segment replacement) per meeting: the active-job
        // check below and the insert see the same state.
        let exists = lock_meeting(&tx, new.meeting_id).await?;
        let has_audio = tx
            .query_opt(
                "SELECT 1 FROM meeting_audio WHERE meeting_id = $1",
                &[&meeting],
            )
            .await
            .pg()?
            .is_some();
        check_startable(new.meeting_id, exists, has_audio)?;

        if let Some(active) = query_job(&tx, SELECT_ACTIVE_JOB, &[&meeting]).await? {
            return Ok(Created::Existing(active));
        }

        // Replicas counting at the same time may each let one more job in: the bound is a
        // back-pressure limit, not an invariant, so it is not worth serialising every creation.
        let queued: i64 = tx
            .query_one("SELECT COUNT(*) FROM jobs WHERE state = 'QUEUED'", &[])
            .await
            .pg()?
            .try_get(0)
            .pg()?;
        check_queue_room(u64::try_from(queued).unwrap_or(0), max_queued)?;

        let insert = concat!(
            "INSERT INTO jobs (id, meeting_id, state, progress, attempt, request_id, \
             min_speakers, max_speakers, created_at) \
             VALUES ($1, $2, 'QUEUED', 0, 1, $3, $4, $5, $6) RETURNING ",
            job_columns!()
        );
        let job = query_job(
            &tx,
            insert,
            &[
                &JobId::new_random().as_uuid(),
                &meeting,
                &new.request_id,
                &min_speakers,
                &max_speakers,
                &now_millis(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("INSERT ... RETURNING returned no row".into()))?;
        tx.commit().await.pg()?;
        Ok(Created::New(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_urls_carry_no_password() {
        let described = describe_url("postgres://alice:s3cret@db.example:6543/noteflow");
        assert_eq!(described, "alice@db.example:6543/noteflow");
        assert!(!describe_url("postgres://u:pw@h/d").contains("pw"));
        assert_eq!(
            describe_url("not a url at all ::"),
            "an unparsable PostgreSQL URL"
        );
    }
}

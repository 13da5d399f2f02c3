//! Durable state of the NoteFlow job service, behind one interface.
//!
//! Layout:
//! - this file: the domain types (ids, [`JobState`], [`Job`], [`Meeting`], ...), the [`JobStore`]
//!   trait, whose documentation is the contract every store keeps, and [`StoreError`], the one
//!   error type of every store (a database's own failures are [`StoreError::Backend`], classified
//!   by [`BackendErrorKind`], so no driver's type crosses the interface);
//! - [`contract`]: what every store decides identically, written once (the cancel, recovery and
//!   failure messages, input validation, the `create_job` steps, the recovery decision, paging);
//!   a leaf that every store uses and no store is used by another;
//! - [`memory`]: [`MemoryStore`], everything in process memory (lost on restart, by design);
//! - [`sqlite`]: [`SqliteStore`], embedded SQLite in a data directory (WAL, busy timeout, migrations
//!   embedded in the binary, in `sqlite/migrations.rs`) — the default;
//! - [`conformance`] (feature `conformance`): the one test suite every store must pass, generated
//!   from a single list of its cases.
//!
//! The job state machine lives in the stores' guarded updates: a job row changes state only through
//! [`JobStore::claim_next`], [`JobStore::heartbeat`], [`JobStore::finish`], [`JobStore::release`],
//! [`JobStore::cancel`] and [`JobStore::recover_abandoned`], and every update by a worker checks the job's state, attempt and
//! worker in the same statement. A write by a stale worker (one whose claim was recovered or whose job
//! was cancelled or deleted) changes nothing and is reported to the caller, which counts it.
//!
//! The interface is shaped for a PostgreSQL store shared by several replicas: claims carry a lease
//! that heartbeats extend, recovery takes over only claims whose lease has expired, and a cancel is a
//! flag in the row that the owning worker reads on its next heartbeat.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// The columns of a job row in both SQL stores (the same schema names), for SELECT and RETURNING;
// each store's `job_from_row` reads them by name. Defined before the stores so both can use it.
macro_rules! job_columns {
    () => {
        "seq, id, meeting_id, state, progress, attempt, request_id, min_speakers, max_speakers, \
         speakers, segments_updated, error, created_at, started_at, finished_at, worker_id, \
         lease_expires_at, cancel_requested"
    };
}

pub mod contract;
pub mod memory;
pub mod sqlite;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ": a UUID, parsed once at the API boundary.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(uuid::Uuid::new_v4())
            }
        }

        impl $name {
            /// The UUID itself, for stores whose database has a UUID type.
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }

            pub fn from_uuid(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                uuid::Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| IdError {
                        kind: $what,
                        value: s.chars().take(80).collect(),
                    })
            }
        }
    };
}

uuid_id!(MeetingId, "meeting");
uuid_id!(JobId, "job");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind} id (expected a UUID such as 123e4567-e89b-12d3-a456-426614174000)")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
}

/// Identifies one server process (one start of `noteflow serve`): a claim names the worker that holds
/// it, so claims held by a previous process can be told apart from this one's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerId(String);

impl WorkerId {
    /// A fresh id for this process start: host, pid and a random suffix.
    pub fn generate() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("{host}-{}-{}", std::process::id(), &suffix[..8]))
    }

    pub fn from_string(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    /// The name stored in the database and shown in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Running => "RUNNING",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a store keeps its state; reported to clients so they can warn when nothing survives a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageMode {
    Memory,
    Sqlite,
    Postgres,
}

impl StorageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageMode::Memory => "memory",
            StorageMode::Sqlite => "sqlite",
            StorageMode::Postgres => "postgres",
        }
    }

    pub fn is_durable(self) -> bool {
        self != StorageMode::Memory
    }
}

/// A meeting's uploaded audio, as uploaded (any format the engine decodes).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAudio {
    pub bytes: Vec<u8>,
    /// Length of the decoded audio, measured when the upload was checked.
    pub duration_secs: f64,
    /// File extension or MIME hint given with the upload, passed to the decoder.
    pub format_hint: Option<String>,
}

/// Facts about a meeting's audio, without the bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub size_bytes: u64,
    pub duration_secs: f64,
    pub format_hint: Option<String>,
}

/// A transcript segment as imported.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentInput {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub speaker: Option<String>,
}

/// A stored transcript segment. `index` is its position in the imported list (0-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub index: u32,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub speaker: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Meeting {
    pub id: MeetingId,
    pub title: String,
    pub created_at: Millis,
    pub audio: Option<AudioInfo>,
    /// Ordered by `index`.
    pub segments: Vec<Segment>,
}

/// What a client asked for when starting a job. Speaker bounds are validated by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub meeting_id: MeetingId,
    pub min_speakers: Option<u32>,
    pub max_speakers: Option<u32>,
    /// Client-chosen idempotency key, unique across all jobs.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub meeting_id: MeetingId,
    /// Insertion order; orders the queue (oldest first) and listings (newest first).
    pub seq: i64,
    pub state: JobState,
    /// Fraction done, 0..=1.
    pub progress: f32,
    /// 1 for the first run; +1 each time an interrupted run is re-queued.
    pub attempt: u32,
    pub request_id: Option<String>,
    pub min_speakers: Option<u32>,
    pub max_speakers: Option<u32>,
    /// Speaker labels found (set on completion).
    pub speakers: Vec<String>,
    /// Transcript segments that received a speaker label (set on completion).
    pub segments_updated: u32,
    /// Why the job failed or was cancelled, for people.
    pub error: Option<String>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// The worker holding the current claim (RUNNING only).
    pub worker_id: Option<String>,
    /// When the current claim lapses unless a heartbeat extends it (RUNNING only).
    pub lease_expires_at: Option<Millis>,
    /// A cancel was asked for while the job was RUNNING; the worker stops on its next heartbeat.
    pub cancel_requested: bool,
}

/// Proof that a worker holds a job: presented with every update the worker makes. An update whose
/// claim no longer matches the row (state RUNNING, same attempt, same worker) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job_id: JobId,
    pub attempt: u32,
    pub worker: WorkerId,
}

/// One speaker turn of a completed job's result.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRecord {
    pub start: f64,
    pub end: f64,
    pub speaker: String,
}

/// A completed job's result, written in the same transaction as the COMPLETED state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobResult {
    pub turns: Vec<TurnRecord>,
    pub speakers: Vec<String>,
    /// New speaker label for transcript segments of the job's meeting, by segment index. Segments
    /// not listed keep their label. `Job::segments_updated` becomes this list's length.
    pub segment_speakers: Vec<(u32, String)>,
}

/// How a worker's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed(JobResult),
    Failed(String),
    Cancelled,
}

/// Result of [`JobStore::create_job`].
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new QUEUED job.
    New(Job),
    /// The job with the same request id, or the meeting's active job: nothing new was created.
    Existing(Job),
}

impl Created {
    pub fn job(&self) -> &Job {
        match self {
            Created::New(job) | Created::Existing(job) => job,
        }
    }

    pub fn into_job(self) -> Job {
        match self {
            Created::New(job) | Created::Existing(job) => job,
        }
    }
}

/// What the worker should do after a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The claim holds; keep going.
    Continue,
    /// The claim holds but a cancel was asked for: stop and finish with [`Outcome::Cancelled`].
    CancelRequested,
    /// The claim is gone (recovered, cancelled, deleted): stop, and write nothing more.
    Lost,
}

/// Result of [`JobStore::cancel`].
#[derive(Debug, Clone, PartialEq)]
pub enum CancelRequest {
    /// The job was QUEUED and is now CANCELLED.
    CancelledQueued(Job),
    /// The job is RUNNING; its cancel flag is now set (the job as it is after setting it).
    Requested(Job),
    /// The job was already terminal; nothing changed.
    AlreadyTerminal(Job),
}

/// Result of [`JobStore::recover_abandoned`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recovery {
    /// Re-queued with attempt + 1.
    pub requeued: Vec<JobId>,
    /// Out of attempts: FAILED, with a message saying how many times they were interrupted.
    pub failed: Vec<JobId>,
    /// A cancel had been asked for before the interruption: CANCELLED rather than re-run.
    pub cancelled: Vec<JobId>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub meeting_id: Option<MeetingId>,
    pub state: Option<JobState>,
}

/// One page of a listing, newest job first.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `after_seq` to get the next page; `None` on the last page.
    pub next_after_seq: Option<i64>,
}

/// Where a meeting listing stopped: the last meeting of a page, in listing order (newest first,
/// ties broken by descending id, so meetings created in the same millisecond are neither skipped
/// nor repeated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeetingCursor {
    pub created_at: Millis,
    pub id: MeetingId,
}

impl MeetingCursor {
    pub fn of(meeting: &Meeting) -> Self {
        Self {
            created_at: meeting.created_at,
            id: meeting.id,
        }
    }
}

/// One page of [`JobStore::list_meetings`], newest meeting first.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingPage {
    /// With their audio facts but without their segments (read one meeting for those).
    pub meetings: Vec<Meeting>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next_after: Option<MeetingCursor>,
}

/// What a store's database failure means for the caller: whether trying again may help.
///
/// Each store maps its driver's errors onto these at its edge (see [`StoreError::Backend`]), so no
/// caller ever looks at a driver's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// Another transaction held what this one needed and the store gave up waiting: SQLite's
    /// `SQLITE_BUSY`/`SQLITE_LOCKED` past the busy timeout; PostgreSQL's serialization failure,
    /// deadlock or lock timeout. The call changed nothing; trying again may succeed.
    Contention,
    /// The database could not be reached: a connection lost or refused, a pool that timed out
    /// waiting for a free connection. Trying again may succeed. (If the connection was lost during
    /// the commit, the call may have taken effect; every [`JobStore`] call keeps its contract when
    /// repeated, though a repeated worker update may then report a stale claim.)
    Unavailable,
    /// Anything else (an I/O error, a full disk, a constraint or result the store did not expect):
    /// trying again will not help.
    Other,
}

impl BackendErrorKind {
    /// Whether a call that failed this way may succeed when made again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            BackendErrorKind::Contention | BackendErrorKind::Unavailable
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("meeting {0} not found")]
    MeetingNotFound(MeetingId),
    #[error("meeting {0} has no audio; upload its audio before starting a diarization job")]
    NoAudio(MeetingId),
    #[error("the job queue is full ({queued} jobs waiting); try again later")]
    QueueFull { queued: u64 },
    #[error(
        "request_id '{request_id}' was already used to start a job for another meeting ({other})"
    )]
    RequestIdConflict {
        request_id: String,
        other: MeetingId,
    },
    #[error("meeting {0} has an active diarization job; wait for it or cancel it before replacing its audio")]
    MeetingBusy(MeetingId),
    #[error(
        "the data directory {path} is in use by another noteflow server (its lock file is held)"
    )]
    Locked { path: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: BoxError,
    },
    /// The database failed a call. `source` is the driver's error, for logs; callers decide by
    /// `kind` (through [`StoreError::is_retryable`] and [`StoreError::is_busy`]).
    #[error("database error: {source}")]
    Backend {
        kind: BackendErrorKind,
        #[source]
        source: BoxError,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("store task failed: {0}")]
    Task(String),
}

/// A driver's (or any other) error, carried without naming its type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl StoreError {
    /// A database failure of the given kind.
    pub fn backend(kind: BackendErrorKind, source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            kind,
            source: source.into(),
        }
    }

    /// The database was busy (another transaction held what this call needed): a retry may
    /// succeed.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                kind: BackendErrorKind::Contention,
                ..
            }
        )
    }

    /// The call failed for a reason that may pass (contention, an unreachable database): a retry
    /// may succeed. Every other error is either the caller's (bad input, a missing meeting, ...) or
    /// lasting.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Backend { kind, .. } if kind.is_retryable())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What changed in a store shared with other processes, as told to every process that uses it
/// (PostgreSQL's `LISTEN/NOTIFY`). A notice is a hint to look again, never the state itself: a
/// receiver reads the job from the store, so a late or duplicated notice does no harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreNotice {
    /// A job became QUEUED (created, released, or re-queued by recovery): an idle runner may claim.
    JobQueued(JobId),
    /// A cancel was asked for a RUNNING job: the process running it should stop its engine.
    CancelRequested(JobId),
    /// A job's state or progress changed without ending (claimed, progress recorded).
    JobProgressed(JobId),
    /// A job reached a terminal state.
    JobEnded(JobId),
    /// Notices may have been missed (the listening connection was lost and is back, or this
    /// receiver fell behind): whoever waits on a job should read it again.
    Resync,
}

impl StoreNotice {
    /// The notice's kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreNotice::JobQueued(_) => "job_queued",
            StoreNotice::CancelRequested(_) => "cancel_requested",
            StoreNotice::JobProgressed(_) => "job_progressed",
            StoreNotice::JobEnded(_) => "job_ended",
            StoreNotice::Resync => "resync",
        }
    }

    /// The job the notice is about (`None` for [`StoreNotice::Resync`]).
    pub fn job_id(&self) -> Option<JobId> {
        match self {
            StoreNotice::JobQueued(id)
            | StoreNotice::CancelRequested(id)
            | StoreNotice::JobProgressed(id)
            | StoreNotice::JobEnded(id) => Some(*id),
            StoreNotice::Resync => None,
        }
    }
}

/// How a store's connection pool is used, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now, busy or idle.
    pub open: usize,
    /// Open connections not in use.
    pub idle: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

/// The job service's state. Every method is one atomic step: it either happens completely or not at
/// all, whatever runs concurrently.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    fn mode(&self) -> StorageMode;

    async fn create_meeting(&self, title: &str) -> StoreResult<Meeting>;

    /// The meeting with its audio facts and its segments (ordered by index), or `None`.
    async fn get_meeting(&self, id: MeetingId) -> StoreResult<Option<Meeting>>;

    /// Meetings newest first (descending `created_at`, then descending id), at most `limit`, only
    /// those after `after` in that order. Their `segments` are left empty.
    async fn list_meetings(
        &self,
        limit: u32,
        after: Option<MeetingCursor>,
    ) -> StoreResult<MeetingPage>;

    /// Deletes the meeting, its audio, its segments, its jobs and their results. A worker still
    /// running one of its jobs finds its claim [`Heartbeat::Lost`]. Returns whether it existed.
    async fn delete_meeting(&self, id: MeetingId) -> StoreResult<bool>;

    /// Stores (or replaces) the meeting's audio. Errors: `MeetingNotFound`; `MeetingBusy` when the
    /// meeting has a QUEUED or RUNNING job (its worker would otherwise diarize audio that no longer
    /// matches).
    async fn put_audio(&self, id: MeetingId, audio: StoredAudio) -> StoreResult<()>;

    /// The meeting's audio, or `None` when the meeting does not exist or has none.
    async fn get_audio(&self, id: MeetingId) -> StoreResult<Option<StoredAudio>>;

    /// Replaces the meeting's transcript segments with `segments` (indices 0..n in the given order);
    /// returns n. Replacing rather than appending keeps a retried import from duplicating segments.
    /// Errors: `MeetingNotFound`; `MeetingBusy` while the meeting has a QUEUED or RUNNING job (its
    /// result relabels segments by index, which must still name the same segments);
    /// `InvalidInput` for a non-finite start or end.
    async fn replace_segments(
        &self,
        id: MeetingId,
        segments: Vec<SegmentInput>,
    ) -> StoreResult<u32>;

    /// Starts a job, atomically, in this order:
    /// 1. `request_id` already used: that job (`Existing`), whatever its state — or
    ///    `RequestIdConflict` if it belongs to another meeting;
    /// 2. `MeetingNotFound`; `NoAudio` when the meeting has no audio;
    /// 3. the meeting has a QUEUED or RUNNING job: that job (`Existing`);
    /// 4. `QueueFull` when `max_queued` jobs are QUEUED already;
    /// 5. a new QUEUED job with attempt 1, progress 0 (`New`).
    async fn create_job(&self, job: NewJob, max_queued: u64) -> StoreResult<Created>;

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>>;

    /// Jobs matching `filter`, newest first (descending `seq`), at most `limit`, only those with
    /// `seq < after_seq` when given.
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        limit: u32,
        after_seq: Option<i64>,
    ) -> StoreResult<JobPage>;

    /// Claims the oldest QUEUED job (lowest `seq`): RUNNING, `worker_id` = `worker`, `started_at` =
    /// now, progress 0, lease until now + `lease`; the attempt is unchanged. `None` when nothing is
    /// queued. Two concurrent calls never claim the same job.
    async fn claim_next(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> StoreResult<Option<(Job, Claim)>>;

    /// Extends the claim's lease to now + `lease` and, when given, records `progress` (0..=1, never
    /// lowered). `Lost` when the claim no longer matches (the row is not RUNNING with this attempt
    /// and worker, or is gone); `CancelRequested` when a cancel was asked for.
    async fn heartbeat(
        &self,
        claim: &Claim,
        progress: Option<f32>,
        lease: Duration,
    ) -> StoreResult<Heartbeat>;

    /// Ends the claimed run: COMPLETED (with its result, the segment relabelling, progress 1 and
    /// `segments_updated`, all in one transaction), FAILED (with the message) or CANCELLED; sets
    /// `finished_at` and clears the lease. Returns `false`, changing nothing, when the claim no longer
    /// matches (a stale worker). `InvalidInput` (changing nothing) for a turn with a non-finite bound.
    async fn finish(&self, claim: &Claim, outcome: Outcome) -> StoreResult<bool>;

    /// Gives the claimed job back without using up an attempt (a graceful shutdown stopped the run):
    /// RUNNING → QUEUED with the same attempt, progress 0, no worker, no lease, `started_at` cleared;
    /// a pending cancel request → CANCELLED instead (error "cancelled while running"). Returns
    /// `false`, changing nothing, when the claim no longer matches. For shutdown only: a claim is
    /// (job, attempt, worker), so if the same worker claimed the job again, a leftover task of the
    /// released run would hold a claim identical to the new run's.
    ///
    /// (A store for several processes at READ COMMITTED must also lock the meeting row in
    /// `create_job`, `put_audio` and `replace_segments`: their "no active job" checks read one
    /// table and write another, which a guard in one UPDATE cannot cover.)
    async fn release(&self, claim: &Claim) -> StoreResult<bool>;

    /// Asks for a cancel. QUEUED → CANCELLED at once (`finished_at` set, error "cancelled before it
    /// started"); RUNNING → cancel flag set; terminal → unchanged. `None` when the job does not exist.
    async fn cancel(&self, id: JobId) -> StoreResult<Option<CancelRequest>>;

    /// Takes over RUNNING jobs whose claim is abandoned: held by a worker other than `me` with a lease
    /// that expired at or before `now` (a single-process store that holds the data directory's lock
    /// passes `Millis::MAX`: every other worker's claim is from a dead process). Each such job:
    /// - cancel requested → CANCELLED;
    /// - `attempt < max_attempts` → QUEUED with attempt + 1, progress 0, no worker, no lease,
    ///   `started_at` cleared;
    /// - otherwise → FAILED with the message "interrupted {attempt} times (the server stopped while
    ///   it ran); gave up after {max_attempts} attempts".
    async fn recover_abandoned(
        &self,
        me: &WorkerId,
        max_attempts: u32,
        now: Millis,
    ) -> StoreResult<Recovery>;

    /// The result turns of a COMPLETED job (ordered by start, then end), `None` if the job does not
    /// exist or is not COMPLETED.
    async fn result_turns(&self, id: JobId) -> StoreResult<Option<Vec<TurnRecord>>>;

    /// Number of jobs in each state (every state present, zero included).
    async fn count_by_state(&self) -> StoreResult<BTreeMap<JobState, u64>>;

    /// Notices of changes made through this store by any process sharing its database, or `None`
    /// for a store that only one process uses (it has nothing to hear that its own process does not
    /// already know). A receiver that falls behind gets `RecvError::Lagged` and should treat it as
    /// [`StoreNotice::Resync`].
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<StoreNotice>> {
        None
    }

    /// The use of the store's connection pool, or `None` for a store without one.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Whether several processes may share this store (so another process may hold live claims):
    /// the server then recovers only lapsed leases, periodically, instead of every other claim at
    /// startup.
    fn is_shared(&self) -> bool {
        false
    }
}

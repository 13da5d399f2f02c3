//! `PostgresStore` on the machine's PostgreSQL (`NOTEFLOW_TEST_POSTGRES_URL`): the conformance suite,
//! each case on a database of its own, and what only a shared database can show (replicas migrating
//! at once, notices between stores, connections killed under the store).

#![cfg(all(feature = "postgres", feature = "conformance"))]

use std::time::{Duration, Instant};

use noteflow_store::postgres::testing::TestDatabase;
use noteflow_store::postgres::AUDIO_CHUNK_BYTES;
use noteflow_store::{
    JobStore, NewJob, Outcome, PostgresOptions, PostgresStore, StoreError, StoreNotice,
    StoredAudio, WorkerId,
};
use tokio::sync::broadcast;

noteflow_store::conformance_tests!(conformance, async {
    let db = TestDatabase::create().await;
    (db.store().await, db)
});

const LEASE: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(10);

fn audio(len: usize) -> StoredAudio {
    StoredAudio {
        bytes: (0..len).map(|i| (i % 251) as u8).collect(),
        duration_secs: 3.0,
        format_hint: Some("wav".into()),
    }
}

fn new_job(meeting_id: noteflow_store::MeetingId) -> NewJob {
    NewJob {
        meeting_id,
        min_speakers: None,
        max_speakers: None,
        request_id: None,
    }
}

/// Waits for the first notice about `job` that `wanted` accepts, skipping others.
async fn next_notice(
    notices: &mut broadcast::Receiver<StoreNotice>,
    wanted: impl Fn(&StoreNotice) -> bool,
) -> StoreNotice {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match notices.recv().await {
                Ok(notice) if wanted(&notice) => return notice,
                Ok(_) => {}
                Err(e) => panic!("notice channel: {e}"),
            }
        }
    })
    .await
    .expect("the notice arrived in time")
}

/// A raw connection to `db`, to look at or disturb what the store does.
async fn raw(db: &TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let db = TestDatabase::create().await;
    let stores = futures::future::join_all((0..6).map(|_| db.store())).await;
    let client = raw(&db).await;
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM noteflow_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1], "each migration applied exactly once");
    // Every store works on the one schema.
    for store in &stores {
        store.create_meeting("m").await.unwrap();
    }
    drop(stores);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let db = TestDatabase::create().await;
    drop(db.store().await);
    raw(&db)
        .await
        .execute(
            "INSERT INTO noteflow_schema_migrations (version) VALUES (99)",
            &[],
        )
        .await
        .unwrap();
    let err = PostgresStore::connect(db.url(), PostgresOptions::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("schema version 99"), "{message}");
    assert!(message.contains("newer noteflow"), "{message}");
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_and_says_where() {
    let started = Instant::now();
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(2),
        ..PostgresOptions::default()
    };
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let err = PostgresStore::connect("postgres://nobody:secret@127.0.0.1:1/nothing", options)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(message.contains("nobody@127.0.0.1:1/nothing"), "{message}");
    assert!(message.contains("cannot connect"), "{message}");
    assert!(
        !message.contains("secret"),
        "no password in errors: {message}"
    );
}

/// How many audio chunks the database holds, and the longest one's length.
async fn chunks(client: &tokio_postgres::Client) -> (i64, i32) {
    let row = client
        .query_one(
            "SELECT COUNT(*), COALESCE(MAX(length(bytes)), 0) FROM meeting_audio_chunks",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_is_stored_in_chunks_and_deleted_with_its_meeting() {
    let db = TestDatabase::create().await;
    let store = db.store().await;
    let meeting = store.create_meeting("long").await.unwrap().id;
    let stored = audio(2 * AUDIO_CHUNK_BYTES + 123);
    store.put_audio(meeting, stored.clone()).await.unwrap();
    assert_eq!(store.get_audio(meeting).await.unwrap().unwrap(), stored);

    let client = raw(&db).await;
    assert_eq!(chunks(&client).await, (3, AUDIO_CHUNK_BYTES as i32));

    // A smaller replacement leaves no chunk of the old audio behind.
    let smaller = audio(10);
    store.put_audio(meeting, smaller.clone()).await.unwrap();
    assert_eq!(store.get_audio(meeting).await.unwrap().unwrap(), smaller);
    assert_eq!(chunks(&client).await, (1, 10));

    assert!(store.delete_meeting(meeting).await.unwrap());
    assert_eq!(chunks(&client).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_by_one_store_are_notices_to_another() {
    let db = TestDatabase::create().await;
    let replica_a = db.store().await;
    let replica_b = db.store().await;
    let mut notices = replica_b.subscribe().expect("a shared store has notices");

    let meeting = replica_a.create_meeting("m").await.unwrap().id;
    replica_a.put_audio(meeting, audio(100)).await.unwrap();
    let job = replica_a
        .create_job(new_job(meeting), 10)
        .await
        .unwrap()
        .into_job();
    let about = |id| move |n: &StoreNotice| n.job_id() == Some(id);
    assert_eq!(
        next_notice(&mut notices, about(job.id)).await,
        StoreNotice::JobQueued(job.id)
    );

    let worker = WorkerId::generate();
    let (_, claim) = replica_a.claim_next(&worker, LEASE).await.unwrap().unwrap();
    assert_eq!(
        next_notice(&mut notices, about(job.id)).await,
        StoreNotice::JobProgressed(job.id),
        "a claim is progress (QUEUED -> RUNNING)"
    );
    replica_a.heartbeat(&claim, Some(0.5), LEASE).await.unwrap();
    assert_eq!(
        next_notice(&mut notices, about(job.id)).await,
        StoreNotice::JobProgressed(job.id)
    );
    replica_b.cancel(job.id).await.unwrap();
    assert_eq!(
        next_notice(&mut notices, about(job.id)).await,
        StoreNotice::CancelRequested(job.id)
    );
    // A heartbeat that only extends the lease is silent: the next notice is the end.
    replica_a.heartbeat(&claim, None, LEASE).await.unwrap();
    assert!(replica_a.finish(&claim, Outcome::Cancelled).await.unwrap());
    assert_eq!(
        next_notice(&mut notices, about(job.id)).await,
        StoreNotice::JobEnded(job.id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_recovers_when_every_connection_is_terminated() {
    let db = TestDatabase::create().await;
    let store = db.store().await;
    let mut notices = store.subscribe().unwrap();
    let meeting = store.create_meeting("m").await.unwrap().id;
    store.put_audio(meeting, audio(100)).await.unwrap();

    let client = raw(&db).await;
    let terminated: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        terminated >= 2,
        "the pool's and the listener's connections ({terminated})"
    );

    // Calls on the dead connections fail as retryable, and a retry gets through.
    let created = tokio::time::timeout(DEADLINE, async {
        loop {
            match store.create_job(new_job(meeting), 10).await {
                Ok(created) => return created.into_job(),
                Err(e) => assert!(e.is_retryable(), "not retryable: {e:?}"),
            }
        }
    })
    .await
    .expect("the store reconnected");

    // The listener reconnects and says notices may have been missed; then it hears again.
    next_notice(&mut notices, |n| *n == StoreNotice::Resync).await;
    let (job, claim) = store
        .claim_next(&WorkerId::generate(), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, created.id);
    assert!(store
        .finish(&claim, Outcome::Failed("x".into()))
        .await
        .unwrap());
    next_notice(&mut notices, |n| *n == StoreNotice::JobEnded(job.id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_status_counts_connections() {
    let db = TestDatabase::create().await;
    let store = db.store().await;
    store.create_meeting("m").await.unwrap();
    let status = store.pool_status().unwrap();
    assert_eq!(status.max_size, 4);
    assert!(status.open >= 1 && status.idle <= status.open, "{status:?}");
    assert!(store.is_shared());
}

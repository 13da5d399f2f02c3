//! `noteflow serve` as a real process with the real engine, killed with real signals mid-job and
//! started again on the same data directory: the interrupted job is re-queued and completes, no job
//! is left RUNNING, and a job interrupted more often than allowed ends FAILED with its message.

mod support;

use std::time::Duration;

use noteflow_client::proto as pb;
use support::*;

#[tokio::test]
async fn a_killed_server_requeues_the_running_job_on_restart_and_it_completes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let job = start_job(&server).await;
    let before = wait_running(&server, &job, 1).await;
    assert!(before.progress_percent < 100.0);
    server.kill();

    let server = Server::start(dir.path(), &[]);
    let done = wait_for(&server, &job, Duration::from_secs(180), |j| {
        j.status != pb::JobStatus::Queued as i32 && j.status != pb::JobStatus::Running as i32
    })
    .await;
    assert_eq!(done.status, pb::JobStatus::Completed as i32, "{done:?}");
    assert_eq!(done.attempt, 2);
    assert!(done.speaker_ids.len() >= 2, "{done:?}");
    assert_eq!(running_jobs(&server).await, 0);
    server.terminate().await;
}

#[tokio::test]
async fn a_job_interrupted_more_than_the_maximum_fails_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let max = ["--max-attempts", "2"];
    let server = Server::start(dir.path(), &max);
    let job = start_job(&server).await;
    wait_running(&server, &job, 1).await;
    server.kill();

    let server = Server::start(dir.path(), &max);
    wait_running(&server, &job, 2).await;
    // A graceful stop gives the job back without using up an attempt ...
    server.terminate().await;
    let server = Server::start(dir.path(), &max);
    wait_running(&server, &job, 2).await;
    // ... a crash does.
    server.kill();

    let server = Server::start(dir.path(), &max);
    let failed = wait_for(&server, &job, Duration::from_secs(10), |j| {
        j.status != pb::JobStatus::Running as i32
    })
    .await;
    assert_eq!(failed.status, pb::JobStatus::Failed as i32, "{failed:?}");
    assert_eq!(
        failed.error_message,
        "interrupted 2 times (the server stopped while it ran); gave up after 2 attempts"
    );
    assert_eq!(running_jobs(&server).await, 0);
    server.kill();
}

//! `noteflow serve` storage modes as an operator sees them: the memory mode's warnings in the log,
//! and a database that cannot be opened refusing the start unless memory fallback is asked for.

mod support;

use std::time::Duration;

use support::*;

const WARNING: &str = "keeps jobs in memory only";

/// Log lines come within this (the waits end as soon as the line is there).
const LOG_WAIT: Duration = Duration::from_secs(30);

#[test]
fn memory_mode_warns_at_start_and_on_every_job() {
    let server = Server::spawn("127.0.0.1:0", &["--database", "memory"]);
    // Logged before the server says where it serves.
    read_until(&server.log, LOG_WAIT, |l| l.contains(WARNING));

    let sample = testdata("pyannote-sample.wav");
    for _ in 0..2 {
        let started = jobs_start(&server.url(), &sample);
        assert_eq!(started["job"]["storage_mode"], "STORAGE_MODE_MEMORY");
        assert!(started["warnings"][0].as_str().unwrap().contains(WARNING));
    }
    // Each start logged its warning before it answered; the rest of the log, read to its end,
    // holds no other (so the start, too, warned exactly once).
    let later = server.kill_and_read_log();
    assert_eq!(
        later.iter().filter(|l| l.contains(WARNING)).count(),
        2,
        "one per job: {later:?}"
    );
}

#[test]
fn an_unusable_database_refuses_the_start_unless_memory_fallback_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let in_the_way = dir.path().join("not-a-directory");
    std::fs::write(&in_the_way, b"a file where the data directory should be").unwrap();
    let data_dir = in_the_way.to_str().unwrap();

    let out = noteflow(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-metrics",
        "--data-dir",
        data_dir,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out.stderr);
    assert!(message.contains(data_dir), "{message}");
    assert!(message.contains("--fallback-to-memory"), "{message}");

    let server = Server::spawn(
        "127.0.0.1:0",
        &["--data-dir", data_dir, "--fallback-to-memory"],
    );
    // Both logged before the server says where it serves.
    read_until(&server.log, LOG_WAIT, |l| {
        l.contains("falling back to memory")
    });
    read_until(&server.log, LOG_WAIT, |l| l.contains(WARNING));
}

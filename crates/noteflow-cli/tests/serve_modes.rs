//! `noteflow serve` storage modes as an operator sees them: the memory mode's warnings in the log,
//! and a database that cannot be opened refusing the start unless memory fallback is asked for.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const WARNING: &str = "keeps jobs in memory only";

/// Starts `noteflow serve ARGS`, returns the child, its gRPC URL and a receiver of its log lines.
fn serve_with_log(
    args: &[&str],
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_noteflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-metrics"])
        .args(args)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = lines_of(child.stderr.take().unwrap());
    let addr = serving_address(&lines_of(child.stdout.take().unwrap()));
    (child, format!("http://{addr}"), log)
}

/// Log lines that arrive within `wait`.
fn lines_within(log: &std::sync::mpsc::Receiver<String>, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match log.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    lines
}

#[test]
fn memory_mode_warns_at_start_and_on_every_job() {
    let (mut child, url, log) = serve_with_log(&["--database", "memory"]);
    let at_start = lines_within(&log, Duration::from_millis(500));
    assert_eq!(
        at_start.iter().filter(|l| l.contains(WARNING)).count(),
        1,
        "{at_start:?}"
    );

    let sample = testdata("pyannote-sample.wav");
    for _ in 0..2 {
        let out = noteflow(&[
            "jobs",
            "start",
            sample.to_str().unwrap(),
            "--server",
            &url,
            "--json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let started: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(started["job"]["storage_mode"], "STORAGE_MODE_MEMORY");
        assert!(started["warnings"][0].as_str().unwrap().contains(WARNING));
    }
    let later = lines_within(&log, Duration::from_millis(500));
    assert_eq!(
        later.iter().filter(|l| l.contains(WARNING)).count(),
        2,
        "one per job: {later:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_unusable_database_refuses_the_start_unless_memory_fallback_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let in_the_way = dir.path().join("not-a-directory");
    std::fs::write(&in_the_way, b"a file where the data directory should be").unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_noteflow"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-metrics",
            "--data-dir",
        ])
        .arg(&in_the_way)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out.stderr);
    assert!(
        message.contains(&in_the_way.display().to_string()),
        "{message}"
    );
    assert!(message.contains("--fallback-to-memory"), "{message}");

    let data_dir = in_the_way.to_str().unwrap();
    let (mut child, _, log) = serve_with_log(&["--data-dir", data_dir, "--fallback-to-memory"]);
    let at_start = lines_within(&log, Duration::from_millis(500));
    assert!(
        at_start
            .iter()
            .any(|l| l.contains("falling back to memory")),
        "{at_start:?}"
    );
    assert!(at_start.iter().any(|l| l.contains(WARNING)), "{at_start:?}");
    let _ = child.kill();
    let _ = child.wait();
}

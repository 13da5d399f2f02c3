//! The `noteflow jobs` and `noteflow diarize --server` commands as a script runs them, against a
//! real `noteflow serve` process with the real engine: JSON output, exit codes, Ctrl-C cancels,
//! and a follow that rides out the server being killed and restarted.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const SAMPLE: &str = "pyannote-sample.wav";

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn start_job(server: &Server, file: &str) -> String {
    jobs_start(&server.url(), &testdata(file))["job_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The jobs `noteflow jobs list ARGS --json` lists.
fn listed(url: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["jobs", "list", "--server", url, "--json"];
    all.extend_from_slice(args);
    let out = noteflow(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    json_line(&text(&out.stdout))["jobs"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits for the child to exit (bounded); returns its exit code.
fn exit_code(child: &mut std::process::Child, limit: Duration) -> i32 {
    let status = wait_exit(child, limit)
        .unwrap_or_else(|| panic!("the command did not end within {limit:?}"));
    status.code().unwrap_or(-1)
}

#[test]
fn watch_rides_out_a_server_restart_and_sees_the_job_complete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let addr = server.addr.clone();
    let job = start_job(&server, MEETING);
    let url = server.url();
    let Running {
        child: mut watch,
        stdout: lines,
        ..
    } = spawn_noteflow(&[
        "jobs",
        "watch",
        &job,
        "--server",
        &url,
        "--json",
        "--poll-interval",
        "0.2",
    ]);

    let mut events = Vec::new();
    loop {
        let event = json_line(
            &lines
                .recv_timeout(Duration::from_secs(60))
                .expect("a progress line"),
        );
        let running = event["event"] == "progress"
            && event["job"]["status"] == "RUNNING"
            && event["job"]["progress_percent"].as_f64().unwrap() > 0.0;
        events.push(event);
        if running {
            break;
        }
    }
    server.kill();
    let restarted = Server::start_on(&addr, dir.path(), &[]);

    assert_eq!(
        exit_code(&mut watch, Duration::from_secs(240)),
        0,
        "events: {events:?}"
    );
    events.extend(lines.try_iter().map(|l| json_line(&l)));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"polling"),
        "the broken stream should switch to polling: {kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"completed"), "{kinds:?}");
    let last_progress = events
        .iter()
        .rev()
        .find(|e| e["event"] == "progress")
        .unwrap();
    assert_eq!(
        last_progress["job"]["attempt"], 2,
        "the killed run was redone: {last_progress}"
    );
    assert!(
        events.last().unwrap()["speaker_ids"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    restarted.kill();
}

#[test]
fn jobs_commands_speak_json_and_exit_with_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--concurrency", "1"]);
    let url = server.url();

    // Refusals: exit 1 with the server's reason.
    let unknown = "123e4567-e89b-12d3-a456-426614174000";
    let err = stderr_of(1, &["jobs", "status", unknown, "--server", &url]);
    assert!(err.contains("NotFound"), "{err}");
    let err = stderr_of(1, &["jobs", "status", "job-7", "--server", &url]);
    assert!(err.contains("not a valid job id"), "{err}");

    // A long job runs; a short one waits behind it, unchanged: a follower gives up on it (exit 4).
    let long = start_job(&server, MEETING);
    let short = start_job(&server, SAMPLE);
    let out = noteflow(&[
        "jobs",
        "watch",
        &short,
        "--server",
        &url,
        "--no-watch",
        "--poll-interval",
        "0.05",
        "--max-unchanged-polls",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&short), "{}", text(&out.stderr));

    // Cancel the long one: confirmed CANCELLED, exit 3.
    let out = noteflow(&["jobs", "cancel", &long, "--server", &url, "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let answer = json_line(&text(&out.stdout));
    assert_eq!(answer["cancelled"], true);
    assert_eq!(answer["job"]["status"], "CANCELLED");

    // Now the short one runs to the end: exit 0, ending with its turns.
    let out = noteflow(&["jobs", "watch", &short, "--server", &url, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let last = json_line(text(&out.stdout).lines().last().unwrap());
    assert_eq!(last["event"], "completed");
    assert_eq!(last["speaker_ids"].as_array().unwrap().len(), 2);

    let out = noteflow(&["jobs", "status", &short, "--server", &url, "--json"]);
    assert_eq!(json_line(&text(&out.stdout))["status"], "COMPLETED");
    let statuses: Vec<Value> = listed(&url, &[])
        .iter()
        .map(|j| j["status"].clone())
        .collect();
    assert_eq!(statuses, ["COMPLETED", "CANCELLED"]);
    assert_eq!(listed(&url, &["--status", "cancelled"]).len(), 1);
    // A usage error is bad input.
    let err = stderr_of(1, &["jobs", "list", "--status", "stuck", "--server", &url]);
    assert!(err.contains("possible values: queued, running"), "{err}");

    // Nobody listening: exit 5 after the retries.
    let nowhere = NothingListens::new();
    let err = stderr_of(5, &["jobs", "status", &short, "--server", &nowhere.url()]);
    assert!(err.contains("unreachable"), "{err}");
    server.kill();
}

#[test]
fn a_failed_job_exits_2_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    // No time at all: every run times out.
    let server = Server::start(
        dir.path(),
        &[
            "--job-timeout-base",
            "0",
            "--job-timeout-per-audio-second",
            "0",
        ],
    );
    let job = start_job(&server, SAMPLE);
    let err = stderr_of(2, &["jobs", "watch", &job, "--server", &server.url()]);
    assert!(err.contains("timed out after"), "{err}");
    server.kill();
}

#[test]
fn diarize_against_a_server_prints_turns_and_ctrl_c_cancels_with_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = server.url();

    let sample = testdata(SAMPLE);
    let out = noteflow(&[
        "diarize",
        sample.to_str().unwrap(),
        "--server",
        &url,
        "--speakers",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rttm = text(&out.stdout);
    assert_two_speaker_sample_rttm(&rttm);

    let long = testdata(MEETING);
    let Running {
        mut child,
        stdout,
        stderr,
    } = spawn_noteflow(&["diarize", long.to_str().unwrap(), "--server", &url]);
    // Wait until its job runs, then press Ctrl-C.
    let started = read_until(&stderr, Duration::from_secs(60), |l| l.starts_with("job "));
    let job = started.last().unwrap().split_whitespace().nth(1).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(wait_for(
        &server,
        job,
        Duration::from_secs(60),
        |j| j.status == noteflow_client::proto::JobStatus::Running as i32,
    ));
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(exit_code(&mut child, Duration::from_secs(30)), 3);
    assert_eq!(
        read_to_end(&stdout, Duration::from_secs(10)),
        Vec::<String>::new(),
        "no turns for a cancelled job"
    );
    assert_eq!(listed(&url, &["--status", "CANCELLED"]).len(), 1);
    server.kill();
}

#[test]
fn an_interrupted_recording_is_accepted_and_the_cli_shows_the_servers_warning() {
    // The sample cut in half: its header still announces 30 s, the file holds about 15 s.
    let whole = std::fs::read(testdata(SAMPLE)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("interrupted.wav");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let out = noteflow(&[
        "jobs",
        "start",
        cut.to_str().unwrap(),
        "--server",
        &server.url(),
        "--json",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: the audio is truncated")
            && stderr.contains("s that decode were stored and will be diarized"),
        "{stderr}"
    );
    // stdout stays one JSON line.
    assert!(json_line(&text(&out.stdout))["job_id"].is_string());
}

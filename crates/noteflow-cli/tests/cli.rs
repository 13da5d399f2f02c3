//! The `noteflow` binary as a user runs it.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn diarize_prints_rttm_that_eval_scores() {
    let sample = testdata("pyannote-sample.wav");
    let out = noteflow(&["diarize", sample.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rttm = text(&out.stdout);
    assert_two_speaker_sample_rttm(&rttm);

    let dir = tempfile::tempdir().unwrap();
    let hyp = dir.path().join("hyp.rttm");
    std::fs::write(&hyp, &rttm).unwrap();
    let reference = testdata("pyannote-sample.rttm");
    let out = noteflow(&[
        "eval",
        "--ref",
        reference.to_str().unwrap(),
        "--hyp",
        hyp.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let total: f64 = report
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no TOTAL DER in {report}"));
    assert!(total <= 6.3, "DER {total} %");

    let out = noteflow(&[
        "diarize",
        "--format",
        "json",
        "--speakers",
        "3",
        sample.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["speakers"].as_array().unwrap().len(), 3);
}

/// Runs `noteflow ARGS`, which must fail as bad input (exit 1); its error output.
fn error_of(args: &[&str]) -> String {
    stderr_of(1, args)
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("notes.wav");
    std::fs::write(&fake, "these are meeting notes, not audio\n").unwrap();
    let err = error_of(&["diarize", fake.to_str().unwrap()]);
    assert!(
        err.contains("notes.wav") && err.to_lowercase().contains("format"),
        "{err}"
    );

    let sample = testdata("pyannote-sample.wav");
    let sample = sample.to_str().unwrap();
    let err = error_of(&["diarize", "--speakers", "0", sample]);
    assert!(err.contains("between 1 and"), "{err}");

    let err = error_of(&[
        "diarize",
        "--min-speakers",
        "4",
        "--max-speakers",
        "2",
        sample,
    ]);
    assert!(err.contains("greater than max_speakers"), "{err}");

    let err = error_of(&["diarize", "--models", dir.path().to_str().unwrap(), sample]);
    assert!(
        err.contains("segmentation-3.0.static-10s.onnx") && err.contains("missing"),
        "{err}"
    );

    let err = error_of(&["diarize", dir.path().join("absent.wav").to_str().unwrap()]);
    assert!(err.contains("absent.wav"), "{err}");
}

#[test]
fn ctrl_c_cancels_the_in_process_job_and_says_how_it_ended() {
    let meeting = testdata(MEETING);
    let Running {
        mut child,
        stdout,
        stderr,
    } = spawn_noteflow(&["diarize", "--progress", meeting.to_str().unwrap()]);
    read_until(&stderr, Duration::from_secs(120), |l| l.starts_with("job "));
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = wait_exit(&mut child, Duration::from_secs(60)).expect("an exit after Ctrl-C");
    assert_eq!(status.code(), Some(3), "exit 3: cancelled");
    let said = read_to_end(&stderr, Duration::from_secs(10));
    assert!(said.iter().any(|l| l.ends_with("is CANCELLED")), "{said:?}");
    assert!(
        read_to_end(&stdout, Duration::from_secs(10)).is_empty(),
        "no turns for a cancelled job"
    );
}

#[test]
fn console_refuses_a_non_loopback_address_unless_told() {
    let refused = error_of(&["console", "--listen", "0.0.0.0:0"]);
    assert!(
        refused.contains("refusing to serve the console on 0.0.0.0:0"),
        "{refused}"
    );
    assert!(refused.contains("--allow-remote"), "{refused}");
}

//! The `noteflow` binary as a user runs it.

mod support;

use support::{assert_two_speaker_sample_rttm, noteflow, testdata, text};

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

#[test]
fn bad_input_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("notes.wav");
    std::fs::write(&fake, "these are meeting notes, not audio\n").unwrap();
    let out = noteflow(&["diarize", fake.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("notes.wav") && err.to_lowercase().contains("format"),
        "{err}"
    );

    let sample = testdata("pyannote-sample.wav");
    let out = noteflow(&["diarize", "--speakers", "0", sample.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("between 1 and"),
        "{}",
        text(&out.stderr)
    );

    let out = noteflow(&[
        "diarize",
        "--min-speakers",
        "4",
        "--max-speakers",
        "2",
        sample.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("greater than max_speakers"),
        "{}",
        text(&out.stderr)
    );

    let out = noteflow(&[
        "diarize",
        "--models",
        dir.path().to_str().unwrap(),
        sample.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("segmentation-3.0.static-10s.onnx") && err.contains("missing"),
        "{err}"
    );

    let out = noteflow(&["diarize", dir.path().join("absent.wav").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("absent.wav"),
        "{}",
        text(&out.stderr)
    );
}

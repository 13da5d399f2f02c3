//! RTTM (Rich Transcription Time Marked) output and input.
//!
//! RTTM is the exchange format of NIST's diarization evaluations, and the one that
//! pyannote, dscore and md-eval read, so writing it lets any of those tools score the
//! engine's output, and reading it lets our own scorer use the references they ship.
//! A SPEAKER record is ten whitespace-separated fields:
//!
//! ```text
//! SPEAKER <file-id> <channel> <onset> <duration> <ortho> <subtype> <speaker> <conf> <slat>
//! ```
//!
//! Only the file id, onset, duration and speaker carry information for diarization; the
//! rest are written as `<NA>` (channel as `1`), which is what pyannote writes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::diarization::{Diarization, Turn};

/// Fields up to and including the speaker name. The trailing `<conf>` and `<slat>` fields
/// are optional here because several tools (and hand-written references) leave them out,
/// and nothing in them is needed to score diarization.
const MIN_SPEAKER_FIELDS: usize = 8;

/// Why an RTTM text or file could not be read. Line numbers count from 1, as editors do,
/// so a message can be acted on without counting lines by hand.
#[derive(Debug, Error)]
pub enum RttmError {
    #[error("cannot read RTTM file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "line {line}: SPEAKER record has {found} fields, expected at least {MIN_SPEAKER_FIELDS} \
         (type, file, channel, onset, duration, ortho, subtype, speaker)"
    )]
    TooFewFields { line: usize, found: usize },
    #[error("line {line}: {field} `{value}` is not a number")]
    InvalidNumber {
        line: usize,
        field: &'static str,
        value: String,
    },
    /// NaN or infinity: such a time cannot be placed on the time line, and would poison
    /// every sum the scorer computes from it.
    #[error("line {line}: {field} `{value}` is not a finite number")]
    NonFinite {
        line: usize,
        field: &'static str,
        value: String,
    },
    #[error("line {line}: duration {value} is negative")]
    NegativeDuration { line: usize, value: f64 },
}

impl Diarization {
    /// Renders the turns as RTTM SPEAKER records, one line per turn, in the order of
    /// `self.turns`, each ending with `\n`.
    ///
    /// Onset and end are rounded to the millisecond first and the duration is their
    /// difference, so reading the file back gives ends within 0.5 ms of the originals
    /// (rounding onset and duration separately could drift by 1 ms).
    ///
    /// RTTM fields are separated by whitespace, so whitespace inside `file_id` or a
    /// speaker label is replaced by `_` (and an empty one written as `_`); otherwise the
    /// line could not be read back. Turns that RTTM cannot express (non-finite times, or
    /// `end <= start` after rounding) are left out rather than written as records every
    /// reader would reject.
    pub fn to_rttm(&self, file_id: &str) -> String {
        let file_id = rttm_token(file_id);
        let mut out = String::new();
        for turn in &self.turns {
            let onset_ms = (turn.start * 1000.0).round();
            let end_ms = (turn.end * 1000.0).round();
            let duration_ms = end_ms - onset_ms;
            if !onset_ms.is_finite() || !duration_ms.is_finite() || duration_ms <= 0.0 {
                continue;
            }
            // Writing into a String cannot fail.
            let _ = writeln!(
                out,
                "SPEAKER {file_id} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>",
                onset_ms / 1000.0,
                duration_ms / 1000.0,
                rttm_token(&turn.speaker)
            );
        }
        out
    }

    /// The whole diarization (turns, speakers, duration) as pretty-printed JSON, for
    /// consumers that want the speaker list and audio length that RTTM cannot carry.
    ///
    /// serde_json writes non-finite numbers as `null`.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and floats into a String has no failure path in
        // serde_json (errors only come from custom Serialize impls or non-string map keys),
        // so an empty result here would only ever flag a bug, never bad input.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Makes a value safe to place in one whitespace-separated RTTM field.
fn rttm_token(value: &str) -> Cow<'_, str> {
    if value.is_empty() {
        Cow::Borrowed("_")
    } else if value.chars().any(char::is_whitespace) {
        Cow::Owned(
            value
                .chars()
                .map(|c| if c.is_whitespace() { '_' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(value)
    }
}

/// Reads the SPEAKER records of an RTTM text, grouped by file id (one RTTM often holds a
/// whole test set), each file's turns in the order they appear.
///
/// Blank lines, `;;` comment lines and records of other types (`SPKR-INFO`, `LEXEME`,
/// ...) are skipped, since they say nothing about who spoke when. Records with a zero
/// duration are skipped too: they hold no speech, and [`Turn`] promises `end > start`.
/// The first malformed SPEAKER record stops the read with an error naming its line,
/// because silently dropping a reference turn would skew every score computed from it.
/// Negative onsets are accepted, as pyannote accepts them.
pub fn parse_rttm(text: &str) -> Result<BTreeMap<String, Vec<Turn>>, RttmError> {
    let mut files: BTreeMap<String, Vec<Turn>> = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(";;") {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.first() != Some(&"SPEAKER") {
            continue;
        }
        if fields.len() < MIN_SPEAKER_FIELDS {
            return Err(RttmError::TooFewFields {
                line,
                found: fields.len(),
            });
        }
        let onset = parse_time(fields[3], "onset", line)?;
        let duration = parse_time(fields[4], "duration", line)?;
        if duration < 0.0 {
            return Err(RttmError::NegativeDuration {
                line,
                value: duration,
            });
        }
        if duration == 0.0 {
            continue;
        }
        let end = onset + duration;
        if !end.is_finite() {
            return Err(RttmError::NonFinite {
                line,
                field: "onset + duration",
                value: end.to_string(),
            });
        }
        files
            .entry(fields[1].to_string())
            .or_default()
            .push(Turn::new(onset, end, fields[7]));
    }
    Ok(files)
}

/// Reads and parses an RTTM file; see [`parse_rttm`].
pub fn read_rttm_file(path: impl AsRef<Path>) -> Result<BTreeMap<String, Vec<Turn>>, RttmError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| RttmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_rttm(&text)
}

fn parse_time(value: &str, field: &'static str, line: usize) -> Result<f64, RttmError> {
    let parsed: f64 = value.parse().map_err(|_| RttmError::InvalidNumber {
        line,
        field,
        value: value.to_string(),
    })?;
    // Rust's parser accepts "NaN", "inf" and "infinity"; none of them is a time.
    if !parsed.is_finite() {
        return Err(RttmError::NonFinite {
            line,
            field,
            value: value.to_string(),
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Diarization {
        Diarization {
            turns: vec![
                Turn::new(0.0, 1.5, "alice"),
                Turn::new(1.25, 4.0, "bob"),
                Turn::new(4.5, 7.125, "alice"),
                Turn::new(10.001, 12.999, "carol"),
            ],
            speakers: vec!["alice".into(), "bob".into(), "carol".into()],
            duration: 13.0,
        }
    }

    fn assert_turns_close(actual: &[Turn], expected: &[Turn]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert_eq!(a.speaker, e.speaker);
            assert!((a.start - e.start).abs() < 1e-9, "{a:?} vs {e:?}");
            assert!((a.end - e.end).abs() < 1e-9, "{a:?} vs {e:?}");
        }
    }

    #[test]
    fn writes_pyannote_style_lines() {
        let rttm = sample().to_rttm("meeting");
        let lines: Vec<&str> = rttm.lines().collect();
        assert_eq!(
            lines[0],
            "SPEAKER meeting 1 0.000 1.500 <NA> <NA> alice <NA> <NA>"
        );
        assert_eq!(
            lines[3],
            "SPEAKER meeting 1 10.001 2.998 <NA> <NA> carol <NA> <NA>"
        );
        assert_eq!(lines.len(), 4);
        assert!(rttm.ends_with('\n'));
    }

    #[test]
    fn round_trips_through_text() {
        let diarization = sample();
        let parsed = parse_rttm(&diarization.to_rttm("meeting")).unwrap();
        assert_eq!(parsed.keys().collect::<Vec<_>>(), vec!["meeting"]);
        assert_turns_close(&parsed["meeting"], &diarization.turns);
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.rttm");
        std::fs::write(&path, sample().to_rttm("meeting")).unwrap();
        let parsed = read_rttm_file(&path).unwrap();
        assert_turns_close(&parsed["meeting"], &sample().turns);
    }

    #[test]
    fn round_trip_rounds_to_the_millisecond_without_drift() {
        // Rounding onset (1.0004 -> 1.000) and duration (1.0002 -> 1.000) separately would
        // read back as an end of 2.000; rounding onset and end gives the nearer 2.001.
        let diarization = Diarization {
            turns: vec![Turn::new(1.0004, 2.0006, "a")],
            speakers: vec!["a".into()],
            duration: 3.0,
        };
        let parsed = parse_rttm(&diarization.to_rttm("f")).unwrap();
        assert_turns_close(&parsed["f"], &[Turn::new(1.0, 2.001, "a")]);
    }

    #[test]
    fn writer_makes_labels_safe_and_skips_unrepresentable_turns() {
        let diarization = Diarization {
            turns: vec![
                Turn::new(0.0, 1.0, "speaker one"),
                Turn::new(f64::NAN, 2.0, "a"),
                Turn::new(2.0, f64::INFINITY, "a"),
                Turn::new(3.0, 2.0, "a"),
                Turn::new(4.0, 4.0002, "a"),
                Turn::new(5.0, 6.0, ""),
            ],
            speakers: vec![],
            duration: 6.0,
        };
        let rttm = diarization.to_rttm("my file");
        assert_eq!(
            rttm,
            "SPEAKER my_file 1 0.000 1.000 <NA> <NA> speaker_one <NA> <NA>\n\
             SPEAKER my_file 1 5.000 1.000 <NA> <NA> _ <NA> <NA>\n"
        );
        let parsed = parse_rttm(&rttm).unwrap();
        assert_eq!(parsed["my_file"].len(), 2);
    }

    #[test]
    fn empty_diarization_writes_and_reads_nothing() {
        let empty = Diarization {
            turns: vec![],
            speakers: vec![],
            duration: 0.0,
        };
        assert_eq!(empty.to_rttm("x"), "");
        assert!(parse_rttm("").unwrap().is_empty());
    }

    #[test]
    fn json_round_trips() {
        let diarization = sample();
        let json = diarization.to_json();
        let back: Diarization = serde_json::from_str(&json).unwrap();
        assert_eq!(back, diarization);
    }

    #[test]
    fn skips_comments_blank_lines_and_other_records_and_groups_by_file() {
        let text = ";; a comment\n\
                    \n\
                    SPKR-INFO a 1 <NA> <NA> <NA> unknown s1 <NA> <NA>\n\
                    SPEAKER b 1 2.0 1.0 <NA> <NA> s2 <NA> <NA>\r\n\
                    \t  \n\
                    LEXEME a 1 0.5 0.2 hello lex s1 <NA> <NA>\n\
                    SPEAKER a 1 0.5 1.25 <NA> <NA> s1 <NA> <NA>\n\
                    SPEAKER a 1 3 0.5 <NA> <NA> s1\n\
                    SPEAKER a 1 4.0 0 <NA> <NA> s1 <NA> <NA>\n";
        let parsed = parse_rttm(text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_turns_close(
            &parsed["a"],
            &[Turn::new(0.5, 1.75, "s1"), Turn::new(3.0, 3.5, "s1")],
        );
        assert_turns_close(&parsed["b"], &[Turn::new(2.0, 3.0, "s2")]);
    }

    #[test]
    fn reads_the_pyannote_sample_layout() {
        let text = "SPEAKER sample 1 6.690 0.430 <NA> <NA> speaker90 <NA> <NA>\n\
                    SPEAKER sample 1 7.550 0.800 <NA> <NA> speaker91 <NA> <NA>\n";
        let parsed = parse_rttm(text).unwrap();
        assert_turns_close(
            &parsed["sample"],
            &[
                Turn::new(6.69, 7.12, "speaker90"),
                Turn::new(7.55, 8.35, "speaker91"),
            ],
        );
    }

    #[test]
    fn too_few_fields_names_the_line() {
        let err = parse_rttm(";; header\nSPEAKER a 1 0.0 1.0 <NA> <NA>\n").unwrap_err();
        assert!(matches!(err, RttmError::TooFewFields { line: 2, found: 7 }));
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }

    #[test]
    fn non_numeric_onset_and_duration_are_errors() {
        let err = parse_rttm("SPEAKER a 1 zero 1.0 <NA> <NA> s <NA> <NA>").unwrap_err();
        assert!(
            matches!(&err, RttmError::InvalidNumber { line: 1, field: "onset", value } if value == "zero"),
            "{err:?}"
        );
        let err = parse_rttm("\n\nSPEAKER a 1 0.0 1,5 <NA> <NA> s <NA> <NA>").unwrap_err();
        assert!(
            matches!(&err, RttmError::InvalidNumber { line: 3, field: "duration", value } if value == "1,5"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "line 3: duration `1,5` is not a number");
    }

    #[test]
    fn negative_duration_is_an_error() {
        let err = parse_rttm("SPEAKER a 1 2.0 -0.5 <NA> <NA> s <NA> <NA>").unwrap_err();
        assert!(matches!(err, RttmError::NegativeDuration { line: 1, value } if value == -0.5));
    }

    #[test]
    fn nan_and_infinite_times_are_errors() {
        for (text, field) in [
            ("SPEAKER a 1 NaN 1.0 <NA> <NA> s <NA> <NA>", "onset"),
            ("SPEAKER a 1 0.0 nan <NA> <NA> s <NA> <NA>", "duration"),
            ("SPEAKER a 1 inf 1.0 <NA> <NA> s <NA> <NA>", "onset"),
            (
                "SPEAKER a 1 0.0 -infinity <NA> <NA> s <NA> <NA>",
                "duration",
            ),
        ] {
            let err = parse_rttm(text).unwrap_err();
            assert!(
                matches!(&err, RttmError::NonFinite { line: 1, field: f, .. } if *f == field),
                "{text}: {err:?}"
            );
        }
        let err = parse_rttm("SPEAKER a 1 1e308 1.7e308 <NA> <NA> s <NA> <NA>").unwrap_err();
        assert!(
            matches!(err, RttmError::NonFinite { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.rttm");
        let err = read_rttm_file(&path).unwrap_err();
        assert!(matches!(&err, RttmError::Io { path: p, .. } if *p == path));
        assert!(err.to_string().contains("absent.rttm"), "{err}");
    }
}

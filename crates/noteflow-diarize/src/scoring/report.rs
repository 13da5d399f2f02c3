//! What scoring is asked for and what it returns: [`ScoringOptions`], [`DerReport`],
//! [`JerReport`].

use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// What to leave out of scoring. `Default` is pyannote's default: no collar, overlap scored.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ScoringOptions {
    /// TOTAL width in seconds of the no-score zone centred on every reference turn
    /// boundary (start and end): `collar / 2` is removed on EACH side. This is exactly
    /// pyannote.metrics' `collar` argument, e.g. `collar: 0.5` removes ±0.25 s, which is
    /// what NIST md-eval and dscore call a collar of 0.25 (they give the half width).
    /// Collars exist because reference boundaries are only accurate to a few hundred
    /// milliseconds. A negative or non-finite value is treated as 0 (no collar).
    pub collar: f64,
    /// Leave out the regions where two or more reference speakers overlap, as
    /// pyannote's `skip_overlap=True` does (systems that cannot output overlap are often
    /// compared this way).
    pub skip_overlap: bool,
}

/// DER and its components for one file, or summed over several, in seconds.
///
/// Sum reports with `+=` ([`AddAssign`]), [`DerReport::accumulate`] or
/// `iter().sum()`: the DER of a set of files is the sum of their errors over the sum of
/// their totals (as pyannote's `abs(metric)`), not the mean of per-file rates, so long
/// files weigh more.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DerReport {
    /// Scored reference speech: seconds of each reference speaker's speech within the
    /// scored region, summed over speakers (so two overlapping speakers count twice).
    pub total: f64,
    /// Reference speech that a correctly mapped hypothesis speaker also covers.
    pub correct: f64,
    /// Reference speech with no hypothesis speaker on it (missed detection).
    pub miss: f64,
    /// Hypothesis speech beyond the number of reference speakers at that time.
    pub false_alarm: f64,
    /// Speech attributed to the wrong (or an unmapped) hypothesis speaker.
    pub confusion: f64,
    /// `(miss + false_alarm + confusion) / total`. When `total == 0` (nothing to score)
    /// it is 0 if there is no error and 1 if there is (only false alarm is possible
    /// then), which is pyannote's convention; it is never NaN or infinite.
    pub der: f64,
}

impl DerReport {
    pub(super) fn from_components(
        total: f64,
        correct: f64,
        miss: f64,
        false_alarm: f64,
        confusion: f64,
    ) -> Self {
        let mut report = Self {
            total,
            correct,
            miss,
            false_alarm,
            confusion,
            der: 0.0,
        };
        report.der = error_rate(report.error(), total);
        report
    }

    /// Seconds of error: miss + false alarm + confusion.
    pub fn error(&self) -> f64 {
        self.miss + self.false_alarm + self.confusion
    }

    /// Adds another file's components and recomputes `der` from the sums.
    pub fn accumulate(&mut self, other: &DerReport) {
        *self = Self::from_components(
            self.total + other.total,
            self.correct + other.correct,
            self.miss + other.miss,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
        );
    }
}

impl AddAssign for DerReport {
    fn add_assign(&mut self, other: DerReport) {
        self.accumulate(&other);
    }
}

impl AddAssign<&DerReport> for DerReport {
    fn add_assign(&mut self, other: &DerReport) {
        self.accumulate(other);
    }
}

impl Add for DerReport {
    type Output = DerReport;
    fn add(mut self, other: DerReport) -> DerReport {
        self.accumulate(&other);
        self
    }
}

impl Sum for DerReport {
    fn sum<I: Iterator<Item = DerReport>>(iter: I) -> Self {
        iter.fold(DerReport::default(), Add::add)
    }
}

impl<'a> Sum<&'a DerReport> for DerReport {
    fn sum<I: Iterator<Item = &'a DerReport>>(iter: I) -> Self {
        iter.fold(DerReport::default(), |mut acc, r| {
            acc.accumulate(r);
            acc
        })
    }
}

/// pyannote's rate convention: an empty denominator gives 0 without error, 1 with error.
fn error_rate(error: f64, total: f64) -> f64 {
    if total > 0.0 {
        error / total
    } else if error > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// One reference speaker's Jaccard error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerJer {
    /// Reference speaker label.
    pub reference: String,
    /// The hypothesis speaker mapped to it, if any.
    pub hypothesis: Option<String>,
    /// `(false_alarm + miss) / union` of the pair, or 1 when unmapped.
    pub jer: f64,
}

/// Jaccard error rate (DIHARD II), as pyannote.metrics' `JaccardErrorRate`: the mean over
/// reference speakers of each one's Jaccard error with its optimally mapped hypothesis
/// speaker. Unlike DER it weighs every reference speaker equally however long they talk,
/// and it is at most 1; hypothesis speakers left unmapped cost nothing.
///
/// Sum over files with `+=` or [`JerReport::accumulate`]: as in pyannote, the result is
/// the mean over all reference speakers of all files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JerReport {
    /// Reference speakers with speech in the scored region.
    pub speaker_count: usize,
    /// Sum of their Jaccard errors.
    pub speaker_error: f64,
    /// `speaker_error / speaker_count`; 1 when `speaker_count == 0`, even when the
    /// hypothesis is empty too. That is pyannote's convention, kept so totals compare;
    /// check `speaker_count` to tell "nothing to score" apart.
    pub jer: f64,
    /// Per reference speaker, sorted by label within each file.
    pub speakers: Vec<SpeakerJer>,
}

impl JerReport {
    pub(super) fn from_speakers(speakers: Vec<SpeakerJer>) -> Self {
        let speaker_error = speakers.iter().map(|s| s.jer).sum();
        let mut report = Self {
            speaker_count: speakers.len(),
            speaker_error,
            jer: 0.0,
            speakers,
        };
        report.update_rate();
        report
    }

    fn update_rate(&mut self) {
        self.jer = if self.speaker_count > 0 {
            self.speaker_error / self.speaker_count as f64
        } else {
            1.0
        };
    }

    /// Adds another file's speakers and recomputes `jer`.
    pub fn accumulate(&mut self, other: &JerReport) {
        self.speaker_count += other.speaker_count;
        self.speaker_error += other.speaker_error;
        self.speakers.extend(other.speakers.iter().cloned());
        self.update_rate();
    }
}

impl AddAssign for JerReport {
    fn add_assign(&mut self, other: JerReport) {
        self.speaker_count += other.speaker_count;
        self.speaker_error += other.speaker_error;
        self.speakers.extend(other.speakers);
        self.update_rate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_add_up_componentwise() {
        let a = DerReport::from_components(10.0, 8.0, 1.0, 0.5, 1.0);
        let b = DerReport::from_components(30.0, 29.0, 0.0, 3.0, 1.0);
        let mut sum = a;
        sum += b;
        assert!((sum.der - (1.0 + 0.5 + 1.0 + 3.0 + 1.0) / 40.0).abs() < 1e-12);
        assert_eq!(sum, a + b);
        assert_eq!(sum, [a, b].iter().sum());
        assert_eq!(DerReport::default() + a, a);

        let mut j = JerReport::from_speakers(vec![SpeakerJer {
            reference: "A".into(),
            hypothesis: None,
            jer: 1.0,
        }]);
        let mut other = JerReport::default();
        other.accumulate(&JerReport::from_speakers(vec![SpeakerJer {
            reference: "B".into(),
            hypothesis: Some("x".into()),
            jer: 0.5,
        }]));
        assert_eq!(other.jer, 0.5);
        j += other;
        assert_eq!(j.speaker_count, 2);
        assert!((j.jer - 0.75).abs() < 1e-12);
    }
}

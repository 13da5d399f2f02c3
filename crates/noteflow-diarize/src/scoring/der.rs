//! [`der`], [`jer`] and [`optimal_mapping`]: crop both sides to the scored region, measure
//! co-occurrence, map speakers optimally, then count per elementary segment.

use std::collections::BTreeMap;

use crate::diarization::Turn;
use crate::scoring::assignment;
use crate::scoring::intervals::length;
use crate::scoring::region::scored_region;
use crate::scoring::report::{DerReport, JerReport, ScoringOptions, SpeakerJer};
use crate::scoring::tracks::{sweep, Tracks};

/// Diarization error rate of `hypothesis` against `reference`, exactly as
/// pyannote.metrics' `DiarizationErrorRate(collar, skip_overlap)` with `detailed=True`.
///
/// `uem` is the `(start, end)` of the region to score; `None` scores the extent of all
/// turns (pyannote's fallback). A `uem` that is empty, reversed or not finite scores
/// nothing (all zeros). Turns outside the region are cut at its edges.
pub fn der(
    reference: &[Turn],
    hypothesis: &[Turn],
    uem: Option<(f64, f64)>,
    opts: &ScoringOptions,
) -> DerReport {
    Scoring::new(reference, hypothesis, uem, opts).der()
}

/// Jaccard error rate of `hypothesis` against `reference`, exactly as pyannote.metrics'
/// `JaccardErrorRate(collar, skip_overlap)`: same scored region and optimal mapping as
/// [`der`], then per reference speaker `(fa + miss) / union` with its mapped hypothesis
/// speaker, 1 for a reference speaker left unmapped, averaged.
pub fn jer(
    reference: &[Turn],
    hypothesis: &[Turn],
    uem: Option<(f64, f64)>,
    opts: &ScoringOptions,
) -> JerReport {
    Scoring::new(reference, hypothesis, uem, opts).jer()
}

/// The optimal mapping used by [`der`] and [`jer`], from hypothesis label to reference
/// label (pyannote's `optimal_mapping`), e.g. to relabel a hypothesis for display.
/// Hypothesis speakers that share no scored time with any reference speaker, or that lost
/// out to a better pairing, are absent.
pub fn optimal_mapping(
    reference: &[Turn],
    hypothesis: &[Turn],
    uem: Option<(f64, f64)>,
    opts: &ScoringOptions,
) -> BTreeMap<String, String> {
    let scoring = Scoring::new(reference, hypothesis, uem, opts);
    scoring
        .mapping
        .iter()
        .enumerate()
        .filter_map(|(r, h)| {
            h.map(|h| {
                (
                    scoring.hypothesis.labels[h].clone(),
                    scoring.reference.labels[r].clone(),
                )
            })
        })
        .collect()
}

/// Cropped tracks, their co-occurrence and the optimal mapping: what DER and JER share.
struct Scoring {
    reference: Tracks,
    hypothesis: Tracks,
    /// `cooccurrence[r][h]`: seconds where reference speaker r and hypothesis speaker h
    /// both talk.
    cooccurrence: Vec<Vec<f64>>,
    /// Reference speaker index -> mapped hypothesis speaker index.
    mapping: Vec<Option<usize>>,
}

impl Scoring {
    fn new(
        reference: &[Turn],
        hypothesis: &[Turn],
        uem: Option<(f64, f64)>,
        opts: &ScoringOptions,
    ) -> Self {
        let reference = Tracks::from_turns(reference);
        let hypothesis = Tracks::from_turns(hypothesis);
        let region = scored_region(&reference, &hypothesis, uem, opts);
        let reference = reference.crop(&region);
        let hypothesis = hypothesis.crop(&region);

        let mut cooccurrence = vec![vec![0.0; hypothesis.labels.len()]; reference.labels.len()];
        sweep(&reference, &hypothesis, |duration, refs, hyps| {
            for &r in refs {
                for &h in hyps {
                    cooccurrence[r][h] += duration;
                }
            }
        });
        // Durations of finite turns are finite, so this only fails if sums overflow
        // (times near f64::MAX); scoring then goes on without a mapping instead of
        // panicking, which shows up as confusion.
        let assignment = assignment::maximize(&cooccurrence)
            .unwrap_or_else(|_| vec![None; reference.labels.len()]);
        // As pyannote, a pair that never talks together is no mapping.
        let mapping = assignment
            .iter()
            .enumerate()
            .map(|(r, h)| h.filter(|&h| cooccurrence[r][h] > 0.0))
            .collect();
        Self {
            reference,
            hypothesis,
            cooccurrence,
            mapping,
        }
    }

    fn der(&self) -> DerReport {
        let (mut total, mut correct, mut miss, mut false_alarm, mut confusion) =
            (0.0, 0.0, 0.0, 0.0, 0.0);
        sweep(&self.reference, &self.hypothesis, |duration, refs, hyps| {
            let (n_ref, n_hyp) = (refs.len(), hyps.len());
            let matched = refs
                .iter()
                .filter(|&&r| self.mapping[r].is_some_and(|h| hyps.contains(&h)))
                .count();
            total += n_ref as f64 * duration;
            correct += matched as f64 * duration;
            miss += n_ref.saturating_sub(n_hyp) as f64 * duration;
            false_alarm += n_hyp.saturating_sub(n_ref) as f64 * duration;
            confusion += n_ref.min(n_hyp).saturating_sub(matched) as f64 * duration;
        });
        DerReport::from_components(total, correct, miss, false_alarm, confusion)
    }

    fn jer(&self) -> JerReport {
        let speakers = self
            .reference
            .labels
            .iter()
            .enumerate()
            .map(|(r, label)| {
                let (hypothesis, jer) = match self.mapping[r] {
                    None => (None, 1.0),
                    Some(h) => {
                        let ref_len = length(&self.reference.intervals[r]);
                        let hyp_len = length(&self.hypothesis.intervals[h]);
                        let both = self.cooccurrence[r][h];
                        let union = ref_len + hyp_len - both;
                        let false_alarm = hyp_len - both;
                        let miss = ref_len - both;
                        let jer = if union > 0.0 {
                            ((false_alarm + miss) / union).clamp(0.0, 1.0)
                        } else {
                            0.0
                        };
                        (Some(self.hypothesis.labels[h].clone()), jer)
                    }
                };
                SpeakerJer {
                    reference: label.clone(),
                    hypothesis,
                    jer,
                }
            })
            .collect();
        JerReport::from_speakers(speakers)
    }
}

#[cfg(test)]
mod tests {
    //! Expected values in the `pyannote_*` tests were obtained from pyannote.metrics 4.2.0
    //! (pyannote.core 6.1.0): components from
    //! `DiarizationErrorRate(collar=..., skip_overlap=...)(reference, hypothesis, uem=..., detailed=True)`
    //! and JER from `JaccardErrorRate(collar=..., skip_overlap=...)` with `detailed=True`,
    //! `uem=None` unless a test passes one. Tolerance 1e-6 s.

    use super::*;
    use crate::rttm::parse_rttm;

    fn turns(spec: &[(f64, f64, &str)]) -> Vec<Turn> {
        spec.iter()
            .map(|&(start, end, speaker)| Turn::new(start, end, speaker))
            .collect()
    }

    fn assert_close(what: &str, actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-6,
            "{what}: got {actual}, pyannote.metrics gives {expected}"
        );
    }

    struct Expected {
        total: f64,
        correct: f64,
        miss: f64,
        false_alarm: f64,
        confusion: f64,
        der: f64,
        jer: f64,
        jer_speakers: usize,
    }

    fn check(
        reference: &[Turn],
        hypothesis: &[Turn],
        uem: Option<(f64, f64)>,
        collar: f64,
        skip_overlap: bool,
        expected: Expected,
    ) {
        let opts = ScoringOptions {
            collar,
            skip_overlap,
        };
        let report = der(reference, hypothesis, uem, &opts);
        assert_close("total", report.total, expected.total);
        assert_close("correct", report.correct, expected.correct);
        assert_close("miss", report.miss, expected.miss);
        assert_close("false_alarm", report.false_alarm, expected.false_alarm);
        assert_close("confusion", report.confusion, expected.confusion);
        assert_close("der", report.der, expected.der);
        let jaccard = jer(reference, hypothesis, uem, &opts);
        assert_close("jer", jaccard.jer, expected.jer);
        assert_eq!(jaccard.speaker_count, expected.jer_speakers);
        assert_eq!(jaccard.speakers.len(), expected.jer_speakers);

        // Scoring must not depend on turn order or on the hypothesis' label names.
        let mut shuffled: Vec<Turn> = hypothesis.iter().rev().cloned().collect();
        for turn in &mut shuffled {
            turn.speaker = format!("renamed-{}", turn.speaker);
        }
        let again = der(
            &reference.iter().rev().cloned().collect::<Vec<_>>(),
            &shuffled,
            uem,
            &opts,
        );
        assert_close("der (reordered, relabelled)", again.der, expected.der);
        assert_close(
            "confusion (reordered, relabelled)",
            again.confusion,
            expected.confusion,
        );
    }

    #[test]
    fn collar_is_the_total_width_centred_on_boundaries() {
        // One reference turn [10, 20), perfect hypothesis: a 1 s collar must remove
        // 0.5 s on each side of both boundaries, leaving [10.5, 19.5).
        let reference = turns(&[(10.0, 20.0, "A")]);
        let opts = ScoringOptions {
            collar: 1.0,
            skip_overlap: false,
        };
        let report = der(&reference, &reference, None, &opts);
        assert_close("total", report.total, 9.0);
        // Hypothesis boundaries off by less than collar / 2 cost nothing...
        let late = turns(&[(10.4, 19.6, "x")]);
        assert_close("der", der(&reference, &late, None, &opts).der, 0.0);
        // ...and beyond it they do.
        let later = turns(&[(10.7, 19.6, "x")]);
        assert_close("miss", der(&reference, &later, None, &opts).miss, 0.2);
    }

    #[test]
    fn perfect_hypothesis_scores_exactly_zero() {
        let reference = sample_reference();
        let report = der(&reference, &reference, None, &ScoringOptions::default());
        assert_eq!(report.der, 0.0);
        assert_eq!(report.confusion, 0.0);
        assert_eq!(report.correct, report.total);
        assert_eq!(
            jer(&reference, &reference, None, &ScoringOptions::default()).jer,
            0.0
        );
    }

    #[test]
    fn empty_reference_and_hypothesis_score_zero_der_and_pyannote_jer() {
        let report = der(&[], &[], None, &ScoringOptions::default());
        assert_eq!(report, DerReport::default());
        let jaccard = jer(&[], &[], None, &ScoringOptions::default());
        assert_eq!(jaccard.speaker_count, 0);
        // pyannote's JaccardErrorRate returns 1 when there is no reference speaker.
        assert_eq!(jaccard.jer, 1.0);
    }

    #[test]
    fn nan_and_degenerate_turns_are_ignored() {
        let reference = turns(&[(0.0, 10.0, "A")]);
        let hypothesis = turns(&[
            (0.0, 10.0, "x"),
            (f64::NAN, 5.0, "x"),
            (2.0, f64::NAN, "y"),
            (f64::NEG_INFINITY, f64::INFINITY, "y"),
            (3.0, 3.0, "y"),
            (6.0, 4.0, "y"),
        ]);
        let report = der(&reference, &hypothesis, None, &ScoringOptions::default());
        assert_eq!(report.der, 0.0);
        assert_close("total", report.total, 10.0);
        let jaccard = jer(&reference, &hypothesis, None, &ScoringOptions::default());
        assert_eq!(jaccard.jer, 0.0);
    }

    #[test]
    fn unusable_options_and_uem_do_not_panic() {
        let reference = turns(&[(0.0, 10.0, "A")]);
        let hypothesis = turns(&[(0.0, 8.0, "x")]);
        for collar in [f64::NAN, f64::INFINITY, -1.0] {
            let report = der(
                &reference,
                &hypothesis,
                None,
                &ScoringOptions {
                    collar,
                    skip_overlap: false,
                },
            );
            assert_close("miss with collar treated as 0", report.miss, 2.0);
        }
        for uem in [
            (5.0, 5.0),
            (8.0, 2.0),
            (f64::NAN, 3.0),
            (0.0, f64::INFINITY),
        ] {
            let report = der(
                &reference,
                &hypothesis,
                Some(uem),
                &ScoringOptions::default(),
            );
            assert_eq!(report, DerReport::default(), "uem {uem:?}");
            assert_eq!(
                jer(
                    &reference,
                    &hypothesis,
                    Some(uem),
                    &ScoringOptions::default()
                )
                .speaker_count,
                0
            );
        }
    }

    #[test]
    fn collar_wider_than_every_turn_leaves_nothing_to_score() {
        let reference = turns(&[(0.0, 1.0, "A"), (1.5, 2.0, "B")]);
        let hypothesis = turns(&[(0.0, 2.0, "x")]);
        let opts = ScoringOptions {
            collar: 2.0,
            skip_overlap: false,
        };
        let report = der(&reference, &hypothesis, None, &opts);
        assert_eq!(report.total, 0.0);
        assert_eq!(report.der, 0.0);
    }

    #[test]
    fn false_alarm_without_reference_speech_is_a_rate_of_one() {
        let report = der(
            &[],
            &turns(&[(1.0, 2.0, "x")]),
            None,
            &ScoringOptions::default(),
        );
        assert_eq!(report.total, 0.0);
        assert_close("false_alarm", report.false_alarm, 1.0);
        assert_eq!(report.der, 1.0);
    }

    #[test]
    fn touching_turns_of_one_speaker_are_not_overlap() {
        let reference = turns(&[(0.0, 5.0, "A"), (5.0, 10.0, "A"), (4.0, 6.0, "B")]);
        let hypothesis = turns(&[(0.0, 10.0, "x")]);
        let opts = ScoringOptions {
            collar: 0.0,
            skip_overlap: true,
        };
        // Only [4, 6) has two speakers; the A/A boundary at 5 is not an overlap.
        let report = der(&reference, &hypothesis, None, &opts);
        assert_close("total", report.total, 8.0);
        assert_eq!(report.der, 0.0);
    }

    #[test]
    fn same_speaker_overlap_is_merged_before_scoring() {
        let raw = turns(&[(0.0, 6.0, "A"), (2.0, 8.0, "A"), (2.0, 8.0, "A")]);
        let merged = turns(&[(0.0, 8.0, "A")]);
        let hypothesis = turns(&[(1.0, 9.0, "x"), (3.0, 4.0, "x")]);
        let opts = ScoringOptions {
            collar: 0.5,
            skip_overlap: true,
        };
        assert_eq!(
            der(&raw, &hypothesis, None, &opts),
            der(&merged, &turns(&[(1.0, 9.0, "x")]), None, &opts)
        );
        let report = der(&raw, &hypothesis, None, &ScoringOptions::default());
        assert_close("total counts A once", report.total, 8.0);
    }

    #[test]
    fn uem_crops_turns_at_its_edges() {
        let reference = turns(&[(0.0, 10.0, "A")]);
        let hypothesis = turns(&[(5.0, 15.0, "x")]);
        let report = der(
            &reference,
            &hypothesis,
            Some((4.0, 12.0)),
            &ScoringOptions::default(),
        );
        assert_close("total", report.total, 6.0);
        assert_close("miss", report.miss, 1.0);
        assert_close("false_alarm", report.false_alarm, 2.0);
        assert_close("correct", report.correct, 5.0);
    }

    #[test]
    fn mapping_is_hungarian_not_greedy() {
        // Co-occurrence (rows A, B, C; columns x, y) = [[5, 4], [4, 0], [0, 2]]: greedy
        // would pair A-x then C-y (7 s correct); the optimum pairs A-y and B-x (8 s).
        let reference = turns(&[(0.0, 9.0, "A"), (9.0, 13.0, "B"), (13.0, 16.0, "C")]);
        let hypothesis = turns(&[(0.0, 4.0, "y"), (4.0, 13.0, "x"), (13.0, 15.0, "y")]);
        let opts = ScoringOptions::default();
        let mapping = optimal_mapping(&reference, &hypothesis, None, &opts);
        assert_eq!(mapping.get("x").map(String::as_str), Some("B"));
        assert_eq!(mapping.get("y").map(String::as_str), Some("A"));
        assert_close(
            "correct",
            der(&reference, &hypothesis, None, &opts).correct,
            8.0,
        );
        let jaccard = jer(&reference, &hypothesis, None, &opts);
        let c = jaccard
            .speakers
            .iter()
            .find(|s| s.reference == "C")
            .unwrap();
        assert_eq!(c.hypothesis, None);
        assert_eq!(c.jer, 1.0);
    }

    #[test]
    fn speakers_that_never_co_occur_are_not_mapped() {
        let reference = turns(&[(0.0, 5.0, "A")]);
        let hypothesis = turns(&[(6.0, 8.0, "x")]);
        assert!(
            optimal_mapping(&reference, &hypothesis, None, &ScoringOptions::default()).is_empty()
        );
        let jaccard = jer(&reference, &hypothesis, None, &ScoringOptions::default());
        assert_eq!(jaccard.speakers[0].hypothesis, None);
        assert_eq!(jaccard.jer, 1.0);
    }

    #[test]
    fn reports_serialize_to_json() {
        let report = der(
            &sample_reference(),
            &sample_perturbed(),
            None,
            &ScoringOptions::default(),
        );
        let json = serde_json::to_string(&report).unwrap();
        let back: DerReport = serde_json::from_str(&json).unwrap();
        // serde_json's default float parser may be off by one ulp, hence no assert_eq.
        for (got, want) in [
            (back.total, report.total),
            (back.correct, report.correct),
            (back.miss, report.miss),
            (back.false_alarm, report.false_alarm),
            (back.confusion, report.confusion),
            (back.der, report.der),
        ] {
            assert!((got - want).abs() < 1e-12, "{json}");
        }
    }

    /// `testdata/pyannote-sample.rttm`, verbatim, so the test does not depend on the
    /// working directory.
    const SAMPLE_RTTM: &str = "\
SPEAKER sample 1 6.690 0.430 <NA> <NA> speaker90 <NA> <NA>\n\
SPEAKER sample 1 7.550 0.800 <NA> <NA> speaker91 <NA> <NA>\n\
SPEAKER sample 1 8.320 1.700 <NA> <NA> speaker90 <NA> <NA>\n\
SPEAKER sample 1 9.920 1.110 <NA> <NA> speaker91 <NA> <NA>\n\
SPEAKER sample 1 10.570 4.130 <NA> <NA> speaker90 <NA> <NA>\n\
SPEAKER sample 1 14.490 3.430 <NA> <NA> speaker91 <NA> <NA>\n\
SPEAKER sample 1 18.050 3.440 <NA> <NA> speaker90 <NA> <NA>\n\
SPEAKER sample 1 18.150 0.440 <NA> <NA> speaker91 <NA> <NA>\n\
SPEAKER sample 1 21.780 6.720 <NA> <NA> speaker91 <NA> <NA>\n\
SPEAKER sample 1 27.850 2.150 <NA> <NA> speaker90 <NA> <NA>\n";

    fn sample_reference() -> Vec<Turn> {
        parse_rttm(SAMPLE_RTTM).unwrap().remove("sample").unwrap()
    }

    /// The sample with every boundary moved by 70-150 ms, labels renamed, turn 6 given
    /// to the other speaker, turn 7 dropped and a false-alarm turn of a third speaker.
    fn sample_perturbed() -> Vec<Turn> {
        turns(&[
            (6.81, 7.05, "S1"),
            (7.47, 8.5, "S2"),
            (8.44, 10.17, "S1"),
            (9.84, 10.96, "S2"),
            (10.69, 14.85, "S1"),
            (14.41, 18.07, "S2"),
            (18.17, 21.42, "S2"),
            (21.9, 28.65, "S2"),
            (27.77, 29.93, "S1"),
            (30.5, 31.25, "S3"),
        ])
    }

    #[test]
    fn pyannote_perfect_collar_0_0() {
        check(
            &turns(&[(0.0, 5.0, "A"), (5.0, 9.0, "B"), (10.0, 14.0, "A")]),
            &turns(&[(0.0, 5.0, "A"), (5.0, 9.0, "B"), (10.0, 14.0, "A")]),
            None,
            0.0,
            false,
            Expected {
                total: 13.0,
                correct: 13.0,
                miss: 0.0,
                false_alarm: 0.0,
                confusion: 0.0,
                der: 0.0,
                jer: 0.0,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_all_miss_collar_0_0() {
        check(
            &turns(&[(0.0, 5.0, "A"), (5.0, 9.0, "B"), (10.0, 14.0, "A")]),
            &turns(&[]),
            None,
            0.0,
            false,
            Expected {
                total: 13.0,
                correct: 0.0,
                miss: 13.0,
                false_alarm: 0.0,
                confusion: 0.0,
                der: 1.0,
                jer: 1.0,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_all_false_alarm_collar_0_0() {
        check(
            &turns(&[]),
            &turns(&[(0.0, 5.0, "x"), (6.0, 8.0, "y")]),
            None,
            0.0,
            false,
            Expected {
                total: 0.0,
                correct: 0.0,
                miss: 0.0,
                false_alarm: 7.0,
                confusion: 0.0,
                der: 1.0,
                jer: 1.0,
                jer_speakers: 0,
            },
        );
    }

    #[test]
    fn pyannote_relabelled_swap_collar_0_0() {
        check(
            &turns(&[(0.0, 5.0, "A"), (5.0, 9.0, "B"), (10.0, 14.0, "A")]),
            &turns(&[
                (0.0, 5.0, "spk_1"),
                (5.0, 9.0, "spk_0"),
                (10.0, 14.0, "spk_1"),
            ]),
            None,
            0.0,
            false,
            Expected {
                total: 13.0,
                correct: 13.0,
                miss: 0.0,
                false_alarm: 0.0,
                confusion: 0.0,
                der: 0.0,
                jer: 0.0,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_confusion_collar_0_0() {
        check(
            &turns(&[(0.0, 10.0, "A"), (10.0, 20.0, "B"), (25.0, 30.0, "A")]),
            &turns(&[
                (1.0, 12.0, "x"),
                (12.0, 22.0, "y"),
                (24.0, 27.0, "x"),
                (27.0, 30.0, "y"),
            ]),
            None,
            0.0,
            false,
            Expected {
                total: 25.0,
                correct: 19.0,
                miss: 1.0,
                false_alarm: 3.0,
                confusion: 5.0,
                der: 0.36,
                jer: 0.4277777777777778,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_confusion_collar_0_5() {
        check(
            &turns(&[(0.0, 10.0, "A"), (10.0, 20.0, "B"), (25.0, 30.0, "A")]),
            &turns(&[
                (1.0, 12.0, "x"),
                (12.0, 22.0, "y"),
                (24.0, 27.0, "x"),
                (27.0, 30.0, "y"),
            ]),
            None,
            0.5,
            false,
            Expected {
                total: 23.5,
                correct: 18.25,
                miss: 0.75,
                false_alarm: 2.5,
                confusion: 4.5,
                der: 0.32978723404255317,
                jer: 0.4050324675324676,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_confusion_collar_1_0() {
        check(
            &turns(&[(0.0, 10.0, "A"), (10.0, 20.0, "B"), (25.0, 30.0, "A")]),
            &turns(&[
                (1.0, 12.0, "x"),
                (12.0, 22.0, "y"),
                (24.0, 27.0, "x"),
                (27.0, 30.0, "y"),
            ]),
            None,
            1.0,
            false,
            Expected {
                total: 22.0,
                correct: 17.5,
                miss: 0.5,
                false_alarm: 2.0,
                confusion: 4.0,
                der: 0.29545454545454547,
                jer: 0.3782051282051282,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_confusion_collar_0_0_uem() {
        check(
            &turns(&[(0.0, 10.0, "A"), (10.0, 20.0, "B"), (25.0, 30.0, "A")]),
            &turns(&[
                (1.0, 12.0, "x"),
                (12.0, 22.0, "y"),
                (24.0, 27.0, "x"),
                (27.0, 30.0, "y"),
            ]),
            Some((2.0, 26.0)),
            0.0,
            false,
            Expected {
                total: 19.0,
                correct: 17.0,
                miss: 0.0,
                false_alarm: 3.0,
                confusion: 2.0,
                der: 0.2631578947368421,
                jer: 0.29166666666666663,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_confusion_collar_0_5_uem() {
        check(
            &turns(&[(0.0, 10.0, "A"), (10.0, 20.0, "B"), (25.0, 30.0, "A")]),
            &turns(&[
                (1.0, 12.0, "x"),
                (12.0, 22.0, "y"),
                (24.0, 27.0, "x"),
                (27.0, 30.0, "y"),
            ]),
            Some((2.0, 26.0)),
            0.5,
            false,
            Expected {
                total: 18.0,
                correct: 16.25,
                miss: 0.0,
                false_alarm: 2.5,
                confusion: 1.75,
                der: 0.2361111111111111,
                jer: 0.2691919191919192,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_overlap_in_reference_collar_0_0() {
        check(
            &turns(&[(0.0, 10.0, "A"), (6.0, 14.0, "B"), (14.0, 18.0, "C")]),
            &turns(&[(0.0, 8.0, "x"), (8.0, 18.0, "y")]),
            None,
            0.0,
            false,
            Expected {
                total: 22.0,
                correct: 14.0,
                miss: 4.0,
                false_alarm: 0.0,
                confusion: 4.0,
                der: 0.36363636363636365,
                jer: 0.5666666666666667,
                jer_speakers: 3,
            },
        );
    }

    #[test]
    fn pyannote_overlap_in_reference_collar_0_0_skip_overlap() {
        check(
            &turns(&[(0.0, 10.0, "A"), (6.0, 14.0, "B"), (14.0, 18.0, "C")]),
            &turns(&[(0.0, 8.0, "x"), (8.0, 18.0, "y")]),
            None,
            0.0,
            true,
            Expected {
                total: 14.0,
                correct: 10.0,
                miss: 0.0,
                false_alarm: 0.0,
                confusion: 4.0,
                der: 0.2857142857142857,
                jer: 0.5,
                jer_speakers: 3,
            },
        );
    }

    #[test]
    fn pyannote_overlap_in_reference_collar_0_5_skip_overlap() {
        check(
            &turns(&[(0.0, 10.0, "A"), (6.0, 14.0, "B"), (14.0, 18.0, "C")]),
            &turns(&[(0.0, 8.0, "x"), (8.0, 18.0, "y")]),
            None,
            0.5,
            true,
            Expected {
                total: 12.5,
                correct: 9.0,
                miss: 0.0,
                false_alarm: 0.0,
                confusion: 3.5,
                der: 0.28,
                jer: 0.5,
                jer_speakers: 3,
            },
        );
    }

    #[test]
    fn pyannote_more_hyp_speakers_collar_0_0() {
        check(
            &turns(&[(0.0, 10.0, "A"), (10.0, 20.0, "B")]),
            &turns(&[
                (0.0, 5.0, "x"),
                (5.0, 10.0, "y"),
                (10.0, 15.0, "z"),
                (15.0, 20.0, "w"),
            ]),
            None,
            0.0,
            false,
            Expected {
                total: 20.0,
                correct: 10.0,
                miss: 0.0,
                false_alarm: 0.0,
                confusion: 10.0,
                der: 0.5,
                jer: 0.5,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_rect_3_ref_vs_2_hyp_collar_0_0() {
        check(
            &turns(&[(0.0, 9.0, "A"), (9.0, 13.0, "B"), (13.0, 16.0, "C")]),
            &turns(&[(0.0, 4.0, "y"), (4.0, 13.0, "x"), (13.0, 15.0, "y")]),
            None,
            0.0,
            false,
            Expected {
                total: 16.0,
                correct: 8.0,
                miss: 1.0,
                false_alarm: 0.0,
                confusion: 7.0,
                der: 0.5,
                jer: 0.7306397306397306,
                jer_speakers: 3,
            },
        );
    }

    #[test]
    fn pyannote_rect_2_ref_vs_3_hyp_collar_0_0() {
        check(
            &turns(&[(0.0, 4.0, "y"), (4.0, 13.0, "x"), (13.0, 15.0, "y")]),
            &turns(&[(0.0, 9.0, "A"), (9.0, 13.0, "B"), (13.0, 16.0, "C")]),
            None,
            0.0,
            false,
            Expected {
                total: 15.0,
                correct: 8.0,
                miss: 0.0,
                false_alarm: 1.0,
                confusion: 7.0,
                der: 0.5333333333333333,
                jer: 0.595959595959596,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_same_speaker_overlap_collar_0_0() {
        check(
            &turns(&[
                (0.0, 4.0, "A"),
                (3.0, 6.0, "A"),
                (6.0, 10.0, "B"),
                (12.0, 15.0, "A"),
                (14.0, 20.0, "A"),
            ]),
            &turns(&[
                (0.0, 5.0, "x"),
                (2.0, 7.0, "x"),
                (7.0, 9.0, "y"),
                (8.0, 13.0, "y"),
                (13.0, 20.0, "x"),
            ]),
            None,
            0.0,
            false,
            Expected {
                total: 18.0,
                correct: 16.0,
                miss: 0.0,
                false_alarm: 2.0,
                confusion: 2.0,
                der: 0.2222222222222222,
                jer: 0.35238095238095235,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_touching_same_speaker_collar_0_5() {
        check(
            &turns(&[(0.0, 5.0, "A"), (5.0, 10.0, "A"), (10.0, 15.0, "B")]),
            &turns(&[(0.0, 4.9, "x"), (5.2, 10.1, "x"), (10.1, 15.0, "y")]),
            None,
            0.5,
            false,
            Expected {
                total: 13.5,
                correct: 13.5,
                miss: 0.0,
                false_alarm: 0.0,
                confusion: 0.0,
                der: 0.0,
                jer: 0.0,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_sample_rttm_vs_perturbed_collar_0_0() {
        check(
            &sample_reference(),
            &sample_perturbed(),
            None,
            0.0,
            false,
            Expected {
                total: 24.349999999999994,
                correct: 20.2,
                miss: 1.2099999999999937,
                false_alarm: 1.7100000000000009,
                confusion: 2.9400000000000013,
                der: 0.2406570841889116,
                jer: 0.29303186021561345,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_sample_rttm_vs_perturbed_collar_0_5() {
        check(
            &sample_reference(),
            &sample_perturbed(),
            None,
            0.5,
            false,
            Expected {
                total: 16.34,
                correct: 13.940000000000001,
                miss: 0.0,
                false_alarm: 0.75,
                confusion: 2.3999999999999986,
                der: 0.19277845777233774,
                jer: 0.26583822736686796,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_sample_rttm_vs_perturbed_collar_0_0_skip_overlap() {
        check(
            &sample_reference(),
            &sample_perturbed(),
            None,
            0.0,
            true,
            Expected {
                total: 20.57,
                correct: 17.10000000000001,
                miss: 0.5299999999999923,
                false_alarm: 1.7100000000000009,
                confusion: 2.9400000000000013,
                der: 0.25182304326689325,
                jer: 0.3091714680344574,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_sample_rttm_vs_perturbed_collar_0_5_skip_overlap() {
        check(
            &sample_reference(),
            &sample_perturbed(),
            None,
            0.5,
            true,
            Expected {
                total: 16.040000000000003,
                correct: 13.640000000000004,
                miss: 0.0,
                false_alarm: 0.75,
                confusion: 2.3999999999999986,
                der: 0.19638403990024925,
                jer: 0.2704992280356899,
                jer_speakers: 2,
            },
        );
    }

    #[test]
    fn pyannote_accumulated_over_three_files() {
        let files = [
            (
                turns(&[(0.0, 10.0, "A"), (10.0, 20.0, "B"), (25.0, 30.0, "A")]),
                turns(&[
                    (1.0, 12.0, "x"),
                    (12.0, 22.0, "y"),
                    (24.0, 27.0, "x"),
                    (27.0, 30.0, "y"),
                ]),
            ),
            (
                turns(&[(0.0, 10.0, "A"), (6.0, 14.0, "B"), (14.0, 18.0, "C")]),
                turns(&[(0.0, 8.0, "x"), (8.0, 18.0, "y")]),
            ),
            (
                turns(&[(0.0, 10.0, "A"), (10.0, 20.0, "B")]),
                turns(&[
                    (0.0, 5.0, "x"),
                    (5.0, 10.0, "y"),
                    (10.0, 15.0, "z"),
                    (15.0, 20.0, "w"),
                ]),
            ),
        ];
        let opts = ScoringOptions::default();
        let mut summed = DerReport::default();
        let mut jer_summed = JerReport::default();
        for (reference, hypothesis) in &files {
            summed += der(reference, hypothesis, None, &opts);
            jer_summed += jer(reference, hypothesis, None, &opts);
        }
        assert_close("total", summed.total, 67.0);
        assert_close("correct", summed.correct, 43.0);
        assert_close("miss", summed.miss, 5.0);
        assert_close("false_alarm", summed.false_alarm, 3.0);
        assert_close("confusion", summed.confusion, 19.0);
        assert_close("der", summed.der, 0.40298507462686567);
        assert_close("jer", jer_summed.jer, 0.5079365079365079);
        let by_sum: DerReport = files.iter().map(|(r, h)| der(r, h, None, &opts)).sum();
        assert_eq!(by_sum, summed);
    }
}

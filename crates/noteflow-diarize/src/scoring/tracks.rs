//! One side's speech per speaker, and the sweep over the elementary segments of two sides.

use std::collections::BTreeMap;

use crate::diarization::Turn;
use crate::scoring::intervals::{intersect, merge_overlapping, Interval};

/// One side's speech, per speaker: sorted, with overlaps merged.
#[derive(Debug, Clone)]
pub(super) struct Tracks {
    /// Sorted, so results do not depend on turn order.
    pub(super) labels: Vec<String>,
    /// Per label, sorted intervals that may touch but never overlap.
    pub(super) intervals: Vec<Vec<Interval>>,
}

impl Tracks {
    pub(super) fn from_turns(turns: &[Turn]) -> Self {
        let mut by_speaker: BTreeMap<&str, Vec<Interval>> = BTreeMap::new();
        for turn in turns {
            if turn.start.is_finite() && turn.end.is_finite() && turn.end > turn.start {
                by_speaker
                    .entry(turn.speaker.as_str())
                    .or_default()
                    .push((turn.start, turn.end));
            }
        }
        let (labels, intervals) = by_speaker
            .into_iter()
            .map(|(label, intervals)| (label.to_string(), merge_overlapping(intervals)))
            .unzip();
        Self { labels, intervals }
    }

    /// Keeps only what lies inside `region`; speakers left with nothing are dropped, as
    /// pyannote drops labels whose segments are all cropped away.
    pub(super) fn crop(&self, region: &[Interval]) -> Self {
        let (labels, intervals) = self
            .labels
            .iter()
            .zip(&self.intervals)
            .filter_map(|(label, intervals)| {
                let kept = intersect(intervals, region);
                (!kept.is_empty()).then(|| (label.clone(), kept))
            })
            .unzip();
        Self { labels, intervals }
    }

    pub(super) fn all_intervals(&self) -> impl Iterator<Item = &Interval> {
        self.intervals.iter().flatten()
    }
}

/// Calls `visit(duration, active_ref, active_hyp)` for every elementary segment between
/// consecutive boundaries of either side, with the speakers active in it.
pub(super) fn sweep(
    reference: &Tracks,
    hypothesis: &Tracks,
    mut visit: impl FnMut(f64, &[usize], &[usize]),
) {
    // (time, side: 0 = reference, 1 = hypothesis, speaker index, +1 start / -1 end)
    let mut events: Vec<(f64, usize, usize, i32)> = Vec::new();
    for (side, tracks) in [reference, hypothesis].into_iter().enumerate() {
        for (speaker, intervals) in tracks.intervals.iter().enumerate() {
            for &(start, end) in intervals {
                events.push((start, side, speaker, 1));
                events.push((end, side, speaker, -1));
            }
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut counts = [
        vec![0i32; reference.labels.len()],
        vec![0i32; hypothesis.labels.len()],
    ];
    let (mut active_ref, mut active_hyp) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < events.len() {
        let time = events[i].0;
        // Apply every event at this instant before measuring, so a speaker whose turn
        // ends exactly where its next one starts stays active.
        while i < events.len() && events[i].0 == time {
            let (_, side, speaker, delta) = events[i];
            counts[side][speaker] += delta;
            i += 1;
        }
        let Some(&(next, ..)) = events.get(i) else {
            break;
        };
        active_ref.clear();
        active_ref.extend((0..counts[0].len()).filter(|&s| counts[0][s] > 0));
        active_hyp.clear();
        active_hyp.extend((0..counts[1].len()).filter(|&s| counts[1][s] > 0));
        if !active_ref.is_empty() || !active_hyp.is_empty() {
            visit(next - time, &active_ref, &active_hyp);
        }
    }
}

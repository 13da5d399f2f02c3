//! Diarization scoring: diarization error rate (DER) and Jaccard error rate (JER), with
//! the same definitions, options and edge-case conventions as pyannote.metrics, so the
//! numbers we report can be compared with published pyannote results.
//!
//! Scoring is exact: the time line is cut at every boundary of every (cropped) turn, and
//! each elementary segment between two consecutive boundaries contributes its exact
//! duration, as pyannote does. Sampling frames instead would add an error of up to one
//! frame per boundary, which matters when comparing systems that differ by tenths of a
//! percent.
//!
//! Steps, for one file:
//! 1. Turns with a non-finite time or `end <= start` are ignored (they carry no speech we
//!    could place); overlapping turns of the same speaker are merged, so a speaker is
//!    counted once however many of its turns cover an instant.
//! 2. The scored region is the UEM (or, without one, the extent of all turns), minus a
//!    collar around every reference turn boundary, minus (with `skip_overlap`) the regions
//!    where two or more reference speakers talk at once. Both turn lists are cropped to it.
//! 3. The optimal one-to-one mapping between reference and hypothesis speakers maximises
//!    their total co-occurrence (Hungarian algorithm, [`hungarian`]).
//! 4. Per elementary segment with `n_ref` reference and `n_hyp` hypothesis speakers,
//!    of which `matched` are mapped pairs: miss `max(0, n_ref - n_hyp)`, false alarm
//!    `max(0, n_hyp - n_ref)`, confusion `min(n_ref, n_hyp) - matched`, correct `matched`,
//!    total `n_ref`, each weighted by the segment's duration.
//!
//! Known difference from pyannote: pyannote keeps overlapping turns of the same speaker as
//! separate tracks, so it counts such a stretch twice in `total` and places collars at
//! every original turn boundary. We merge them first (step 1), which is what such input
//! means; for input without same-speaker overlap the results are identical. Turns of one
//! speaker that merely touch are kept apart, so their shared boundary gets a collar, as in
//! pyannote.

use std::collections::BTreeMap;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::diarization::Turn;

/// A half-open stretch of time `[start, end)` in seconds.
type Interval = (f64, f64);

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
    fn from_components(
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
    fn from_speakers(speakers: Vec<SpeakerJer>) -> Self {
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

/// One side's speech, per speaker: sorted, with overlaps merged.
#[derive(Debug, Clone)]
struct Tracks {
    /// Sorted, so results do not depend on turn order.
    labels: Vec<String>,
    /// Per label, sorted intervals that may touch but never overlap.
    intervals: Vec<Vec<Interval>>,
}

impl Tracks {
    fn from_turns(turns: &[Turn]) -> Self {
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
    fn crop(&self, region: &[Interval]) -> Self {
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

    fn all_intervals(&self) -> impl Iterator<Item = &Interval> {
        self.intervals.iter().flatten()
    }
}

/// Sorts and merges intervals that overlap; intervals that only touch stay separate
/// (see the module doc on collars).
fn merge_overlapping(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match merged.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Sorted, disjoint cover of the intervals (touching ones merged): a set of times.
fn union(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.retain(|(start, end)| end > start);
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// `a ∩ b` for sorted interval lists, `b` disjoint; empty pieces are dropped.
fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if end > start {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `base \ cut` for sorted, disjoint interval lists.
fn subtract(base: &[Interval], cut: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(start, end) in base {
        let mut cursor = start;
        while j < cut.len() && cut[j].1 <= cursor {
            j += 1;
        }
        let mut k = j;
        while k < cut.len() && cut[k].0 < end {
            if cut[k].0 > cursor {
                out.push((cursor, cut[k].0));
            }
            cursor = cursor.max(cut[k].1);
            k += 1;
        }
        if end > cursor {
            out.push((cursor, end));
        }
    }
    out
}

fn length(intervals: &[Interval]) -> f64 {
    intervals.iter().map(|(start, end)| end - start).sum()
}

/// Where two or more reference speakers talk at once.
fn overlap_regions(reference: &Tracks) -> Vec<Interval> {
    let mut events: Vec<(f64, i32)> = reference
        .all_intervals()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    // Ends before starts at the same instant, so touching turns never count as overlap.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut regions = Vec::new();
    let mut active = 0;
    for (i, &(time, delta)) in events.iter().enumerate() {
        active += delta;
        if let Some(&(next, _)) = events.get(i + 1) {
            if next > time && active >= 2 {
                regions.push((time, next));
            }
        }
    }
    union(regions)
}

/// The region that counts: UEM minus reference collars minus (optionally) reference
/// overlap. Collars and overlap come from the uncropped reference, as in pyannote.
fn scored_region(
    reference: &Tracks,
    hypothesis: &Tracks,
    uem: Option<(f64, f64)>,
    opts: &ScoringOptions,
) -> Vec<Interval> {
    let base = match uem {
        Some((start, end)) if start.is_finite() && end.is_finite() && end > start => {
            vec![(start, end)]
        }
        Some(_) => return Vec::new(),
        None => {
            let all = reference.all_intervals().chain(hypothesis.all_intervals());
            let extent = all.fold(None, |acc: Option<Interval>, &(s, e)| match acc {
                None => Some((s, e)),
                Some((lo, hi)) => Some((lo.min(s), hi.max(e))),
            });
            match extent {
                Some(extent) => vec![extent],
                None => return Vec::new(),
            }
        }
    };
    let half = if opts.collar.is_finite() && opts.collar > 0.0 {
        opts.collar / 2.0
    } else {
        0.0
    };
    let mut excluded = Vec::new();
    if half > 0.0 {
        for &(start, end) in reference.all_intervals() {
            excluded.push((start - half, start + half));
            excluded.push((end - half, end + half));
        }
    }
    if opts.skip_overlap {
        excluded.extend(overlap_regions(reference));
    }
    subtract(&base, &union(excluded))
}

/// Calls `visit(duration, active_ref, active_hyp)` for every elementary segment between
/// consecutive boundaries of either side, with the speakers active in it.
fn sweep(reference: &Tracks, hypothesis: &Tracks, mut visit: impl FnMut(f64, &[usize], &[usize])) {
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
        let assignment = hungarian::maximize(&cooccurrence)
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

/// Optimal assignment (Kuhn–Munkres / Hungarian algorithm) on a dense matrix, O(n²·m)
/// for n ≤ m, i.e. O(n³) on square matrices. Written here rather than pulled in as a
/// dependency because speaker mapping is its only user and the matrices are tiny.
pub mod hungarian {
    use thiserror::Error;

    /// Why a matrix cannot be assigned.
    #[derive(Debug, Clone, PartialEq, Error)]
    pub enum HungarianError {
        #[error("row {row} has {found} entries but row 0 has {expected}; the matrix must be rectangular")]
        RaggedRow {
            row: usize,
            expected: usize,
            found: usize,
        },
        /// NaN has no order and infinities break the dual updates, so neither has an
        /// optimal assignment to find.
        #[error("entry ({row}, {col}) is {value}; entries must be finite")]
        NonFinite { row: usize, col: usize, value: f64 },
    }

    /// Assigns rows to columns, one-to-one, minimising the total cost. Returns, per row,
    /// its column; rectangular matrices are allowed, and when there are more rows than
    /// columns the rows left over get `None`. An empty matrix gives an empty result.
    pub fn minimize(cost: &[Vec<f64>]) -> Result<Vec<Option<usize>>, HungarianError> {
        let rows = cost.len();
        let cols = cost.first().map_or(0, Vec::len);
        for (row, values) in cost.iter().enumerate() {
            if values.len() != cols {
                return Err(HungarianError::RaggedRow {
                    row,
                    expected: cols,
                    found: values.len(),
                });
            }
            if let Some((col, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(HungarianError::NonFinite { row, col, value });
            }
        }
        if cols == 0 {
            return Ok(vec![None; rows]);
        }
        if rows <= cols {
            Ok(solve(rows, cols, |r, c| cost[r][c])
                .into_iter()
                .map(Some)
                .collect())
        } else {
            // The algorithm needs rows <= columns: solve the transpose and invert it.
            let mut assignment = vec![None; rows];
            for (col, row) in solve(cols, rows, |r, c| cost[c][r]).into_iter().enumerate() {
                assignment[row] = Some(col);
            }
            Ok(assignment)
        }
    }

    /// Like [`minimize`], but maximising the total weight.
    pub fn maximize(weight: &[Vec<f64>]) -> Result<Vec<Option<usize>>, HungarianError> {
        let negated: Vec<Vec<f64>> = weight
            .iter()
            .map(|row| row.iter().map(|w| -w).collect())
            .collect();
        minimize(&negated)
    }

    /// Shortest augmenting paths with dual potentials, rows inserted one at a time.
    /// Requires `1 <= n <= m`; returns each row's column.
    fn solve(n: usize, m: usize, cost: impl Fn(usize, usize) -> f64) -> Vec<usize> {
        // 1-based rows and columns; column 0 is a virtual column holding the row being
        // inserted.
        let mut u = vec![0.0; n + 1];
        let mut v = vec![0.0; m + 1];
        // owner[j]: row assigned to column j (0 = free).
        let mut owner = vec![0usize; m + 1];
        for row in 1..=n {
            owner[0] = row;
            let mut j0 = 0;
            let mut min_slack = vec![f64::INFINITY; m + 1];
            // Fresh each phase: predecessor links then always point to columns visited
            // earlier in this phase, so the path below is acyclic whatever the numbers.
            let mut way = vec![0usize; m + 1];
            let mut used = vec![false; m + 1];
            loop {
                used[j0] = true;
                let i0 = owner[j0];
                let mut delta = f64::INFINITY;
                let mut j1 = 0;
                for j in 1..=m {
                    if used[j] {
                        continue;
                    }
                    let slack = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if slack < min_slack[j] {
                        min_slack[j] = slack;
                        way[j] = j0;
                    }
                    // `j1 == 0` takes the first unused column even if rounding made every
                    // comparison false: each pass then still visits a new column, so the
                    // loop ends within m passes.
                    if j1 == 0 || min_slack[j] < delta {
                        delta = min_slack[j];
                        j1 = j;
                    }
                }
                for j in 0..=m {
                    if used[j] {
                        u[owner[j]] += delta;
                        v[j] -= delta;
                    } else {
                        min_slack[j] -= delta;
                    }
                }
                j0 = j1;
                if owner[j0] == 0 {
                    break;
                }
            }
            // Flip the augmenting path back to the virtual column.
            while j0 != 0 {
                let previous = way[j0];
                owner[j0] = owner[previous];
                j0 = previous;
            }
        }
        let mut column_of = vec![0; n];
        for (col, &row) in owner.iter().enumerate().skip(1) {
            if row != 0 {
                column_of[row - 1] = col - 1;
            }
        }
        column_of
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn cost_of(cost: &[Vec<f64>], assignment: &[Option<usize>]) -> f64 {
            assignment
                .iter()
                .enumerate()
                .filter_map(|(r, c)| c.map(|c| cost[r][c]))
                .sum()
        }

        fn assert_valid(cost: &[Vec<f64>], assignment: &[Option<usize>]) {
            let rows = cost.len();
            let cols = cost.first().map_or(0, Vec::len);
            assert_eq!(assignment.len(), rows);
            let assigned: Vec<usize> = assignment.iter().flatten().copied().collect();
            assert_eq!(assigned.len(), rows.min(cols), "{assignment:?}");
            let mut unique = assigned.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                assigned.len(),
                "column used twice: {assignment:?}"
            );
            assert!(assigned.iter().all(|&c| c < cols));
        }

        /// Minimum over every one-to-one assignment of min(rows, cols) pairs.
        fn brute_force_min(cost: &[Vec<f64>]) -> f64 {
            fn go(cost: &[Vec<f64>], row: usize, used: &mut Vec<bool>, left: usize) -> f64 {
                if left == 0 {
                    return 0.0;
                }
                if cost.len() - row < left {
                    return f64::INFINITY;
                }
                // Either leave this row out (only if rows > cols) or assign it.
                let mut best = if cost.len() - row > left {
                    go(cost, row + 1, used, left)
                } else {
                    f64::INFINITY
                };
                for c in 0..used.len() {
                    if !used[c] {
                        used[c] = true;
                        best = best.min(cost[row][c] + go(cost, row + 1, used, left - 1));
                        used[c] = false;
                    }
                }
                best
            }
            let cols = cost.first().map_or(0, Vec::len);
            go(cost, 0, &mut vec![false; cols], cost.len().min(cols))
        }

        /// Deterministic pseudo-random numbers (64-bit LCG), so failures reproduce.
        struct Lcg(u64);
        impl Lcg {
            fn next(&mut self) -> f64 {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (self.0 >> 11) as f64 / (1u64 << 53) as f64
            }
        }

        #[test]
        fn square_textbook_example() {
            let cost = vec![
                vec![4.0, 1.0, 3.0],
                vec![2.0, 0.0, 5.0],
                vec![3.0, 2.0, 2.0],
            ];
            let assignment = minimize(&cost).unwrap();
            assert_eq!(assignment, vec![Some(1), Some(0), Some(2)]);
            assert_eq!(cost_of(&cost, &assignment), 5.0);
        }

        #[test]
        fn rectangular_more_rows_than_columns() {
            // The speaker case of the metrics tests: greedy would take (0,0)=5 then (2,1)=2
            // for 7; the optimum pairs (0,1)=4 and (1,0)=4 for 8 and leaves row 2 out.
            let weight = vec![vec![5.0, 4.0], vec![4.0, 0.0], vec![0.0, 2.0]];
            let assignment = maximize(&weight).unwrap();
            assert_eq!(assignment, vec![Some(1), Some(0), None]);
        }

        #[test]
        fn rectangular_more_columns_than_rows() {
            let cost = vec![vec![7.0, 2.0, 9.0, 4.0], vec![3.0, 1.0, 8.0, 6.0]];
            let assignment = minimize(&cost).unwrap();
            assert_valid(&cost, &assignment);
            // Two optima tie at 5 ((0,1)+(1,0) and (0,3)+(1,1)): check the cost, not the pick.
            assert_eq!(cost_of(&cost, &assignment), brute_force_min(&cost));
            assert_eq!(cost_of(&cost, &assignment), 5.0);
        }

        #[test]
        fn matches_brute_force_on_random_matrices() {
            let mut rng = Lcg(42);
            for trial in 0..400 {
                let rows = 1 + trial % 6;
                let cols = 1 + (trial / 6) % 6;
                // Every other trial uses small integers, to exercise ties.
                let integer = trial % 2 == 0;
                let cost: Vec<Vec<f64>> = (0..rows)
                    .map(|_| {
                        (0..cols)
                            .map(|_| {
                                let x = rng.next() * 10.0 - 3.0;
                                if integer {
                                    x.round()
                                } else {
                                    x
                                }
                            })
                            .collect()
                    })
                    .collect();
                let assignment = minimize(&cost).unwrap();
                assert_valid(&cost, &assignment);
                let expected = brute_force_min(&cost);
                let got = cost_of(&cost, &assignment);
                assert!(
                    (got - expected).abs() < 1e-9,
                    "trial {trial}: {cost:?} gave {got}, optimum {expected}"
                );

                let best = maximize(&cost).unwrap();
                assert_valid(&cost, &best);
                let negated: Vec<Vec<f64>> = cost
                    .iter()
                    .map(|r| r.iter().map(|x| -x).collect())
                    .collect();
                let expected_max = -brute_force_min(&negated);
                assert!(
                    (cost_of(&cost, &best) - expected_max).abs() < 1e-9,
                    "trial {trial}"
                );
            }
        }

        #[test]
        fn empty_and_degenerate_shapes() {
            assert_eq!(minimize(&[]).unwrap(), Vec::<Option<usize>>::new());
            assert_eq!(minimize(&[vec![], vec![]]).unwrap(), vec![None, None]);
            assert_eq!(minimize(&[vec![3.5]]).unwrap(), vec![Some(0)]);
            assert_eq!(maximize(&[vec![0.0, 0.0]]).unwrap().len(), 1);
        }

        #[test]
        fn rejects_ragged_and_non_finite_input() {
            assert_eq!(
                minimize(&[vec![1.0, 2.0], vec![3.0]]),
                Err(HungarianError::RaggedRow {
                    row: 1,
                    expected: 2,
                    found: 1
                })
            );
            assert!(matches!(
                minimize(&[vec![1.0, f64::NAN]]),
                Err(HungarianError::NonFinite { row: 0, col: 1, .. })
            ));
            assert!(matches!(
                maximize(&[vec![1.0], vec![f64::INFINITY]]),
                Err(HungarianError::NonFinite { row: 1, col: 0, .. })
            ));
        }

        #[test]
        fn huge_finite_values_still_give_a_valid_assignment() {
            // Slack arithmetic overflows here; the result need not be optimal, but it must
            // be a one-to-one assignment and the call must return.
            let cost = vec![
                vec![f64::MAX, -f64::MAX, 0.0],
                vec![-f64::MAX, f64::MAX, 1.0],
                vec![0.0, 1.0, f64::MAX],
            ];
            let assignment = minimize(&cost).unwrap();
            assert_valid(&cost, &assignment);
        }
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
    fn reports_add_up_componentwise() {
        let a = DerReport::from_components(10.0, 8.0, 1.0, 0.5, 1.0);
        let b = DerReport::from_components(30.0, 29.0, 0.0, 3.0, 1.0);
        let mut sum = a;
        sum += b;
        assert_close("der", sum.der, (1.0 + 0.5 + 1.0 + 3.0 + 1.0) / 40.0);
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
        assert_close("jer", j.jer, 0.75);
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

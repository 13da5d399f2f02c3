//! The diarization pipeline (pyannote 3.1's recipe, with CAM++ embeddings).
//!
//! 1. Segmentation over sliding 10 s windows; powerset decoding gives, per window and frame, which of
//!    up to three *local* speakers talk.
//! 2. One embedding per (window, local speaker), from the frames where that speaker talks alone.
//! 3. Agglomerative clustering of those embeddings into *global* speakers; each window's local
//!    speakers are then mapped to distinct global speakers.
//! 4. Aggregation over overlapping windows: per frame, how many speakers talk and how strongly each
//!    global speaker is active; the top-`count` speakers of each frame become the turns, so
//!    overlapped speech is kept.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::audio::{Audio16k, SAMPLE_RATE};
use crate::backend::{
    Backend, EMBEDDING_CHUNK_FRAMES, EMBEDDING_DIM, FRAMES_PER_WINDOW, POWERSET_CLASSES,
    WINDOW_SAMPLES,
};
use crate::clustering::{self, Dendrogram, Linkage};
use crate::fbank::{self, Fbank, FRAME_LENGTH, FRAME_SHIFT, NUM_MEL_BINS};
use crate::models::ModelError;
use crate::panic::panic_message;
use crate::scoring::assignment;
use crate::{Diarization, Turn};

/// Samples between two segmentation frames (SincNet stride 10 × three max-pools of 3).
pub const FRAME_STEP_SAMPLES: usize = 270;
/// Samples seen by one segmentation frame.
const RECEPTIVE_FIELD_SAMPLES: usize = 991;
/// Local speakers per window.
const LOCAL_SPEAKERS: usize = 3;
/// Which local speakers each powerset class contains, as a bit set.
const POWERSET: [u8; POWERSET_CLASSES] = [0b000, 0b001, 0b010, 0b100, 0b011, 0b101, 0b110];
/// Largest number of embeddings clustered directly; beyond it the dendrogram is built on an even
/// sample (O(n²) memory) and every embedding joins its nearest centroid.
const MAX_CLUSTERED_EMBEDDINGS: usize = 3000;
/// Upper bound on `num_speakers` / `max_speakers`.
pub const MAX_SPEAKERS: usize = 64;

/// Tuning of the pipeline. The defaults were chosen by measurement (see BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Step between windows, in segmentation frames (16.875 ms each), so frames of all windows
    /// fall on one grid.
    pub step_frames: usize,
    /// Seconds of clean (non-overlapped) speech below which a local speaker's embedding also uses
    /// its overlapped frames.
    pub min_clean_seconds: f32,
    /// Seconds of speech below which a local speaker gets no embedding at all (and is dropped).
    pub min_embed_seconds: f32,
    /// Seconds of speech a cluster needs to count as a speaker of its own...
    pub min_cluster_seconds: f32,
    /// ...and the share of all speech it needs, so that a long meeting's handful of stray
    /// embeddings (overlaps, noise) does not become extra speakers.
    pub min_cluster_fraction: f32,
    pub linkage: Linkage,
    /// Merge distance above which clusters stay apart.
    pub threshold: f32,
    /// Gaps in one speaker's speech shorter than this are filled.
    pub min_duration_off: f64,
    /// Turns shorter than this are removed.
    pub min_duration_on: f64,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            step_frames: 148,
            min_clean_seconds: 2.0,
            min_embed_seconds: 0.5,
            min_cluster_seconds: 6.0,
            min_cluster_fraction: 0.01,
            linkage: Linkage::Average,
            threshold: 0.3,
            min_duration_off: 0.1,
            min_duration_on: 0.2,
            threads: 0,
        }
    }
}

/// How many speakers the caller expects. Built through the constructors, so a value of this type is
/// always consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpeakerConstraints {
    min: Option<usize>,
    max: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("number of speakers must be between 1 and {MAX_SPEAKERS}, got {0}")]
    OutOfRange(usize),
    #[error("min_speakers ({min}) is greater than max_speakers ({max})")]
    MinAboveMax { min: usize, max: usize },
}

impl SpeakerConstraints {
    /// No constraint: the clustering threshold decides.
    pub fn auto() -> Self {
        Self::default()
    }

    /// Exactly `n` speakers. The result has `n` speakers whenever the audio holds speech enough for
    /// them (at least `n` local speakers over all windows); silence or very short audio gives fewer.
    pub fn exact(n: usize) -> Result<Self, ConstraintError> {
        Self::bounds(Some(n), Some(n))
    }

    /// Between `min` and `max` speakers (either may be open).
    pub fn bounds(min: Option<usize>, max: Option<usize>) -> Result<Self, ConstraintError> {
        for n in [min, max].into_iter().flatten() {
            if n == 0 || n > MAX_SPEAKERS {
                return Err(ConstraintError::OutOfRange(n));
            }
        }
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return Err(ConstraintError::MinAboveMax { min, max });
            }
        }
        Ok(Self { min, max })
    }

    pub fn min(&self) -> Option<usize> {
        self.min
    }

    pub fn max(&self) -> Option<usize> {
        self.max
    }

    fn apply(&self, k: usize) -> usize {
        let k = self.min.map_or(k, |m| k.max(m));
        self.max.map_or(k, |m| k.min(m))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiarizeError {
    /// The caller's cancel flag was raised; no result was produced.
    #[error("diarization was cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// What one window contributes: its start frame on the global grid, each frame's active local
/// speakers (bit set), and the embedding of each local speaker that spoke enough.
struct WindowResult {
    start_frame: usize,
    activity: Vec<u8>,
    speakers: Vec<LocalSpeaker>,
}

struct LocalSpeaker {
    local: usize,
    embedding: Vec<f32>,
    /// Seconds of speech the embedding was taken from.
    seconds: f32,
}

/// Runs the pipeline with one back-end. Cheap to share between threads.
pub struct Diarizer {
    backend: Box<dyn Backend>,
    config: PipelineConfig,
    fbank: Fbank,
}

impl Diarizer {
    pub fn new(backend: Box<dyn Backend>, config: PipelineConfig) -> Self {
        Self {
            backend,
            config,
            fbank: Fbank::new(),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Diarize `audio`. `progress` receives the fraction done (0..=1) as windows complete;
    /// `cancel` is checked between windows, between embedding chunks and throughout clustering, so
    /// a cancel takes effect within one model call per worker thread.
    pub fn diarize(
        &self,
        audio: &Audio16k,
        constraints: SpeakerConstraints,
        progress: &mut dyn FnMut(f32),
        cancel: &AtomicBool,
    ) -> Result<Diarization, DiarizeError> {
        let duration = audio.duration_secs();
        let starts = window_starts(audio.len(), self.config.step_frames);
        let windows = self.process_windows(audio, &starts, progress, cancel)?;
        let assignment = self.cluster(&windows, constraints, cancel)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(DiarizeError::Cancelled);
        }
        let turns = self.reconstruct(&windows, &assignment, duration);
        progress(1.0);
        let result = build_diarization(turns, duration);
        if let Some(min) = constraints.min().filter(|&m| m > result.speakers.len()) {
            tracing::warn!(
                wanted = min,
                found = result.speakers.len(),
                "the audio holds fewer distinct speakers' speech than asked for"
            );
        }
        Ok(result)
    }

    fn process_windows(
        &self,
        audio: &Audio16k,
        starts: &[usize],
        progress: &mut dyn FnMut(f32),
        cancel: &AtomicBool,
    ) -> Result<Vec<WindowResult>, DiarizeError> {
        let threads = match self.config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(starts.len().max(1));
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(usize, Result<Option<WindowResult>, ModelError>)>();
        let mut results: Vec<Option<WindowResult>> = (0..starts.len()).map(|_| None).collect();
        let mut first_error = None;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let tx = tx.clone();
                let (next, failed) = (&next, &failed);
                scope.spawn(move || {
                    let mut window = vec![0f32; WINDOW_SAMPLES];
                    loop {
                        if cancel.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= starts.len() {
                            break;
                        }
                        audio.copy_window_f32(starts[i] * FRAME_STEP_SAMPLES, &mut window);
                        // A panicking back-end must not take the caller (a job server) down.
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            self.process_window(starts[i], &window, cancel)
                        }))
                        .unwrap_or_else(|panic| {
                            Err(ModelError::Inference {
                                model: "back-end",
                                message: format!("panicked: {}", panic_message(&*panic)),
                            })
                        });
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut done = 0usize;
            for (i, result) in rx {
                match result {
                    Ok(w) => results[i] = w,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
                done += 1;
                // Windows are ~95% of the work; clustering and reconstruction the rest.
                progress(0.95 * done as f32 / starts.len() as f32);
            }
        });
        if let Some(e) = first_error {
            return Err(e.into());
        }
        // Windows left unprocessed mean the workers stopped for a cancel (even one lowered since).
        results
            .into_iter()
            .map(|w| w.ok_or(DiarizeError::Cancelled))
            .collect()
    }

    fn process_window(
        &self,
        start_frame: usize,
        window: &[f32],
        cancel: &AtomicBool,
    ) -> Result<Option<WindowResult>, ModelError> {
        let logits = self.backend.segment(window)?;
        if logits.len() != FRAMES_PER_WINDOW * POWERSET_CLASSES || logits.iter().any(|v| v.is_nan())
        {
            return Err(ModelError::Inference {
                model: "segmentation",
                message: format!("{} values, or NaN, in its output", logits.len()),
            });
        }
        let activity: Vec<u8> = logits
            .chunks_exact(POWERSET_CLASSES)
            .map(|frame| {
                let best = frame
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(c, _)| c);
                POWERSET[best]
            })
            .collect();

        let mut features = Vec::new();
        let mut speakers = Vec::new();
        for local in 0..LOCAL_SPEAKERS {
            let bit = 1u8 << local;
            let active = activity.iter().filter(|&&a| a & bit != 0).count();
            let clean = activity.iter().filter(|&&a| a == bit).count();
            let frame_secs = FRAME_STEP_SAMPLES as f32 / SAMPLE_RATE as f32;
            let use_clean_only = clean as f32 * frame_secs >= self.config.min_clean_seconds;
            let selected = if use_clean_only { clean } else { active };
            let seconds = selected as f32 * frame_secs;
            if seconds < self.config.min_embed_seconds {
                continue;
            }
            if features.is_empty() {
                self.fbank.compute(window, &mut features);
            }
            let rows = select_fbank_rows(&features, &activity, bit, use_clean_only);
            if rows.is_empty() {
                continue;
            }
            let Some(embedding) = self.embed_rows(rows, cancel)? else {
                return Ok(None);
            };
            speakers.push(LocalSpeaker {
                local,
                embedding,
                seconds,
            });
        }
        Ok(Some(WindowResult {
            start_frame,
            activity,
            speakers,
        }))
    }

    /// Embedding of mean-normalised feature rows (not empty), chunked to
    /// `EMBEDDING_CHUNK_FRAMES`; `None` when cancelled between chunks.
    fn embed_rows(
        &self,
        mut rows: Vec<f32>,
        cancel: &AtomicBool,
    ) -> Result<Option<Vec<f32>>, ModelError> {
        fbank::subtract_mean(&mut rows);
        let frames = rows.len() / NUM_MEL_BINS;
        let chunk_len = EMBEDDING_CHUNK_FRAMES * NUM_MEL_BINS;
        if frames < EMBEDDING_CHUNK_FRAMES {
            // Repeat short speech up to one chunk: statistics pooling sees the same distribution.
            let mut tiled = Vec::with_capacity(chunk_len);
            while tiled.len() < chunk_len {
                let take = (chunk_len - tiled.len()).min(rows.len());
                tiled.extend_from_slice(&rows[..take]);
            }
            rows = tiled;
        }
        let frames = rows.len() / NUM_MEL_BINS;
        let chunks = frames.div_ceil(EMBEDDING_CHUNK_FRAMES);
        let mut sum = vec![0f32; EMBEDDING_DIM];
        for c in 0..chunks {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            // The last chunk is aligned to the end so that every chunk is full length.
            let start = (c * EMBEDDING_CHUNK_FRAMES).min(frames - EMBEDDING_CHUNK_FRAMES);
            let chunk = &rows[start * NUM_MEL_BINS..start * NUM_MEL_BINS + chunk_len];
            let mut e = self.backend.embed(chunk)?;
            if e.len() != EMBEDDING_DIM || e.iter().any(|v| !v.is_finite()) {
                return Err(ModelError::Inference {
                    model: "embedding",
                    message: format!("{} values, or non-finite ones, in its output", e.len()),
                });
            }
            clustering::normalize(&mut e);
            sum.iter_mut().zip(&e).for_each(|(s, x)| *s += x);
        }
        clustering::normalize(&mut sum);
        Ok(Some(sum))
    }

    /// Global speaker of each (window, local speaker), or `None` for local speakers left out.
    fn cluster(
        &self,
        windows: &[WindowResult],
        constraints: SpeakerConstraints,
        cancel: &AtomicBool,
    ) -> Result<Vec<[Option<usize>; LOCAL_SPEAKERS]>, DiarizeError> {
        let mut points = Vec::new();
        let mut seconds = Vec::new();
        let mut window_of = Vec::new();
        for (w, window) in windows.iter().enumerate() {
            for s in &window.speakers {
                points.extend_from_slice(&s.embedding);
                seconds.push(s.seconds);
                window_of.push(w);
            }
        }
        let mut assignment = vec![[None; LOCAL_SPEAKERS]; windows.len()];
        let n = seconds.len();
        if n == 0 {
            return Ok(assignment);
        }

        // Build the dendrogram on about MAX_CLUSTERED_EMBEDDINGS points: all local speakers of
        // every k-th window, so the sample is spread evenly in time and over local speaker slots.
        let every = n.div_ceil(MAX_CLUSTERED_EMBEDDINGS);
        let sample: Vec<usize> = (0..n).filter(|&i| window_of[i] % every == 0).collect();
        let sample_points: Vec<f32> = sample
            .iter()
            .flat_map(|&i| {
                points[i * EMBEDDING_DIM..(i + 1) * EMBEDDING_DIM]
                    .iter()
                    .copied()
            })
            .collect();
        let sample_seconds: Vec<f32> = sample.iter().map(|&i| seconds[i]).collect();
        let dendrogram = Dendrogram::build_cancellable(
            &sample_points,
            EMBEDDING_DIM,
            self.config.linkage,
            cancel,
        )
        .ok_or(DiarizeError::Cancelled)?;

        // A cluster counts as a speaker only with enough speech behind it. The cut with the
        // threshold gives the natural number of speakers; constraints then move it.
        let min_seconds = (self.config.min_cluster_seconds * (sample.len() as f32 / n as f32))
            .max(self.config.min_cluster_fraction * sample_seconds.iter().sum::<f32>());
        let large_clusters =
            |labels: &[usize]| large_clusters_with(labels, &sample_seconds, min_seconds);
        let natural = dendrogram.clusters_below(self.config.threshold);
        let natural_labels = dendrogram.cut(natural);
        let natural_large = large_clusters(&natural_labels);
        let found = natural_large.len().clamp(1, MAX_SPEAKERS);
        tracing::debug!(
            embeddings = n,
            clustered = sample.len(),
            natural,
            large = natural_large.len(),
            min_seconds,
            "clustering"
        );
        let wanted = constraints.apply(found).min(sample.len());
        let (labels, keep) = if wanted == found && !natural_large.is_empty() {
            // The threshold's answer stands; small clusters join the nearest large one below.
            (natural_labels, natural_large)
        } else if wanted == found {
            // Every cluster is small (very short audio): one speaker, the biggest cluster.
            let all = large_clusters_with(&natural_labels, &sample_seconds, 0.0);
            (natural_labels, all.into_iter().take(1).collect())
        } else {
            // The caller's count overrides the threshold: cut finer until there are `wanted`
            // clusters with enough speech, else take the plain cut into `wanted` clusters.
            (wanted..=sample.len())
                .map(|cut| dendrogram.cut(cut))
                .find_map(|labels: Vec<usize>| {
                    let large = large_clusters(&labels);
                    (large.len() >= wanted).then(|| (labels, large[..wanted].to_vec()))
                })
                .unwrap_or_else(|| {
                    let labels = dendrogram.cut(wanted);
                    let all = large_clusters_with(&labels, &sample_seconds, 0.0);
                    (labels, all)
                })
        };
        let all = clustering::centroids(
            &sample_points,
            EMBEDDING_DIM,
            &labels,
            labels.iter().max().map_or(0, |m| m + 1),
        );
        let centroids: Vec<Vec<f32>> = keep.iter().filter_map(|&c| all[c].clone()).collect();

        // Map each window's local speakers to distinct global speakers, maximising similarity.
        for (w, window) in windows.iter().enumerate() {
            let sims: Vec<Vec<f32>> = window
                .speakers
                .iter()
                .map(|s| {
                    centroids
                        .iter()
                        .map(|c| clustering::similarity(&s.embedding, c))
                        .collect()
                })
                .collect();
            let best = best_distinct_assignment(&sims, centroids.len());
            for (s, g) in window.speakers.iter().zip(best) {
                assignment[w][s.local] = Some(g);
            }
        }
        Ok(assignment)
    }

    /// Aggregate the clustered windows into per-frame speaker activity, then into turns.
    fn reconstruct(
        &self,
        windows: &[WindowResult],
        assignment: &[[Option<usize>; LOCAL_SPEAKERS]],
        duration: f64,
    ) -> Vec<Turn> {
        let k = assignment
            .iter()
            .flatten()
            .flatten()
            .max()
            .map_or(0, |m| m + 1);
        let total_frames = windows
            .last()
            .map_or(0, |w| w.start_frame + FRAMES_PER_WINDOW);
        let mut activation = vec![0f32; total_frames * k.max(1)];
        let mut count_sum = vec![0f32; total_frames];
        let mut coverage = vec![0f32; total_frames];
        for (window, map) in windows.iter().zip(assignment) {
            for (f, &bits) in window.activity.iter().enumerate() {
                let g = window.start_frame + f;
                coverage[g] += 1.0;
                count_sum[g] += bits.count_ones() as f32;
                // A global speaker counts once per window even when two local speakers map to it.
                for (local, global) in map.iter().enumerate() {
                    let Some(c) = *global else { continue };
                    let counted_before =
                        (0..local).any(|l| map[l] == Some(c) && bits & (1 << l) != 0);
                    if bits & (1 << local) != 0 && !counted_before {
                        activation[g * k + c] += 1.0;
                    }
                }
            }
        }
        let frame_secs = FRAME_STEP_SAMPLES as f64 / SAMPLE_RATE as f64;
        let first_middle = RECEPTIVE_FIELD_SAMPLES as f64 / 2.0 / SAMPLE_RATE as f64;
        let middle = |f: usize| first_middle + f as f64 * frame_secs;
        let mut active = vec![false; total_frames * k.max(1)];
        let mut order: Vec<usize> = (0..k).collect();
        for g in 0..total_frames {
            if coverage[g] == 0.0 || k == 0 {
                continue;
            }
            let count = (count_sum[g] / coverage[g]).round() as usize;
            let row = &activation[g * k..(g + 1) * k];
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            for &c in order.iter().take(count.min(k)) {
                if row[c] > 0.0 {
                    active[g * k + c] = true;
                }
            }
        }
        let mut turns = Vec::new();
        for c in 0..k {
            let mut speaker_turns: Vec<(f64, f64)> = Vec::new();
            let mut start = None;
            for g in 0..=total_frames {
                let on = g < total_frames && active[g * k + c];
                match (on, start) {
                    (true, None) => start = Some(g),
                    (false, Some(s)) => {
                        let (a, b) = (middle(s), middle(g).min(duration));
                        if b > a {
                            speaker_turns.push((a, b));
                        }
                        start = None;
                    }
                    _ => {}
                }
            }
            let mut merged: Vec<(f64, f64)> = Vec::new();
            for (a, b) in speaker_turns {
                match merged.last_mut() {
                    Some(last) if a - last.1 < self.config.min_duration_off => last.1 = b,
                    _ => merged.push((a, b)),
                }
            }
            turns.extend(
                merged
                    .into_iter()
                    .filter(|(a, b)| b - a >= self.config.min_duration_on)
                    .map(|(a, b)| Turn::new(a, b, format!("#{c}"))),
            );
        }
        turns
    }
}

/// Clusters of `labels` whose members carry at least `min_seconds` of speech, largest first.
fn large_clusters_with(labels: &[usize], seconds: &[f32], min_seconds: f32) -> Vec<usize> {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut total = vec![0f32; k];
    labels.iter().zip(seconds).for_each(|(&l, s)| total[l] += s);
    let mut large: Vec<usize> = (0..k).filter(|&c| total[c] >= min_seconds).collect();
    large.sort_by(|&a, &b| total[b].total_cmp(&total[a]));
    large
}

/// First frame (on the global grid) of each window. Windows step by `step_frames`; the last one
/// ends at or just past the end of the audio, so everything is covered.
fn window_starts(num_samples: usize, step_frames: usize) -> Vec<usize> {
    let step = step_frames.max(1);
    if num_samples <= WINDOW_SAMPLES {
        return vec![0];
    }
    let last = (num_samples - WINDOW_SAMPLES).div_ceil(FRAME_STEP_SAMPLES);
    let mut starts: Vec<usize> = (0..last).step_by(step).collect();
    starts.push(last);
    starts
}

/// Feature rows (10 ms fbank frames) whose time falls on segmentation frames where the speaker
/// `bit` is active (alone, when `clean_only`).
fn select_fbank_rows(features: &[f32], activity: &[u8], bit: u8, clean_only: bool) -> Vec<f32> {
    let mut rows = Vec::new();
    for (j, row) in features.chunks_exact(NUM_MEL_BINS).enumerate() {
        let center = (j * FRAME_SHIFT + FRAME_LENGTH / 2) as f64;
        let f = ((center - RECEPTIVE_FIELD_SAMPLES as f64 / 2.0) / FRAME_STEP_SAMPLES as f64)
            .round()
            .clamp(0.0, (activity.len() - 1) as f64) as usize;
        let a = activity[f];
        if (clean_only && a == bit) || (!clean_only && a & bit != 0) {
            rows.extend_from_slice(row);
        }
    }
    rows
}

/// Assign each row (local speaker) a column (global speaker), distinct while columns last,
/// maximising the summed similarity; with more rows than columns, each row takes its most
/// similar column. The distinct case is the same assignment problem as scoring's speaker
/// mapping, so it uses the same solver.
fn best_distinct_assignment(sims: &[Vec<f32>], k: usize) -> Vec<usize> {
    let m = sims.len();
    if k == 0 {
        return vec![0; m];
    }
    if m > k {
        return sims.iter().map(|row| most_similar(&row[..k])).collect();
    }
    // Cosine similarities lie in [-1, 1]; a non-finite one (a degenerate embedding) is made
    // worse than any real one, so that it is chosen only when nothing else is left, instead of
    // making the solver refuse the matrix.
    let weights: Vec<Vec<f64>> = sims
        .iter()
        .map(|row| {
            row[..k]
                .iter()
                .map(|&s| if s.is_finite() { f64::from(s) } else { -1e6 })
                .collect()
        })
        .collect();
    // The matrix is rectangular and finite, so the solver cannot fail; rows <= columns, so
    // every row gets a column.
    assignment::maximize(&weights)
        .expect("a finite rectangular matrix always has an assignment")
        .into_iter()
        .map(|column| column.unwrap_or(0))
        .collect()
}

/// Index of the largest similarity (the first among equals; 0 if none is a number).
fn most_similar(row: &[f32]) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &s) in row.iter().enumerate() {
        if s > best.1 {
            best = (i, s);
        }
    }
    best.0
}

/// Sort turns, and name speakers SPEAKER_00, SPEAKER_01, ... in order of first appearance.
fn build_diarization(mut turns: Vec<Turn>, duration: f64) -> Diarization {
    turns.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.end.total_cmp(&b.end)));
    let mut speakers: Vec<String> = Vec::new();
    let mut names = std::collections::HashMap::new();
    for t in &mut turns {
        let next = names.len();
        let name = names
            .entry(t.speaker.clone())
            .or_insert_with(|| format!("SPEAKER_{next:02}"))
            .clone();
        if !speakers.contains(&name) {
            speakers.push(name.clone());
        }
        t.speaker = name;
    }
    Diarization {
        turns,
        speakers,
        duration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_audio_on_the_frame_grid() {
        assert_eq!(window_starts(1000, 59), vec![0]);
        assert_eq!(window_starts(WINDOW_SAMPLES, 59), vec![0]);
        let n = WINDOW_SAMPLES + 5 * SAMPLE_RATE as usize;
        let starts = window_starts(n, 59);
        let last = *starts.last().unwrap();
        assert!(last * FRAME_STEP_SAMPLES + WINDOW_SAMPLES >= n);
        assert!(last * FRAME_STEP_SAMPLES + WINDOW_SAMPLES < n + FRAME_STEP_SAMPLES);
        assert!(starts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 59));
    }

    #[test]
    fn constraints_are_validated_and_applied() {
        assert_eq!(
            SpeakerConstraints::exact(0),
            Err(ConstraintError::OutOfRange(0))
        );
        assert_eq!(
            SpeakerConstraints::exact(65),
            Err(ConstraintError::OutOfRange(65))
        );
        assert_eq!(
            SpeakerConstraints::bounds(Some(4), Some(2)),
            Err(ConstraintError::MinAboveMax { min: 4, max: 2 })
        );
        assert_eq!(SpeakerConstraints::exact(3).unwrap().apply(1), 3);
        let b = SpeakerConstraints::bounds(Some(2), Some(4)).unwrap();
        assert_eq!((b.apply(1), b.apply(3), b.apply(7)), (2, 3, 4));
        assert_eq!(SpeakerConstraints::auto().apply(5), 5);
    }

    #[test]
    fn assignment_is_distinct_when_possible() {
        let sims = vec![vec![0.9, 0.8], vec![0.95, 0.1]];
        assert_eq!(best_distinct_assignment(&sims, 2), vec![1, 0]);
        // More local speakers than clusters: nearest cluster, shared.
        let one: Vec<Vec<f32>> = sims.iter().map(|r| vec![r[0]]).collect();
        assert_eq!(best_distinct_assignment(&one, 1), vec![0, 0]);
        // Many clusters: same answer as exhaustive search over all columns.
        let k = 40;
        let rows: Vec<Vec<f32>> = (0..3)
            .map(|r| {
                (0..k)
                    .map(|c| ((r * 7 + c * 13) % 17) as f32 / 17.0)
                    .collect()
            })
            .collect();
        let got = best_distinct_assignment(&rows, k);
        let score = |a: &[usize]| a.iter().enumerate().map(|(r, &c)| rows[r][c]).sum::<f32>();
        let mut best = f32::MIN;
        for a in 0..k {
            for b in (0..k).filter(|&b| b != a) {
                for c in (0..k).filter(|&c| c != a && c != b) {
                    best = best.max(score(&[a, b, c]));
                }
            }
        }
        assert!((score(&got) - best).abs() < 1e-6);
        assert!(got[0] != got[1] && got[1] != got[2] && got[0] != got[2]);
    }

    /// Best summed similarity over every assignment of the rows to columns, distinct when
    /// there are enough columns: the exhaustive search the pipeline used before it shared the
    /// scoring's solver.
    fn exhaustive_best(sims: &[Vec<f32>], k: usize) -> f64 {
        fn go(
            sims: &[Vec<f32>],
            row: usize,
            k: usize,
            used: &mut Vec<bool>,
            distinct: bool,
        ) -> f64 {
            if row == sims.len() {
                return 0.0;
            }
            let mut best = f64::NEG_INFINITY;
            for c in 0..k {
                if distinct && used[c] {
                    continue;
                }
                used[c] = true;
                let rest = go(sims, row + 1, k, used, distinct);
                used[c] = false;
                best = best.max(f64::from(sims[row][c]) + rest);
            }
            best
        }
        go(sims, 0, k, &mut vec![false; k], sims.len() <= k)
    }

    #[test]
    fn assignment_matches_exhaustive_search_on_random_matrices() {
        // Deterministic 64-bit LCG, so a failure reproduces.
        let mut state = 0x5EED_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u32 << 24) as f32
        };
        for trial in 0..400 {
            let rows = 1 + trial % LOCAL_SPEAKERS;
            let k = 1 + (trial / LOCAL_SPEAKERS) % 8;
            // Every other trial quantises similarities to tenths, so that ties are common.
            let quantise = trial % 2 == 0;
            let sims: Vec<Vec<f32>> = (0..rows)
                .map(|_| {
                    (0..k)
                        .map(|_| {
                            let s = next() * 2.0 - 1.0;
                            if quantise {
                                (s * 10.0).round() / 10.0
                            } else {
                                s
                            }
                        })
                        .collect()
                })
                .collect();
            let got = best_distinct_assignment(&sims, k);
            assert_eq!(got.len(), rows, "trial {trial}");
            assert!(got.iter().all(|&c| c < k), "trial {trial}: {got:?}");
            if rows <= k {
                let mut distinct = got.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(
                    distinct.len(),
                    rows,
                    "trial {trial}: {got:?} is not distinct"
                );
            }
            let score: f64 = got
                .iter()
                .enumerate()
                .map(|(r, &c)| f64::from(sims[r][c]))
                .sum();
            let best = exhaustive_best(&sims, k);
            assert!(
                (score - best).abs() < 1e-6,
                "trial {trial}: {sims:?} -> {got:?} scores {score}, exhaustive search {best}"
            );
        }
    }

    #[test]
    fn a_non_finite_similarity_is_chosen_last() {
        let sims = vec![vec![f32::NAN, 0.2], vec![0.9, 0.1]];
        assert_eq!(best_distinct_assignment(&sims, 2), vec![1, 0]);
        assert_eq!(best_distinct_assignment(&[vec![f32::NAN, 0.3]], 2), vec![1]);
    }
}

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
//!    their total co-occurrence (Hungarian algorithm, [`assignment`]).
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
//!
//! # Layout
//!
//! - `intervals`: the interval algebra (union, intersection, difference) on sorted lists.
//! - `tracks`: one side's speech per speaker, and the sweep over elementary segments.
//! - `region`: the scored region (UEM, collars, overlap).
//! - [`assignment`]: the optimal one-to-one assignment solver, also used by the pipeline.
//! - `report`: [`ScoringOptions`], [`DerReport`], [`JerReport`].
//! - `der`: [`der`], [`jer`] and [`optimal_mapping`], which tie the above together.

pub mod assignment;
mod der;
mod intervals;
mod region;
mod report;
mod tracks;

pub use der::{der, jer, optimal_mapping};
pub use report::{DerReport, JerReport, ScoringOptions, SpeakerJer};

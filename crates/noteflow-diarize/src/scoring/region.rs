//! The region that is scored: the UEM minus collars around reference boundaries, minus
//! (optionally) reference overlap.

use crate::scoring::intervals::{subtract, union, Interval};
use crate::scoring::report::ScoringOptions;
use crate::scoring::tracks::Tracks;

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
pub(super) fn scored_region(
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

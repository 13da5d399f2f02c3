//! Interval algebra on sorted lists of half-open `[start, end)` intervals in seconds.

/// A half-open stretch of time `[start, end)` in seconds.
pub(super) type Interval = (f64, f64);

/// Sorts and merges intervals that overlap; intervals that only touch stay separate
/// (see the module doc on collars).
pub(super) fn merge_overlapping(mut intervals: Vec<Interval>) -> Vec<Interval> {
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
pub(super) fn union(mut intervals: Vec<Interval>) -> Vec<Interval> {
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
pub(super) fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
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
pub(super) fn subtract(base: &[Interval], cut: &[Interval]) -> Vec<Interval> {
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

pub(super) fn length(intervals: &[Interval]) -> f64 {
    intervals.iter().map(|(start, end)| end - start).sum()
}

//! Agglomerative clustering of speaker embeddings into global speakers.
//!
//! Each embedding is one local speaker of one segmentation window. The dendrogram is built once
//! (average or centroid linkage over cosine geometry), then cut either where the merge distance
//! passes the threshold or at the number of speakers the caller asked for. Clusters with too little
//! speech behind them are not trusted as speakers: their members join the nearest large cluster.

use std::sync::atomic::{AtomicBool, Ordering};

/// How the distance between two clusters is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// Mean pairwise cosine distance.
    Average,
    /// Squared euclidean distance between centroids of unit-length embeddings (pyannote 3.1).
    Centroid,
}

/// One merge of the dendrogram: clusters `a` and `b` (indices of their first member's slot)
/// joined at `distance`; the merged cluster keeps slot `a`.
#[derive(Debug, Clone, Copy)]
struct Merge {
    a: usize,
    b: usize,
    distance: f32,
}

/// Full dendrogram over `n` unit-length vectors.
pub struct Dendrogram {
    n: usize,
    merges: Vec<Merge>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler vectorise (a single f32 sum must stay in order).
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scale `v` to unit length (left as is when it is all zeros).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl Dendrogram {
    /// Build the dendrogram of unit-length `points` (each `dim` long, row-major).
    ///
    /// Generic agglomeration with cached nearest neighbours: O(n²) memory, about O(n²) time in
    /// practice, which is why callers keep n to a few thousand.
    pub fn build(points: &[f32], dim: usize, linkage: Linkage) -> Self {
        Self::build_cancellable(points, dim, linkage, &AtomicBool::new(false))
            .expect("never cancelled")
    }

    /// As [`Dendrogram::build`], checking `cancel` as it goes; `None` once it is raised.
    pub fn build_cancellable(
        points: &[f32],
        dim: usize,
        linkage: Linkage,
        cancel: &AtomicBool,
    ) -> Option<Self> {
        let cancelled = || cancel.load(Ordering::Relaxed);
        let n = points.len() / dim;
        let mut merges = Vec::with_capacity(n.saturating_sub(1));
        if n < 2 {
            return Some(Self { n, merges });
        }
        let mut d = vec![0f32; n * n];
        for i in 0..n {
            if cancelled() {
                return None;
            }
            for j in (i + 1)..n {
                let cos = dot(
                    &points[i * dim..(i + 1) * dim],
                    &points[j * dim..(j + 1) * dim],
                );
                let v = match linkage {
                    Linkage::Average => 1.0 - cos,
                    Linkage::Centroid => (2.0 - 2.0 * cos).max(0.0),
                };
                d[i * n + j] = v;
                d[j * n + i] = v;
            }
        }
        let mut size = vec![1usize; n];
        let mut alive = vec![true; n];
        let mut nn = vec![0usize; n];
        let mut nn_dist = vec![f32::INFINITY; n];
        let rescan =
            |i: usize, d: &[f32], alive: &[bool], nn: &mut [usize], nn_dist: &mut [f32]| {
                nn_dist[i] = f32::INFINITY;
                for k in 0..n {
                    if k != i && alive[k] && d[i * n + k] < nn_dist[i] {
                        nn_dist[i] = d[i * n + k];
                        nn[i] = k;
                    }
                }
            };
        for i in 0..n {
            rescan(i, &d, &alive, &mut nn, &mut nn_dist);
        }
        for step in 1..n {
            if step % 64 == 0 && cancelled() {
                return None;
            }
            let (a, _) = (0..n)
                .filter(|&i| alive[i])
                .map(|i| (i, nn_dist[i]))
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .expect("at least two clusters remain");
            let b = nn[a];
            let (a, b) = (a.min(b), a.max(b));
            let dab = d[a * n + b];
            merges.push(Merge {
                a,
                b,
                distance: dab,
            });
            let (sa, sb) = (size[a] as f32, size[b] as f32);
            for k in 0..n {
                if !alive[k] || k == a || k == b {
                    continue;
                }
                let (dka, dkb) = (d[k * n + a], d[k * n + b]);
                let merged = match linkage {
                    Linkage::Average => (sa * dka + sb * dkb) / (sa + sb),
                    Linkage::Centroid => ((sa * dka + sb * dkb) / (sa + sb)
                        - sa * sb * dab / ((sa + sb) * (sa + sb)))
                        .max(0.0),
                };
                d[k * n + a] = merged;
                d[a * n + k] = merged;
            }
            alive[b] = false;
            size[a] += size[b];
            for k in 0..n {
                if !alive[k] || k == a {
                    continue;
                }
                if nn[k] == a || nn[k] == b {
                    rescan(k, &d, &alive, &mut nn, &mut nn_dist);
                } else if d[k * n + a] < nn_dist[k] {
                    nn_dist[k] = d[k * n + a];
                    nn[k] = a;
                }
            }
            rescan(a, &d, &alive, &mut nn, &mut nn_dist);
        }
        Some(Self { n, merges })
    }

    /// Number of clusters left once every merge closer than `threshold` is made.
    pub fn clusters_below(&self, threshold: f32) -> usize {
        self.n
            - self
                .merges
                .iter()
                .take_while(|m| m.distance <= threshold)
                .count()
    }

    /// Cluster label (0..k, in order of first member) of each point when cut into `k` clusters.
    pub fn cut(&self, k: usize) -> Vec<usize> {
        let k = k.clamp(1.min(self.n), self.n);
        let mut parent: Vec<usize> = (0..self.n).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for m in self.merges.iter().take(self.n - k) {
            let ra = find(&mut parent, m.a);
            let rb = find(&mut parent, m.b);
            parent[rb] = ra;
        }
        let mut label_of_root = vec![usize::MAX; self.n];
        let mut next = 0;
        (0..self.n)
            .map(|i| {
                let r = find(&mut parent, i);
                if label_of_root[r] == usize::MAX {
                    label_of_root[r] = next;
                    next += 1;
                }
                label_of_root[r]
            })
            .collect()
    }
}

/// Unit-length mean of the points with each label; `None` for labels with no member.
pub fn centroids(points: &[f32], dim: usize, labels: &[usize], k: usize) -> Vec<Option<Vec<f32>>> {
    let mut sums = vec![vec![0f32; dim]; k];
    let mut counts = vec![0usize; k];
    for (p, &l) in points.chunks_exact(dim).zip(labels) {
        counts[l] += 1;
        sums[l].iter_mut().zip(p).for_each(|(s, x)| *s += x);
    }
    sums.into_iter()
        .zip(counts)
        .map(|(mut s, c)| {
            (c > 0).then(|| {
                normalize(&mut s);
                s
            })
        })
        .collect()
}

/// Cosine similarity of unit-length vectors.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(raw: &[[f32; 2]]) -> Vec<f32> {
        raw.iter()
            .flat_map(|p| {
                let mut v = p.to_vec();
                normalize(&mut v);
                v
            })
            .collect()
    }

    #[test]
    fn separates_two_directions_and_cuts_at_k() {
        let p = points(&[
            [1.0, 0.0],
            [0.99, 0.05],
            [0.0, 1.0],
            [0.05, 0.98],
            [0.98, -0.02],
        ]);
        for linkage in [Linkage::Average, Linkage::Centroid] {
            let d = Dendrogram::build(&p, 2, linkage);
            assert_eq!(d.clusters_below(0.3), 2, "{linkage:?}");
            assert_eq!(d.cut(2), vec![0, 0, 1, 1, 0]);
            assert_eq!(d.cut(1), vec![0; 5]);
            assert_eq!(d.cut(5), vec![0, 1, 2, 3, 4]);
            // Asking for more clusters than points gives one per point.
            assert_eq!(d.cut(9).len(), 5);
        }
    }

    #[test]
    fn tiny_inputs() {
        assert_eq!(
            Dendrogram::build(&[], 2, Linkage::Average).cut(1),
            Vec::<usize>::new()
        );
        assert_eq!(
            Dendrogram::build(&points(&[[1.0, 0.0]]), 2, Linkage::Average).cut(3),
            vec![0]
        );
    }

    #[test]
    fn centroid_of_members_is_unit_length() {
        let p = points(&[[1.0, 0.0], [0.0, 1.0]]);
        let c = centroids(&p, 2, &[0, 0], 2);
        let c0 = c[0].as_ref().unwrap();
        assert!((c0[0] - c0[1]).abs() < 1e-6 && (dot(c0, c0) - 1.0).abs() < 1e-5);
        assert!(c[1].is_none());
    }
}

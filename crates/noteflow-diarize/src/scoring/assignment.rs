//! Optimal one-to-one assignment (Kuhn–Munkres / Hungarian algorithm) on a dense matrix,
//! O(n²·m) for n ≤ m, i.e. O(n³) on square matrices.
//!
//! Two users: scoring maps reference to hypothesis speakers by co-occurrence, and the pipeline
//! maps each window's local speakers to global clusters by similarity. Written here rather than
//! pulled in as a dependency because the matrices are tiny and the solver is short.
//!
//! API: [`maximize`] or [`minimize`] a rectangular matrix of finite `f64`; the result gives each
//! row its column, `None` for rows left over when there are more rows than columns.

use thiserror::Error;

/// Why a matrix cannot be assigned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AssignmentError {
    #[error(
        "row {row} has {found} entries but row 0 has {expected}; the matrix must be rectangular"
    )]
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
pub fn minimize(cost: &[Vec<f64>]) -> Result<Vec<Option<usize>>, AssignmentError> {
    let rows = cost.len();
    let cols = cost.first().map_or(0, Vec::len);
    for (row, values) in cost.iter().enumerate() {
        if values.len() != cols {
            return Err(AssignmentError::RaggedRow {
                row,
                expected: cols,
                found: values.len(),
            });
        }
        if let Some((col, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(AssignmentError::NonFinite { row, col, value });
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
pub fn maximize(weight: &[Vec<f64>]) -> Result<Vec<Option<usize>>, AssignmentError> {
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
        // The speaker case of the scoring tests: greedy would take (0,0)=5 then (2,1)=2
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
            Err(AssignmentError::RaggedRow {
                row: 1,
                expected: 2,
                found: 1
            })
        );
        assert!(matches!(
            minimize(&[vec![1.0, f64::NAN]]),
            Err(AssignmentError::NonFinite { row: 0, col: 1, .. })
        ));
        assert!(matches!(
            maximize(&[vec![1.0], vec![f64::INFINITY]]),
            Err(AssignmentError::NonFinite { row: 1, col: 0, .. })
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

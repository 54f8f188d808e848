//! The little dense linear algebra that kernel fitting needs, in f64:
//! Cholesky solves of symmetric positive definite systems and the
//! eigenvectors of a symmetric matrix. Matrices are row-major `n x n` slices.

/// Solves `G x = b` for each right-hand side `b` (each `n` long, in `rhs`,
/// overwritten by its solution). `G` is symmetric positive semi-definite; a
/// ridge `lambda * mean(diag)` is added to its diagonal (and raised until the
/// factorisation succeeds), which makes rank-deficient systems solvable.
pub fn solve_spd(g: &[f64], n: usize, rhs: &mut [Vec<f64>], mut lambda: f64) {
    let mean_diag = (0..n).map(|i| g[i * n + i]).sum::<f64>() / n.max(1) as f64;
    let scale = if mean_diag > 0.0 { mean_diag } else { 1.0 };
    loop {
        if let Some(l) = cholesky(g, n, lambda * scale) {
            let mut lt = vec![0.0; n * n];
            for i in 0..n {
                for k in 0..=i {
                    lt[k * n + i] = l[i * n + k];
                }
            }
            for b in rhs.iter_mut() {
                substitute(&l, &lt, n, b);
            }
            return;
        }
        lambda = (lambda * 100.0).max(1e-10);
    }
}

/// `sum of a[i] * b[i]` with eight independent partial sums, so the loop is
/// not bound by the latency of one chain of additions (and vectorises).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The lower factor `L` of `G + ridge I = L Lᵀ`, or `None` if not positive definite.
fn cholesky(g: &[f64], n: usize, ridge: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let row_j = j * n;
        let d = g[row_j + j] + ridge - dot(&l[row_j..row_j + j], &l[row_j..row_j + j]);
        if !(d > 0.0) || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        l[row_j + j] = d;
        for i in j + 1..n {
            let row_i = i * n;
            l[row_i + j] = (g[row_i + j] - dot(&l[row_i..row_i + j], &l[row_j..row_j + j])) / d;
        }
    }
    Some(l)
}

/// Solves `L Lᵀ x = b` in place (`lt` is `Lᵀ`, so both sweeps read rows).
fn substitute(l: &[f64], lt: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let s = dot(&l[i * n..i * n + i], &b[..i]);
        b[i] = (b[i] - s) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s = dot(&lt[i * n + i + 1..(i + 1) * n], &b[i + 1..]);
        b[i] = (b[i] - s) / lt[i * n + i];
    }
}

/// Eigenvalues and eigenvectors of the symmetric matrix `m` (cyclic Jacobi),
/// sorted by decreasing eigenvalue. Vector `k` is column `k` of the returned
/// row-major `n x n` matrix.
pub fn symmetric_eigen(m: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off <= 1e-30 * total.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (col, &src) in order.iter().enumerate() {
        for k in 0..n {
            vectors[k * n + col] = v[k * n + src];
        }
    }
    (values, vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_sums_every_product() {
        let a: Vec<f64> = (0..19).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..19).map(|i| (i % 3) as f64).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    #[test]
    fn solves_a_positive_definite_system() {
        // G = [[4, 2], [2, 3]], x = [1, -2] -> b = [0, -4].
        let g = [4.0, 2.0, 2.0, 3.0];
        let mut rhs = vec![vec![0.0, -4.0], vec![4.0, 2.0]];
        solve_spd(&g, 2, &mut rhs, 0.0);
        assert!(
            (rhs[0][0] - 1.0).abs() < 1e-12 && (rhs[0][1] + 2.0).abs() < 1e-12,
            "{rhs:?}"
        );
        assert!(
            (rhs[1][0] - 1.0).abs() < 1e-12 && rhs[1][1].abs() < 1e-12,
            "{rhs:?}"
        );
    }

    #[test]
    fn a_singular_system_gets_a_ridge_and_a_finite_answer() {
        let g = [1.0, 1.0, 1.0, 1.0];
        let mut rhs = vec![vec![2.0, 2.0]];
        solve_spd(&g, 2, &mut rhs, 0.0);
        // The minimum-norm solution is [1, 1]; the ridge lands next to it.
        assert!(
            (rhs[0][0] - 1.0).abs() < 1e-5 && (rhs[0][1] - 1.0).abs() < 1e-5,
            "{rhs:?}"
        );
    }

    #[test]
    fn eigenvectors_diagonalise_and_are_sorted() {
        let m = [2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 5.0];
        let (values, vectors) = symmetric_eigen(&m, 3);
        let expected = [5.0, 3.0, 1.0];
        for (v, e) in values.iter().zip(expected) {
            assert!((v - e).abs() < 1e-12, "{values:?}");
        }
        for k in 0..3 {
            let x: Vec<f64> = (0..3).map(|i| vectors[i * 3 + k]).collect();
            for i in 0..3 {
                let mx: f64 = (0..3).map(|j| m[i * 3 + j] * x[j]).sum();
                assert!((mx - values[k] * x[i]).abs() < 1e-12);
            }
        }
    }
}

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
            for b in rhs.iter_mut() {
                substitute(&l, n, b);
            }
            return;
        }
        lambda = if lambda == 0.0 { 1e-14 } else { lambda * 100.0 };
    }
}

/// The lower factor `L` of `G + ridge I = L Lᵀ`, or `None` if not positive definite.
fn cholesky(g: &[f64], n: usize, ridge: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let row_j = j * n;
        let d = g[row_j + j] + ridge - l[row_j..row_j + j].iter().map(|v| v * v).sum::<f64>();
        if !(d > 0.0) || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        l[row_j + j] = d;
        for i in j + 1..n {
            let row_i = i * n;
            let dot: f64 = l[row_i..row_i + j].iter().zip(&l[row_j..row_j + j]).map(|(a, b)| a * b).sum();
            l[row_i + j] = (g[row_i + j] - dot) / d;
        }
    }
    Some(l)
}

/// Solves `L Lᵀ x = b` in place.
fn substitute(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let dot: f64 = l[i * n..i * n + i].iter().zip(&b[..i]).map(|(a, x)| a * x).sum();
        b[i] = (b[i] - dot) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
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
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * n + j].powi(2)).sum();
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
    fn solves_a_positive_definite_system() {
        // G = [[4, 2], [2, 3]], x = [1, -2] -> b = [0, -4].
        let g = [4.0, 2.0, 2.0, 3.0];
        let mut rhs = vec![vec![0.0, -4.0], vec![4.0, 2.0]];
        solve_spd(&g, 2, &mut rhs, 0.0);
        assert!((rhs[0][0] - 1.0).abs() < 1e-12 && (rhs[0][1] + 2.0).abs() < 1e-12, "{rhs:?}");
        assert!((rhs[1][0] - 1.0).abs() < 1e-12 && rhs[1][1].abs() < 1e-12, "{rhs:?}");
    }

    #[test]
    fn a_singular_system_gets_a_ridge_and_a_finite_answer() {
        let g = [1.0, 1.0, 1.0, 1.0];
        let mut rhs = vec![vec![2.0, 2.0]];
        solve_spd(&g, 2, &mut rhs, 0.0);
        // The minimum-norm solution is [1, 1]; the ridge lands next to it.
        assert!((rhs[0][0] - 1.0).abs() < 1e-6 && (rhs[0][1] - 1.0).abs() < 1e-6, "{rhs:?}");
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

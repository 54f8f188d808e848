//! The arithmetic of factorizing a kernel into two (notes in docs/passes.md,
//! "factorize"): composition, the exact construction, and the least-squares
//! fit. All in f64, on flat row-major arrays:
//! `a: [cmid, cin, f0, f1]` (the first conv), `b: [cout, cmid, q0, q1]` (the
//! second), `k: [cout, cin, f0 + q0 - 1, f1 + q1 - 1]` (the original).
//!
//! Convs compute cross-correlation, so with the first conv padded like the
//! original and the second unpadded, the pair computes the kernel
//! `k'[o, i, u + v] = sum over m of b[o, m, v] * a[m, i, u]` (the full 2-D
//! convolution of the two kernels, taps added position-wise).

use super::linalg::{dot, solve_spd, symmetric_eigen};

/// The kernel sizes of the pair: an `(f0+q0-1) x (f1+q1-1)` conv becomes an
/// `f0 x f1` conv followed by a `q0 x q1` conv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub first: [usize; 2],
    pub second: [usize; 2],
}

impl Split {
    pub fn kernel(&self) -> [usize; 2] {
        [
            self.first[0] + self.second[0] - 1,
            self.first[1] + self.second[1] - 1,
        ]
    }

    fn taps(dims: [usize; 2]) -> usize {
        dims[0] * dims[1]
    }

    /// `pos[u * V + v]`: the tap of the original kernel that tap `u` of the
    /// first and tap `v` of the second kernel compose into.
    fn positions(&self) -> Vec<usize> {
        let ([f0, f1], [q0, q1], [_, k1]) = (self.first, self.second, self.kernel());
        let mut pos = Vec::with_capacity(f0 * f1 * q0 * q1);
        for u in 0..f0 * f1 {
            for v in 0..q0 * q1 {
                pos.push((u / f1 + v / q1) * k1 + u % f1 + v % q1);
            }
        }
        pos
    }
}

/// The two kernels of a factorization.
#[derive(Clone, Debug, PartialEq)]
pub struct Factors {
    pub cin: usize,
    pub cmid: usize,
    pub cout: usize,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

/// The kernel the pair computes.
pub fn compose(split: &Split, f: &Factors) -> Vec<f64> {
    let (u_n, v_n, p_n) = (
        Split::taps(split.first),
        Split::taps(split.second),
        Split::taps(split.kernel()),
    );
    let pos = split.positions();
    let mut k = vec![0.0; f.cout * f.cin * p_n];
    for o in 0..f.cout {
        for m in 0..f.cmid {
            let b = &f.b[(o * f.cmid + m) * v_n..][..v_n];
            if b.iter().all(|&x| x == 0.0) {
                continue;
            }
            for i in 0..f.cin {
                let a = &f.a[(m * f.cin + i) * u_n..][..u_n];
                let k = &mut k[(o * f.cin + i) * p_n..][..p_n];
                for (u, &au) in a.iter().enumerate() {
                    if au == 0.0 {
                        continue;
                    }
                    for (v, &bv) in b.iter().enumerate() {
                        k[pos[u * v_n + v]] += au * bv;
                    }
                }
            }
        }
    }
    k
}

/// `||got - want|| / ||want||` (Frobenius), 0 when both are zero.
pub fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    let diff: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    let norm: f64 = want.iter().map(|w| w * w).sum();
    if norm == 0.0 {
        return if diff == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (diff / norm).sqrt()
}

/// Which side of the exact construction holds one-hot shifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The first conv copies each input channel once per window offset; the
    /// second holds the windows of the kernel: `cmid = windows * cin`.
    Input,
    /// The first conv holds the windows; the second adds them up, shifted:
    /// `cmid = windows * cout`.
    Output,
}

/// Along one axis with first size `f` and second size `q`, the tap `r` of the
/// original goes to window offset `s` (a tap of the one-hot kernel, of size
/// `one`) and tap `r - s` of the other kernel (of size `other`). Windows start
/// every `other` taps, the last one clamped to fit: every tap has exactly one owner.
fn owner(r: usize, one: usize, other: usize) -> (usize, usize) {
    let s = (r / other * other).min(one - 1);
    (s, r - s)
}

/// The window offsets along one axis (the distinct owners).
fn offsets(one: usize, other: usize) -> Vec<usize> {
    let mut s: Vec<usize> = (0..one + other - 1)
        .map(|r| owner(r, one, other).0)
        .collect();
    s.dedup();
    s
}

/// The sizes of (one-hot kernel, other kernel) on each axis for `side`.
fn roles(split: &Split, side: Side) -> ([usize; 2], [usize; 2]) {
    match side {
        Side::Input => (split.first, split.second),
        Side::Output => (split.second, split.first),
    }
}

fn windows(split: &Split, side: Side) -> usize {
    let (one, other) = roles(split, side);
    offsets(one[0], other[0]).len() * offsets(one[1], other[1]).len()
}

/// The middle width at which the exact construction exists, and the side
/// that gives it: `min(windows * cin, windows * cout)` (4 for 5x5 into 3x3s,
/// `n` for `n x n` into `1 x n` and `n x 1`).
pub fn exact_width(split: &Split, cin: usize, cout: usize) -> (usize, Side) {
    let by_input = windows(split, Side::Input) * cin;
    let by_output = windows(split, Side::Output) * cout;
    if by_input <= by_output {
        (by_input, Side::Input)
    } else {
        (by_output, Side::Output)
    }
}

/// A factorization whose composition is `k` exactly (every value of `k` is
/// copied once, the rest are zeros and ones), at [`exact_width`].
pub fn exact(split: &Split, k: &[f64], cin: usize, cout: usize) -> Factors {
    let (cmid, side) = exact_width(split, cin, cout);
    let (one, other) = roles(split, side);
    let axis_offsets = [offsets(one[0], other[0]), offsets(one[1], other[1])];
    let n_windows = axis_offsets[0].len() * axis_offsets[1].len();
    let (u_n, v_n, [k0, k1]) = (
        Split::taps(split.first),
        Split::taps(split.second),
        split.kernel(),
    );
    let mut f = Factors {
        cin,
        cmid,
        cout,
        a: vec![0.0; cmid * cin * u_n],
        b: vec![0.0; cout * cmid * v_n],
    };
    for o in 0..cout {
        for i in 0..cin {
            for r0 in 0..k0 {
                for r1 in 0..k1 {
                    let (s0, t0) = owner(r0, one[0], other[0]);
                    let (s1, t1) = owner(r1, one[1], other[1]);
                    let window = axis_offsets[0]
                        .iter()
                        .position(|&s| s == s0)
                        .expect("an owner")
                        * axis_offsets[1].len()
                        + axis_offsets[1]
                            .iter()
                            .position(|&s| s == s1)
                            .expect("an owner");
                    let (one_tap, other_tap) = (s0 * one[1] + s1, t0 * other[1] + t1);
                    let value = k[(o * cin + i) * k0 * k1 + r0 * k1 + r1];
                    match side {
                        Side::Input => {
                            let m = i * n_windows + window;
                            f.a[(m * cin + i) * u_n + one_tap] = 1.0;
                            f.b[(o * cmid + m) * v_n + other_tap] = value;
                        }
                        Side::Output => {
                            let m = o * n_windows + window;
                            f.b[(o * cmid + m) * v_n + one_tap] = 1.0;
                            f.a[(m * cin + i) * u_n + other_tap] = value;
                        }
                    }
                }
            }
        }
    }
    f
}

/// The result of [`fit`].
#[derive(Clone, Debug)]
pub struct Fit {
    pub factors: Factors,
    /// Relative error of the starting point.
    pub initial_error: f64,
    /// Alternating sweeps run (fewer than asked once the error stops falling).
    pub sweeps: usize,
}

/// Least-squares factors of width `cmid` for kernel `k`: a starting point
/// from the exact construction truncated to the `cmid` strongest middle
/// directions (eigenvectors of its middle-channel Gram matrix), then up to
/// `iterations` sweeps of alternating least squares (each sweep solves for
/// the second kernel with the first fixed, then the reverse; neither step can
/// raise the error). At or above the exact width the exact construction is
/// returned, padded with zero channels.
pub fn fit(
    split: &Split,
    k: &[f64],
    cin: usize,
    cout: usize,
    cmid: usize,
    iterations: usize,
) -> Fit {
    let (width, side) = exact_width(split, cin, cout);
    let full = exact(split, k, cin, cout);
    let mut f = if cmid >= width {
        widen(&full, split, cmid)
    } else {
        truncate(&full, split, side, cmid)
    };
    let initial_error = relative_error(&compose(split, &f), k);
    let mut error = initial_error;
    let mut sweeps = 0;
    while sweeps < iterations && error > 1e-12 {
        solve_second(split, k, &mut f);
        solve_first(split, k, &mut f);
        sweeps += 1;
        let e = relative_error(&compose(split, &f), k);
        let converged = error - e <= 1e-7 * error;
        error = e.min(error);
        if converged {
            break;
        }
    }
    Fit {
        factors: f,
        initial_error,
        sweeps,
    }
}

/// `f` with zero middle channels appended up to `cmid`.
fn widen(f: &Factors, split: &Split, cmid: usize) -> Factors {
    let (u_n, v_n) = (Split::taps(split.first), Split::taps(split.second));
    let mut a = f.a.clone();
    a.resize(cmid * f.cin * u_n, 0.0);
    let mut b = vec![0.0; f.cout * cmid * v_n];
    for o in 0..f.cout {
        let src = &f.b[o * f.cmid * v_n..][..f.cmid * v_n];
        b[o * cmid * v_n..][..f.cmid * v_n].copy_from_slice(src);
    }
    Factors {
        cin: f.cin,
        cmid,
        cout: f.cout,
        a,
        b,
    }
}

/// The exact construction projected on its `cmid` strongest middle directions.
fn truncate(f: &Factors, split: &Split, side: Side, cmid: usize) -> Factors {
    let (u_n, v_n, j_n) = (Split::taps(split.first), Split::taps(split.second), f.cmid);
    // The middle-channel Gram matrix of the side that holds the kernel's values.
    let mut gram = vec![0.0; j_n * j_n];
    match side {
        Side::Input => {
            for o in 0..f.cout {
                let b = &f.b[o * j_n * v_n..][..j_n * v_n];
                accumulate_gram(&mut gram, b, j_n, v_n);
            }
        }
        Side::Output => accumulate_gram(&mut gram, &f.a, j_n, f.cin * u_n),
    }
    let (_, q) = symmetric_eigen(&gram, j_n);
    let mut out = Factors {
        cin: f.cin,
        cmid,
        cout: f.cout,
        a: vec![0.0; cmid * f.cin * u_n],
        b: vec![0.0; f.cout * cmid * v_n],
    };
    for m in 0..cmid {
        for j in 0..j_n {
            let w = q[j * j_n + m];
            if w == 0.0 {
                continue;
            }
            let row = f.cin * u_n;
            for (dst, src) in out.a[m * row..][..row]
                .iter_mut()
                .zip(&f.a[j * row..][..row])
            {
                *dst += w * src;
            }
            for o in 0..f.cout {
                let src = &f.b[(o * j_n + j) * v_n..][..v_n];
                for (dst, s) in out.b[(o * cmid + m) * v_n..][..v_n].iter_mut().zip(src) {
                    *dst += w * s;
                }
            }
        }
    }
    out
}

/// `gram[j, j'] += sum over t of x[j, t] * x[j', t]` for `x: [n, len]`.
fn accumulate_gram(gram: &mut [f64], x: &[f64], n: usize, len: usize) {
    for j in 0..n {
        for jj in j..n {
            let d = dot(&x[j * len..][..len], &x[jj * len..][..len]);
            gram[j * n + jj] += d;
            if jj != j {
                gram[jj * n + j] += d;
            }
        }
    }
}

/// The normal equations of one alternating step. The unknown factor has taps
/// of size `unknown`; the known one, laid out `x[m][c][w]` with taps of size
/// `known`, is summed over its `c` channels. Entry `((m, t), (m', t'))` is
/// `sum over c, w of x[m, c, w] * x[m', c, w + t - t']`, taps in range only.
///
/// Computed from the tap products `P[w, z] = sum over c of x[:, c, w] x[:, c, z]ᵀ`
/// (contiguous dot products over the channels), summed per offset `z - w`.
fn normal_matrix(
    x: &[f64],
    cmid: usize,
    channels: usize,
    known: [usize; 2],
    unknown: [usize; 2],
) -> Vec<f64> {
    let (w_n, t_n) = (known[0] * known[1], unknown[0] * unknown[1]);
    let (d0_n, d1_n) = (2 * unknown[0] - 1, 2 * unknown[1] - 1);
    // xt[w][m][c]: each (tap, middle channel) row contiguous over the channels.
    let mut xt = vec![0.0; w_n * cmid * channels];
    for m in 0..cmid {
        for c in 0..channels {
            for w in 0..w_n {
                xt[(w * cmid + m) * channels + c] = x[(m * channels + c) * w_n + w];
            }
        }
    }
    // corr[d][m][m']: the correlation at offset d = t - t' (indices shifted to be >= 0).
    let mut corr = vec![0.0; d0_n * d1_n * cmid * cmid];
    for w in 0..w_n {
        let (w0, w1) = ((w / known[1]) as isize, (w % known[1]) as isize);
        for z in 0..w_n {
            let (e0, e1) = ((z / known[1]) as isize - w0, (z % known[1]) as isize - w1);
            let (d0, d1) = (e0 + unknown[0] as isize - 1, e1 + unknown[1] as isize - 1);
            if d0 < 0 || d1 < 0 || d0 >= d0_n as isize || d1 >= d1_n as isize {
                continue;
            }
            let out = &mut corr[(d0 as usize * d1_n + d1 as usize) * cmid * cmid..][..cmid * cmid];
            for m in 0..cmid {
                let xa = &xt[(w * cmid + m) * channels..][..channels];
                for mm in 0..cmid {
                    let xb = &xt[(z * cmid + mm) * channels..][..channels];
                    out[m * cmid + mm] += dot(xa, xb);
                }
            }
        }
    }
    let n = cmid * t_n;
    let mut g = vec![0.0; n * n];
    for m in 0..cmid {
        for t in 0..t_n {
            for mm in 0..cmid {
                for tt in 0..t_n {
                    let d0 = t / unknown[1] + unknown[0] - 1 - tt / unknown[1];
                    let d1 = t % unknown[1] + unknown[1] - 1 - tt % unknown[1];
                    g[(m * t_n + t) * n + mm * t_n + tt] =
                        corr[((d0 * d1_n + d1) * cmid + m) * cmid + mm];
                }
            }
        }
    }
    g
}

/// With the first kernel fixed, the second that minimises the error.
fn solve_second(split: &Split, k: &[f64], f: &mut Factors) {
    let (u_n, v_n, p_n) = (
        Split::taps(split.first),
        Split::taps(split.second),
        Split::taps(split.kernel()),
    );
    let pos = split.positions();
    let n = f.cmid * v_n;
    let g = normal_matrix(&f.a, f.cmid, f.cin, split.first, split.second);
    let mut rhs = vec![vec![0.0; n]; f.cout];
    for (o, r) in rhs.iter_mut().enumerate() {
        for m in 0..f.cmid {
            for i in 0..f.cin {
                let a = &f.a[(m * f.cin + i) * u_n..][..u_n];
                let kk = &k[(o * f.cin + i) * p_n..][..p_n];
                for (u, &au) in a.iter().enumerate() {
                    for v in 0..v_n {
                        r[m * v_n + v] += au * kk[pos[u * v_n + v]];
                    }
                }
            }
        }
    }
    solve_spd(&g, n, &mut rhs, 1e-10);
    for (o, r) in rhs.iter().enumerate() {
        f.b[o * n..][..n].copy_from_slice(r);
    }
}

/// With the second kernel fixed, the first that minimises the error.
fn solve_first(split: &Split, k: &[f64], f: &mut Factors) {
    let (u_n, v_n, p_n) = (
        Split::taps(split.first),
        Split::taps(split.second),
        Split::taps(split.kernel()),
    );
    let pos = split.positions();
    // The second kernel as bt[m][o][v], the layout normal_matrix sums over.
    let mut bt = vec![0.0; f.cmid * f.cout * v_n];
    for o in 0..f.cout {
        for m in 0..f.cmid {
            bt[(m * f.cout + o) * v_n..][..v_n]
                .copy_from_slice(&f.b[(o * f.cmid + m) * v_n..][..v_n]);
        }
    }
    let n = f.cmid * u_n;
    let g = normal_matrix(&bt, f.cmid, f.cout, split.second, split.first);
    let mut rhs = vec![vec![0.0; n]; f.cin];
    for (i, r) in rhs.iter_mut().enumerate() {
        for m in 0..f.cmid {
            for o in 0..f.cout {
                let b = &bt[(m * f.cout + o) * v_n..][..v_n];
                let kk = &k[(o * f.cin + i) * p_n..][..p_n];
                for u in 0..u_n {
                    r[m * u_n + u] += b
                        .iter()
                        .enumerate()
                        .map(|(v, &bv)| bv * kk[pos[u * v_n + v]])
                        .sum::<f64>();
                }
            }
        }
    }
    solve_spd(&g, n, &mut rhs, 1e-10);
    for (i, r) in rhs.iter().enumerate() {
        for m in 0..f.cmid {
            f.a[(m * f.cin + i) * u_n..][..u_n].copy_from_slice(&r[m * u_n..][..u_n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: Split = Split {
        first: [3, 3],
        second: [3, 3],
    };
    const ROW_COL: Split = Split {
        first: [1, 5],
        second: [5, 1],
    };

    /// The relative error the fitted factors reach.
    fn error(split: &Split, f: &Fit, k: &[f64]) -> f64 {
        relative_error(&compose(split, &f.factors), k)
    }

    fn random(n: usize, seed: u64) -> Vec<f64> {
        let mut r = kiln_models::init::Rng::new(seed);
        (0..n).map(|_| r.normal()).collect()
    }

    #[test]
    fn exact_widths_follow_the_notes() {
        assert_eq!(exact_width(&THREE, 48, 64), (192, Side::Input));
        assert_eq!(exact_width(&THREE, 64, 16), (64, Side::Output));
        assert_eq!(exact_width(&ROW_COL, 3, 8), (15, Side::Input));
        assert_eq!(
            exact_width(
                &Split {
                    first: [7, 1],
                    second: [1, 7]
                },
                9,
                2
            ),
            (14, Side::Output)
        );
        assert_eq!(offsets(3, 3), [0, 2]);
        assert_eq!(offsets(5, 1), [0, 1, 2, 3, 4]);
        assert_eq!(offsets(1, 5), [0]);
    }

    #[test]
    fn the_exact_construction_composes_to_the_kernel_on_both_sides() {
        for (split, cin, cout) in [
            (THREE, 2, 3),
            (THREE, 3, 2),
            (ROW_COL, 2, 3),
            (ROW_COL, 4, 1),
        ] {
            let [k0, k1] = split.kernel();
            let k = random(cout * cin * k0 * k1, 1);
            let f = exact(&split, &k, cin, cout);
            assert_eq!(f.cmid, exact_width(&split, cin, cout).0);
            assert_eq!(
                relative_error(&compose(&split, &f), &k),
                0.0,
                "{split:?} {cin}->{cout}"
            );
        }
    }

    #[test]
    fn composition_is_the_full_convolution_of_the_kernels() {
        // One channel each: a = [[1, 2, 0], ...] at (0,0),(0,1); b = 3 at (1,1).
        let mut a = vec![0.0; 9];
        a[0] = 1.0;
        a[1] = 2.0;
        let mut b = vec![0.0; 9];
        b[4] = 3.0;
        let k = compose(
            &THREE,
            &Factors {
                cin: 1,
                cmid: 1,
                cout: 1,
                a,
                b,
            },
        );
        let mut want = vec![0.0; 25];
        want[6] = 3.0; // (1,1)
        want[7] = 6.0; // (1,2)
        assert_eq!(k, want);
    }

    #[test]
    fn fit_is_exact_when_the_kernel_has_the_rank_the_width_allows() {
        // A kernel made by a width-2 pair is fitted exactly at width 2.
        let (cin, cout) = (3, 4);
        let truth = Factors {
            cin,
            cmid: 2,
            cout,
            a: random(2 * cin * 9, 2),
            b: random(cout * 2 * 9, 3),
        };
        let k = compose(&THREE, &truth);
        let f = fit(&THREE, &k, cin, cout, 2, 200);
        let e = error(&THREE, &f, &k);
        assert!(
            e < 1e-6,
            "error {e} after {} sweeps (start {})",
            f.sweeps,
            f.initial_error
        );

        let truth = Factors {
            cin,
            cmid: 2,
            cout,
            a: random(2 * cin * 5, 4),
            b: random(cout * 2 * 5, 5),
        };
        let k = compose(&ROW_COL, &truth);
        assert!(error(&ROW_COL, &fit(&ROW_COL, &k, cin, cout, 2, 200), &k) < 1e-6);
    }

    #[test]
    fn fit_never_ends_worse_than_it_starts_and_wider_fits_better() {
        let (cin, cout) = (4, 6);
        let k = random(cout * cin * 25, 6);
        let mut last = f64::INFINITY;
        for cmid in [1, 3, 6, 12] {
            let f = fit(&THREE, &k, cin, cout, cmid, 30);
            let e = error(&THREE, &f, &k);
            assert!(
                e <= f.initial_error + 1e-12,
                "{cmid}: {e} > {}",
                f.initial_error
            );
            assert!(e < last, "width {cmid}: {e} not below {last}");
            last = e;
        }
        // At the exact width (4 * 4 = 16) and above, the fit is exact.
        assert_eq!(error(&THREE, &fit(&THREE, &k, cin, cout, 16, 5), &k), 0.0);
        assert_eq!(error(&THREE, &fit(&THREE, &k, cin, cout, 20, 5), &k), 0.0);
    }
}

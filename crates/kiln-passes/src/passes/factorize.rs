//! Conv factorization: a 5x5 conv into two 3x3 convs, or an nxn conv into a
//! 1xn and an nx1 conv, as the Inception papers do, with three honestly
//! named semantics (see notes/factorization.md and docs/passes.md):
//!
//! - `structural`: new layers with fresh weights (as the zoo initialises
//!   convs), optionally BatchNorm + ReLU between: the architecture change the
//!   papers train from scratch. Only shapes are preserved.
//! - `fit`: weights fitted by alternating least squares so that the composite
//!   kernel approximates the original for a chosen middle width; the relative
//!   kernel error is reported per layer.
//! - `exact`: a decomposition at the width that makes it exact
//!   (4·min(Cin, Cout) for 3x3 pairs, n·min(Cin, Cout) for 1xn + nx1).
//!
//! Borders are exact: the first conv keeps the original padding along the
//! axes it spans and computes the intermediate on the padded domain; the
//! second conv pads by 0 there (for 1xn + nx1, each conv pads only along its
//! own axis, where the other conv's intermediate is zero by construction).
//! The stride goes to the conv that spans that axis last.

use super::{fresh_name, param, param_name};
use crate::pass::{Context, Pass, PassError, Report};
use crate::pipeline::{choice, Options, PipelineError};
use kiln_ir::ops::{BatchNorm, Conv2d, Epilogue, Relu};
use kiln_ir::{Graph, NodeId, Op, Tensor, TensorType, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Structural,
    Fit,
    Exact,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Into {
    /// 5x5 -> 3x3 + 3x3.
    Pair3x3,
    /// nxn -> 1xn + nx1 (n >= 3).
    RowColumn,
}

pub struct Factorize {
    pub mode: Mode,
    pub into: Into,
    /// Middle width as a fraction of the output channels (structural, fit).
    pub width: f64,
    /// Alternating least-squares sweeps (fit).
    pub iterations: usize,
    /// BatchNorm + ReLU between the two convs (structural).
    pub bn: bool,
    /// Only convs whose weight name starts with this.
    pub prefix: String,
}

impl Factorize {
    pub fn from_options(o: &mut Options) -> Result<Box<dyn Pass>, PipelineError> {
        let mode_text: String = o.get_or("mode", "structural".to_string())?;
        let into_text: String = o.get_or("into", "3x3".to_string())?;
        let err = |m: String| PipelineError::new(0, format!("factorize: {m}"));
        let mode = choice(&mode_text, &[("structural", Mode::Structural), ("fit", Mode::Fit), ("exact", Mode::Exact)])
            .map_err(err)?;
        let into = choice(&into_text, &[("3x3", Into::Pair3x3), ("1xn", Into::RowColumn)]).map_err(err)?;
        let width: f64 = o.get_or("width", 1.0)?;
        if !(width > 0.0 && width <= 64.0) {
            return Err(err(format!("width must be in (0, 64], found {width}")));
        }
        let iterations: usize = o.get_or("iterations", 20)?;
        let bn: bool = o.get_or("bn", false)?;
        let prefix: String = o.get_or("prefix", String::new())?;
        Ok(Box::new(Factorize { mode, into, width, iterations, bn, prefix }))
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Structural => "structural",
            Mode::Fit => "fit",
            Mode::Exact => "exact",
        }
    }
}

/// The two convs' kernels and the original's.
struct Shapes {
    n: usize,
    first: [usize; 2],
    second: [usize; 2],
}

impl Factorize {
    fn shapes(&self, c: &Conv2d) -> Result<Shapes, String> {
        let [kh, kw] = c.kernel;
        match self.into {
            Into::Pair3x3 if c.kernel == [5, 5] => Ok(Shapes { n: 5, first: [3, 3], second: [3, 3] }),
            Into::Pair3x3 => Err(format!("kernel {kh}x{kw} is not 5x5")),
            Into::RowColumn if kh == kw && kh >= 3 => Ok(Shapes { n: kh, first: [1, kh], second: [kh, 1] }),
            Into::RowColumn => Err(format!("kernel {kh}x{kw} is not square with n >= 3")),
        }
    }
}

impl Pass for Factorize {
    fn name(&self) -> &str {
        "factorize"
    }

    fn options(&self) -> String {
        let into = match self.into {
            Into::Pair3x3 => "3x3",
            Into::RowColumn => "1xn",
        };
        let mut s = format!("mode={},into={into}", self.mode_name());
        match self.mode {
            Mode::Structural => s.push_str(&format!(",width={},bn={}", self.width, self.bn)),
            Mode::Fit => s.push_str(&format!(",width={},iterations={}", self.width, self.iterations)),
            Mode::Exact => {}
        }
        if !self.prefix.is_empty() {
            s.push_str(&format!(",prefix={}", self.prefix));
        }
        s
    }

    fn run(&self, g: &mut Graph, cx: &mut Context) -> Result<Report, PassError> {
        let before = kiln_ir::cost::cost(g);
        let mut report = Report::new();
        let convs: Vec<NodeId> = g.node_ids().filter(|&id| matches!(g.op(id), Op::Conv2d(_))).collect();
        for id in convs {
            let Op::Conv2d(c) = g.op(id).clone() else { continue };
            let operands = g.operands(id);
            let Some(w_name) = param_name(g, operands[1]).map(str::to_string) else { continue };
            if !w_name.starts_with(&self.prefix) {
                continue;
            }
            let Ok(shapes) = self.shapes(&c) else { continue };
            let described = g.describe(id);
            let refuse = match () {
                _ if c.groups != 1 => Some("grouped convs are not factorized"),
                _ if c.dilation != [1, 1] => Some("dilated convs are not factorized"),
                _ if !c.epilogue.is_empty() => Some("convs with a fused epilogue are not factorized (factorize before fuse-residual)"),
                _ if self.into == Into::Pair3x3 && c.pad.iter().any(|&p| p >= 3) => {
                    Some("a padding of 3 or more does not fit the first 3x3 conv")
                }
                _ => None,
            };
            if let Some(reason) = refuse {
                report.left(described, reason);
                continue;
            }
            let detail = self.factorize_one(g, cx, id, &c, &shapes, &w_name)?;
            let d = report.changed(described, detail.0);
            if let Some(e) = detail.1 {
                d.metric("fit_error", e);
            }
            report.count("factorized", "conv");
        }
        let after = kiln_ir::cost::cost(g);
        report.figure("params", before.params, after.params);
        report.figure("macs", before.macs, after.macs);
        if self.mode == Mode::Structural && report.changed {
            report.note("structural: the new layers are freshly initialised; train the network (outputs change)");
        }
        Ok(report)
    }
}

impl Factorize {
    /// Rewrites one conv; returns the detail message and the fit error.
    fn factorize_one(
        &self,
        g: &mut Graph,
        cx: &mut Context,
        id: NodeId,
        c: &Conv2d,
        s: &Shapes,
        w_name: &str,
    ) -> Result<(String, Option<f64>), PassError> {
        let operands = g.operands(id);
        let w = param(cx, g, w_name, id)?.clone();
        let (cout, cin) = (w.shape[0], w.shape[1]);
        let kernel: Vec<f64> = w.data.iter().map(|&v| v as f64).collect();
        let kshape = [cout, cin, s.n, s.n];
        let (cmid, a, b, error) = match self.mode {
            Mode::Exact => {
                let (cmid, a, b) = exact(&kernel, kshape, s);
                (cmid, a, b, Some(0.0))
            }
            Mode::Fit => {
                let cmid = ((self.width * cout as f64).round() as usize).max(1);
                let (a, b, e) = fit(&kernel, kshape, s, cmid, self.iterations, cx.seed ^ hash(w_name));
                (cmid, a, b, Some(e))
            }
            Mode::Structural => {
                let cmid = ((self.width * cout as f64).round() as usize).max(1);
                let mut rng = kiln_models::init::Rng::for_tensor(cx.seed, w_name);
                let mut fresh = |o: usize, k: [usize; 2], n: usize| -> Vec<f64> {
                    let std = (2.0 / (o * k[0] * k[1]) as f64).sqrt();
                    (0..n).map(|_| rng.normal() * std).collect()
                };
                let a = fresh(cmid, s.first, cmid * cin * s.first[0] * s.first[1]);
                let b = fresh(cout, s.second, cout * cmid * s.second[0] * s.second[1]);
                (cmid, a, b, None)
            }
        };
        let base = w_name.strip_suffix(".weight").unwrap_or(w_name).to_string();
        let to_tensor = |shape: Vec<usize>, data: Vec<f64>| Tensor { shape, data: data.into_iter().map(|v| v as f32).collect() };
        let a_shape = vec![cmid, cin, s.first[0], s.first[1]];
        let b_shape = vec![cout, cmid, s.second[0], s.second[1]];
        let a_name = fresh_name(g, cx, &format!("{base}.factorized_a.weight"));
        cx.params.insert(a_name.clone(), to_tensor(a_shape.clone(), a));
        let b_name = fresh_name(g, cx, &format!("{base}.factorized_b.weight"));
        cx.params.insert(b_name.clone(), to_tensor(b_shape.clone(), b));
        // Padding and stride: the first conv spans rows (3x3) or only columns
        // (1xn); each axis is padded by the conv that first spans it and
        // strided by the one that last spans it.
        let (pad_a, pad_b, stride_a, stride_b) = match self.into {
            Into::Pair3x3 => (c.pad, [0; 4], [1, 1], c.stride),
            Into::RowColumn => ([0, c.pad[1], 0, c.pad[3]], [c.pad[0], 0, c.pad[2], 0], [1, c.stride[1]], [c.stride[0], 1]),
        };
        let conv_a = Conv2d { kernel: s.first, stride: stride_a, pad: pad_a, dilation: [1, 1], groups: 1, bias: false, epilogue: Epilogue::default() };
        let conv_b = Conv2d { kernel: s.second, stride: stride_b, pad: pad_b, dilation: [1, 1], groups: 1, bias: c.bias, epilogue: Epilogue::default() };
        let av = g.add_param(a_name.clone(), TensorType::f32(a_shape));
        let bv = g.add_param(b_name.clone(), TensorType::f32(b_shape));
        let rewrite = |e| PassError::Rewrite { node: format!("factorization of @{w_name}"), source: e };
        let mut mid = g.add(conv_a, &[operands[0], av]).map_err(rewrite)?;
        if self.mode == Mode::Structural && self.bn {
            let names = ["weight", "bias", "running_mean", "running_var"];
            let init = [1.0f32, 0.0, 0.0, 1.0];
            let mut stats = Vec::new();
            for (n, v) in names.iter().zip(init) {
                let name = fresh_name(g, cx, &format!("{base}.factorized_bn.{n}"));
                cx.params.insert(name.clone(), Tensor::filled(&[cmid], v));
                stats.push(g.add_param(name, TensorType::f32([cmid])));
            }
            let bn = g.add(BatchNorm::inference(1e-3), &[mid, stats[0], stats[1], stats[2], stats[3]]).map_err(rewrite)?;
            mid = g.add(Relu {}, &[bn]).map_err(rewrite)?;
        }
        let mut second_ops = vec![mid, bv];
        if c.bias {
            let bias = operands[2];
            if self.mode == Mode::Structural {
                let name = fresh_name(g, cx, &format!("{base}.factorized_b.bias"));
                cx.params.insert(name.clone(), Tensor::zeros(&[cout]));
                second_ops.push(g.add_param(name, TensorType::f32([cout])));
            } else {
                second_ops.push(bias);
            }
        }
        let out = g.add(conv_b, &second_ops).map_err(rewrite)?;
        g.replace_all_uses(Value { node: id, port: 0 }, out);
        g.remove_node(id);
        let message = match error {
            Some(e) if self.mode == Mode::Fit => format!("{} into @{a_name} + @{b_name}, width {cmid}, kernel error {e:.4}", self.mode_name()),
            _ => format!("{} into @{a_name} + @{b_name}, width {cmid}", self.mode_name()),
        };
        Ok((message, error))
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// The exact decomposition, as (middle width, first weights, second weights).
///
/// A factor is a set of `parts`; each part pairs a tap `w` of one conv with
/// the taps `v` of the other conv that it owns, so that every kernel position
/// `w + v` is owned exactly once. 3x3 pairs: the four windows at (0,0),
/// (0,2), (2,0), (2,2) each own the 5x5 positions nearest to them.
/// 1xn + nx1: the first conv's column tap `c` owns the rows `r` of column c.
/// One side copies each of its channels once per part with a one-hot kernel
/// at `w`; the other side holds the owned taps of K. The copies go on the
/// side with fewer channels: width = parts * min(Cin, Cout).
fn exact(k: &[f64], ks: [usize; 4], s: &Shapes) -> (usize, Vec<f64>, Vec<f64>) {
    let [cout, cin, n, _] = ks;
    let (fa, fb) = (s.first, s.second);
    // Each part: its one-hot tap (in the first conv's kernel when copying
    // inputs, in the second's when copying outputs) and the owned (first tap,
    // second tap) pairs, as (row, column) offsets.
    type Tap = [usize; 2];
    let parts: Vec<(Tap, Tap, Vec<(Tap, Tap)>)> = if fa == [3, 3] {
        [[0, 0], [0, 2], [2, 0], [2, 2]]
            .iter()
            .map(|&w: &Tap| {
                let owned: Vec<Tap> = (0..25)
                    .map(|p| [p / 5, p % 5])
                    .filter(|p| [if p[0] < 3 { 0 } else { 2 }, if p[1] < 3 { 0 } else { 2 }] == w)
                    .map(|p| [p[0] - w[0], p[1] - w[1]])
                    .collect();
                // Copying inputs: first one-hot at w, second holds v. Copying outputs: the reverse.
                (w, w, owned.iter().map(|&v| (w, v)).collect())
            })
            .collect()
    } else {
        // First conv 1xn (tap [0, c]), second nx1 (tap [r, 0]).
        (0..n).map(|c| ([0, c], [0, 0], (0..n).map(|r| ([0, c], [r, 0])).collect())).collect()
    };
    let copies = parts.len();
    let (ta, tb) = (fa[0] * fa[1], fb[0] * fb[1]);
    let tap_a = |t: Tap| t[0] * fa[1] + t[1];
    let tap_b = |t: Tap| t[0] * fb[1] + t[1];
    let kidx = |o: usize, i: usize, r: usize, c: usize| ((o * cin + i) * n + r) * n + c;
    if cin <= cout {
        let cmid = cin * copies;
        let mut a = vec![0.0; cmid * cin * ta];
        let mut b = vec![0.0; cout * cmid * tb];
        for i in 0..cin {
            for (q, (one_hot, _, owned)) in parts.iter().enumerate() {
                let m = i * copies + q;
                a[(m * cin + i) * ta + tap_a(*one_hot)] = 1.0;
                for &(u, v) in owned {
                    for o in 0..cout {
                        b[(o * cmid + m) * tb + tap_b(v)] = k[kidx(o, i, u[0] + v[0], u[1] + v[1])];
                    }
                }
            }
        }
        (cmid, a, b)
    } else {
        // Copy outputs: the first conv holds K's taps relative to the part,
        // the second is one-hot at the part's offset.
        let cmid = cout * copies;
        let mut a = vec![0.0; cmid * cin * ta];
        let mut b = vec![0.0; cout * cmid * tb];
        for o in 0..cout {
            for (q, (_, _, owned)) in parts.iter().enumerate() {
                let m = o * copies + q;
                if fa == [3, 3] {
                    // y = sum_w mid_(o,w)(p + w), mid = sum_v K[w + v] x(q + v).
                    let w = owned[0].0;
                    b[(o * cmid + m) * tb + tap_b(w)] = 1.0;
                    for &(w, v) in owned {
                        for i in 0..cin {
                            a[(m * cin + i) * ta + tap_a(v)] = k[kidx(o, i, w[0] + v[0], w[1] + v[1])];
                        }
                    }
                } else {
                    // Part q is row r = q: mid_(o,r) = sum_c K[o,i,r,c] x(q + (0,c)), y = sum_r mid(p + (r,0)).
                    let r = q;
                    b[(o * cmid + m) * tb + tap_b([r, 0])] = 1.0;
                    for i in 0..cin {
                        for c in 0..n {
                            a[(m * cin + i) * ta + tap_a([0, c])] = k[kidx(o, i, r, c)];
                        }
                    }
                }
            }
        }
        (cmid, a, b)
    }
}

/// Fits A (first conv) and B (second conv) to K by alternating least squares;
/// returns them and the relative error ||K' - K|| / ||K||.
fn fit(k: &[f64], ks: [usize; 4], s: &Shapes, cmid: usize, iterations: usize, seed: u64) -> (Vec<f64>, Vec<f64>, f64) {
    let [cout, cin, n, _] = ks;
    let (fa, fb) = (s.first, s.second);
    let (ta, tb) = (fa[0] * fa[1], fb[0] * fb[1]);
    let mut rng = kiln_models::init::Rng::new(seed);
    let mut a: Vec<f64> = (0..cmid * cin * ta).map(|_| rng.normal() * 0.5).collect();
    let mut b: Vec<f64> = (0..cout * cmid * tb).map(|_| rng.normal() * 0.5).collect();
    // Composite tap position of first tap u and second tap v.
    let pos = |u: usize, v: usize| -> usize {
        let (ur, uc) = (u / fa[1], u % fa[1]);
        let (vr, vc) = (v / fb[1], v % fb[1]);
        (ur + vr) * n + (uc + vc)
    };
    let kk = n * n;
    for _ in 0..iterations.max(1) {
        // B given A: for each o, minimise sum_{i,p} (sum_{m,v} B[o,m,v] T[(m,v),(i,p)] - K[o,i,p])^2
        // with T[(m,v),(i,p)] = sum_u A[m,i,u] [pos(u,v) = p].
        let rows = cmid * tb;
        let cols = cin * kk;
        let mut t = vec![0.0; rows * cols];
        for m in 0..cmid {
            for v in 0..tb {
                for i in 0..cin {
                    for u in 0..ta {
                        t[(m * tb + v) * cols + i * kk + pos(u, v)] += a[(m * cin + i) * ta + u];
                    }
                }
            }
        }
        let rhs: Vec<Vec<f64>> = (0..cout).map(|o| (0..cols).map(|j| k[o * cols + j]).collect()).collect();
        let sol = least_squares(&t, rows, cols, &rhs);
        for o in 0..cout {
            b[o * rows..(o + 1) * rows].copy_from_slice(&sol[o]);
        }
        // A given B: for each i, S[(m,u),(o,p)] = sum_v B[o,m,v] [pos(u,v) = p].
        let rows = cmid * ta;
        let cols = cout * kk;
        let mut sm = vec![0.0; rows * cols];
        for m in 0..cmid {
            for u in 0..ta {
                for o in 0..cout {
                    for v in 0..tb {
                        sm[(m * ta + u) * cols + o * kk + pos(u, v)] += b[(o * cmid + m) * tb + v];
                    }
                }
            }
        }
        let rhs: Vec<Vec<f64>> = (0..cin).map(|i| (0..cols).map(|j| k[((j / kk) * cin + i) * kk + j % kk]).collect()).collect();
        let sol = least_squares(&sm, rows, cols, &rhs);
        for i in 0..cin {
            for m in 0..cmid {
                for u in 0..ta {
                    a[(m * cin + i) * ta + u] = sol[i][m * ta + u];
                }
            }
        }
    }
    let composite = compose(&a, &b, ks, s, cmid);
    let num: f64 = composite.iter().zip(k).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = k.iter().map(|y| y * y).sum();
    (a, b, if den > 0.0 { (num / den).sqrt() } else { 0.0 })
}

/// K'[o,i,p] = sum over m, u, v with pos(u,v) = p of B[o,m,v] A[m,i,u].
fn compose(a: &[f64], b: &[f64], ks: [usize; 4], s: &Shapes, cmid: usize) -> Vec<f64> {
    let [cout, cin, n, _] = ks;
    let (fa, fb) = (s.first, s.second);
    let (ta, tb) = (fa[0] * fa[1], fb[0] * fb[1]);
    let mut out = vec![0.0; cout * cin * n * n];
    for o in 0..cout {
        for m in 0..cmid {
            for v in 0..tb {
                let bv = b[(o * cmid + m) * tb + v];
                if bv == 0.0 {
                    continue;
                }
                for i in 0..cin {
                    for u in 0..ta {
                        let p = (u / fa[1] + v / fb[1]) * n + (u % fa[1] + v % fb[1]);
                        out[(o * cin + i) * n * n + p] += bv * a[(m * cin + i) * ta + u];
                    }
                }
            }
        }
    }
    out
}

/// Solves min ||x M - r||² for each right-hand side r (M is rows x cols,
/// x has `rows` entries) through the normal equations, with a tiny ridge so
/// that rank-deficient systems (more unknowns than the kernel constrains)
/// still solve.
fn least_squares(m: &[f64], rows: usize, cols: usize, rhs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut gram = vec![0.0; rows * rows];
    for r1 in 0..rows {
        for r2 in r1..rows {
            let d: f64 = (0..cols).map(|c| m[r1 * cols + c] * m[r2 * cols + c]).sum();
            gram[r1 * rows + r2] = d;
            gram[r2 * rows + r1] = d;
        }
    }
    let trace: f64 = (0..rows).map(|r| gram[r * rows + r]).sum::<f64>().max(1e-300);
    for r in 0..rows {
        gram[r * rows + r] += 1e-10 * trace / rows as f64;
    }
    let l = cholesky(&gram, rows);
    rhs.iter()
        .map(|r| {
            let y: Vec<f64> = (0..rows).map(|i| (0..cols).map(|c| m[i * cols + c] * r[c]).sum()).collect();
            solve_cholesky(&l, rows, &y)
        })
        .collect()
}

fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                l[i * n + i] = (a[i * n + i] - s).max(1e-300).sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    l
}

fn solve_cholesky(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    x
}

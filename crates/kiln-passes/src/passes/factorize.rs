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

mod kernels;
mod linalg;

use super::{fresh_name, param, param_name};
use crate::pass::{Context, Pass, PassError, Report};
use crate::pipeline::{choice, OptionValue, Options, PipelineError};
use kernels::{compose, exact, fit, relative_error, Factors, Split};
use kiln_ir::ops::{BatchNorm, Conv2d, Epilogue, Relu};
use kiln_ir::{Graph, NodeId, Op, Tensor, TensorType, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Structural,
    Fit,
    Exact,
}

/// Which pair replaces the conv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// 5x5 -> 3x3 + 3x3.
    Pair3x3,
    /// nxn -> 1xn + nx1 (n >= 3).
    RowColumn,
}

const MODES: [(&str, Mode); 3] = [
    ("structural", Mode::Structural),
    ("fit", Mode::Fit),
    ("exact", Mode::Exact),
];
const PAIRINGS: [(&str, Pairing); 2] = [("3x3", Pairing::Pair3x3), ("1xn", Pairing::RowColumn)];

fn name_of<T: PartialEq + Copy>(table: &[(&'static str, T)], v: T) -> &'static str {
    table
        .iter()
        .find(|(_, x)| *x == v)
        .map(|(n, _)| *n)
        .expect("every value is in its table")
}

impl OptionValue for Mode {
    fn parse_option(text: &str) -> Result<Self, String> {
        choice(text, &MODES)
    }
}

impl OptionValue for Pairing {
    fn parse_option(text: &str) -> Result<Self, String> {
        choice(text, &PAIRINGS)
    }
}

pub struct Factorize {
    pub mode: Mode,
    pub into: Pairing,
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
    /// Reads `mode`, `into`, `width`, `iterations`, `bn`, `prefix`; a bad
    /// value is refused at its column.
    pub fn from_options(o: &mut Options) -> Result<Box<dyn Pass>, PipelineError> {
        let mode = o.get_or("mode", Mode::Structural)?;
        let into = o.get_or("into", Pairing::Pair3x3)?;
        let width: f64 = o.get_or("width", 1.0)?;
        if !(width > 0.0 && width <= 64.0) {
            return Err(o.error_at("width", format!("width must be in (0, 64], found {width}")));
        }
        let iterations: usize = o.get_or("iterations", 20)?;
        let bn: bool = o.get_or("bn", false)?;
        let prefix: String = o.get_or("prefix", String::new())?;
        Ok(Box::new(Factorize {
            mode,
            into,
            width,
            iterations,
            bn,
            prefix,
        }))
    }

    fn mode_name(&self) -> &'static str {
        name_of(&MODES, self.mode)
    }
}

/// The two convs' kernels and the original's.
struct Shapes {
    first: [usize; 2],
    second: [usize; 2],
}

impl Factorize {
    fn shapes(&self, c: &Conv2d) -> Result<Shapes, String> {
        let [kh, kw] = c.kernel;
        match self.into {
            Pairing::Pair3x3 if c.kernel == [5, 5] => Ok(Shapes {
                first: [3, 3],
                second: [3, 3],
            }),
            Pairing::Pair3x3 => Err(format!("kernel {kh}x{kw} is not 5x5")),
            Pairing::RowColumn if kh == kw && kh >= 3 => Ok(Shapes {
                first: [1, kh],
                second: [kh, 1],
            }),
            Pairing::RowColumn => Err(format!("kernel {kh}x{kw} is not square with n >= 3")),
        }
    }
}

impl Pass for Factorize {
    fn name(&self) -> &str {
        "factorize"
    }

    fn options(&self) -> String {
        let mut s = format!(
            "mode={},into={}",
            self.mode_name(),
            name_of(&PAIRINGS, self.into)
        );
        match self.mode {
            Mode::Structural => s.push_str(&format!(",width={},bn={}", self.width, self.bn)),
            Mode::Fit => s.push_str(&format!(
                ",width={},iterations={}",
                self.width, self.iterations
            )),
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
        let convs: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.op(id), Op::Conv2d(_)))
            .collect();
        for id in convs {
            let Op::Conv2d(c) = g.op(id).clone() else {
                continue;
            };
            let operands = g.operands(id);
            let Some(w_name) = param_name(g, operands[1]).map(str::to_string) else {
                continue;
            };
            if !w_name.starts_with(&self.prefix) {
                continue;
            }
            let Ok(shapes) = self.shapes(&c) else {
                continue;
            };
            let described = g.describe(id);
            let refuse = match () {
                _ if c.groups != 1 => Some("grouped convs are not factorized"),
                _ if c.dilation != [1, 1] => Some("dilated convs are not factorized"),
                _ if !c.epilogue.is_empty() => Some("convs with a fused epilogue are not factorized (factorize before fuse-residual)"),
                _ if self.into == Pairing::Pair3x3 && c.pad.iter().any(|&p| p >= 3) => {
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
            for (name, value) in detail.1 {
                d.metric(name, value);
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
    /// Rewrites one conv; returns the detail message and its figures (for fit
    /// and exact: `fit_error`, the relative error of the kernel the stored
    /// f32 weights compose to; for fit also `initial_error` and `sweeps`).
    fn factorize_one(
        &self,
        g: &mut Graph,
        cx: &mut Context,
        id: NodeId,
        c: &Conv2d,
        s: &Shapes,
        w_name: &str,
    ) -> Result<(String, Vec<(&'static str, f64)>), PassError> {
        let operands = g.operands(id);
        let w = param(cx, g, w_name, id)?.clone();
        let (cout, cin) = (w.shape[0], w.shape[1]);
        let kernel: Vec<f64> = w.data.iter().map(|&v| v as f64).collect();
        let split = Split {
            first: s.first,
            second: s.second,
        };
        let mut metrics = Vec::new();
        let (cmid, a, b) = match self.mode {
            Mode::Exact => {
                let f = exact(&split, &kernel, cin, cout);
                (f.cmid, f.a, f.b)
            }
            Mode::Fit => {
                let cmid = ((self.width * cout as f64).round() as usize).max(1);
                let r = fit(&split, &kernel, cin, cout, cmid, self.iterations);
                metrics.push(("initial_error", r.initial_error));
                metrics.push(("sweeps", r.sweeps as f64));
                (cmid, r.factors.a, r.factors.b)
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
                (cmid, a, b)
            }
        };
        // The weights are stored as f32: measure the error of what the graph computes.
        let a: Vec<f64> = a.iter().map(|&v| v as f32 as f64).collect();
        let b: Vec<f64> = b.iter().map(|&v| v as f32 as f64).collect();
        let error = (self.mode != Mode::Structural).then(|| {
            let stored = Factors {
                cin,
                cmid,
                cout,
                a: a.clone(),
                b: b.clone(),
            };
            relative_error(&compose(&split, &stored), &kernel)
        });
        metrics.extend(error.map(|e| ("fit_error", e)));
        metrics.push(("width", cmid as f64));
        let base = w_name.strip_suffix(".weight").unwrap_or(w_name).to_string();
        let to_tensor = |shape: Vec<usize>, data: Vec<f64>| Tensor {
            shape,
            data: data.into_iter().map(|v| v as f32).collect(),
        };
        let a_shape = vec![cmid, cin, s.first[0], s.first[1]];
        let b_shape = vec![cout, cmid, s.second[0], s.second[1]];
        let a_name = fresh_name(g, cx, &format!("{base}.factorized_a.weight"));
        cx.params
            .insert(a_name.clone(), to_tensor(a_shape.clone(), a));
        let b_name = fresh_name(g, cx, &format!("{base}.factorized_b.weight"));
        cx.params
            .insert(b_name.clone(), to_tensor(b_shape.clone(), b));
        // Padding and stride: the first conv spans rows (3x3) or only columns
        // (1xn); each axis is padded by the conv that first spans it and
        // strided by the one that last spans it.
        let (pad_a, pad_b, stride_a, stride_b) = match self.into {
            Pairing::Pair3x3 => (c.pad, [0; 4], [1, 1], c.stride),
            Pairing::RowColumn => (
                [0, c.pad[1], 0, c.pad[3]],
                [c.pad[0], 0, c.pad[2], 0],
                [1, c.stride[1]],
                [c.stride[0], 1],
            ),
        };
        let conv_a = Conv2d {
            kernel: s.first,
            stride: stride_a,
            pad: pad_a,
            dilation: [1, 1],
            groups: 1,
            bias: false,
            epilogue: Epilogue::default(),
        };
        let conv_b = Conv2d {
            kernel: s.second,
            stride: stride_b,
            pad: pad_b,
            dilation: [1, 1],
            groups: 1,
            bias: c.bias,
            epilogue: Epilogue::default(),
        };
        let av = g.add_param(a_name.clone(), TensorType::f32(a_shape));
        let bv = g.add_param(b_name.clone(), TensorType::f32(b_shape));
        let rewrite = |e| PassError::Rewrite {
            node: format!("factorization of @{w_name}"),
            source: e,
        };
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
            let bn = g
                .add(
                    BatchNorm::inference(1e-3),
                    &[mid, stats[0], stats[1], stats[2], stats[3]],
                )
                .map_err(rewrite)?;
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
            Some(e) => format!(
                "{} into @{a_name} + @{b_name}, width {cmid}, kernel error {e:.3e}",
                self.mode_name()
            ),
            _ => format!(
                "{} into @{a_name} + @{b_name}, width {cmid}",
                self.mode_name()
            ),
        };
        Ok((message, metrics))
    }
}

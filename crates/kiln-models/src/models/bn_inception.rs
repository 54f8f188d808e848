//! BN-Inception (Batch Normalization: Accelerating Deep Network Training,
//! Ioffe and Szegedy 2015, figure 5) as the Python package pretrainedmodels
//! builds it (`bninception`, a port of the released Caffe model), with its
//! flat parameter names (`inception_3a_double_3x3_1_bn.running_var`).
//!
//! Quirks of that model, kept for compatibility: every conv has a bias
//! although a BatchNorm follows it (Caffe habit); the stem keeps GoogLeNet's
//! `conv2_3x3_reduce` 1x1; pools are ceil mode; the pool branch of 5b is a
//! max pool where the others average (so does the paper's figure 5). In the
//! stride-2 modules (3c, 4e) the 3x3 convs pad 1 and round down while the
//! max pool pads 0 and rounds up, which agree only on even feature maps:
//! pretrainedmodels fails on odd ones, and so does this builder, with a
//! [`ModelError::Config`](crate::ModelError::Config) saying so. The
//! classifier's 7x7 average pool is a global average pool here (the same at
//! 224x224; pretrainedmodels accepts no other size).

use crate::builder::{Conv, GraphBuilder, Pool, Result};
use crate::config::Config;
use crate::error::ModelError;
use kiln_ir::{Graph, Value};

/// nn.BatchNorm2d's default.
const EPS: f32 = 1e-5;

/// The pool branch of a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolBranch {
    /// 3x3/1 average pool (padding counted), then a 1x1 `pool_proj` of this width.
    Avg(usize),
    /// 3x3/1 max pool, then a 1x1 `pool_proj` of this width.
    Max(usize),
    /// 3x3/2 max pool passed through (the stride-2 modules 3c and 4e).
    PassThrough,
}

/// One module of figure 5: the 1x1 width (0 for none), the 3x3 branch
/// (reduce, out), the double 3x3 branch (reduce, out), the pool branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    pub ch1x1: usize,
    pub ch3x3: (usize, usize),
    pub double3x3: (usize, usize),
    pub pool: PoolBranch,
}

const fn m(
    ch1x1: usize,
    ch3x3: (usize, usize),
    double3x3: (usize, usize),
    pool: PoolBranch,
) -> Module {
    Module {
        ch1x1,
        ch3x3,
        double3x3,
        pool,
    }
}

use PoolBranch::{Avg, Max, PassThrough};

/// Modules 3a-5b, as pretrainedmodels' `BNInception.__init__`.
pub const MODULES: [(&str, Module); 10] = [
    ("inception_3a", m(64, (64, 64), (64, 96), Avg(32))),
    ("inception_3b", m(64, (64, 96), (64, 96), Avg(64))),
    ("inception_3c", m(0, (128, 160), (64, 96), PassThrough)),
    ("inception_4a", m(224, (64, 96), (96, 128), Avg(128))),
    ("inception_4b", m(192, (96, 128), (96, 128), Avg(128))),
    ("inception_4c", m(160, (128, 160), (128, 160), Avg(128))),
    ("inception_4d", m(96, (128, 192), (160, 192), Avg(128))),
    ("inception_4e", m(0, (128, 192), (192, 256), PassThrough)),
    ("inception_5a", m(352, (192, 320), (160, 224), Avg(128))),
    ("inception_5b", m(352, (192, 320), (192, 224), Max(128))),
];

/// Conv `<name>` (with bias), BatchNorm `<name>_bn`, ReLU.
pub fn conv_bn_relu(b: &mut GraphBuilder, name: &str, x: Value, c: Conv) -> Result<Value> {
    let y = b.conv(name, x, c.bias(true))?;
    let y = b.bn(&format!("{name}_bn"), y, EPS)?;
    b.relu(y)
}

/// One module named `prefix` (`inception_3a`); parameters `<prefix>_1x1`,
/// `<prefix>_3x3_reduce`, `<prefix>_3x3`, `<prefix>_double_3x3_reduce`,
/// `<prefix>_double_3x3_1`, `<prefix>_double_3x3_2`, `<prefix>_pool_proj`,
/// each with its `_bn`. Branches concatenated in pretrainedmodels' order.
pub fn module(b: &mut GraphBuilder, prefix: &str, x: Value, m: Module) -> Result<Value> {
    let stride = if m.pool == PassThrough { 2 } else { 1 };
    if stride == 2 {
        let shape = b.shape(x)?;
        if shape.len() == 4 && (shape[2] % 2 == 1 || shape[3] % 2 == 1) {
            return Err(ModelError::Config {
                model: b.graph().name.clone(),
                message: format!(
                    "{prefix} needs an even feature map (its padded stride-2 convs and unpadded \
                     ceil-mode pool disagree on odd ones, as in pretrainedmodels), found {}x{}",
                    shape[2], shape[3]
                ),
            });
        }
    }
    let mut branches = Vec::with_capacity(4);
    if m.ch1x1 > 0 {
        branches.push(conv_bn_relu(
            b,
            &format!("{prefix}_1x1"),
            x,
            Conv::new(m.ch1x1, 1),
        )?);
    }
    let y = conv_bn_relu(
        b,
        &format!("{prefix}_3x3_reduce"),
        x,
        Conv::new(m.ch3x3.0, 1),
    )?;
    branches.push(conv_bn_relu(
        b,
        &format!("{prefix}_3x3"),
        y,
        Conv::new(m.ch3x3.1, 3).stride(stride).pad(1),
    )?);
    let y = conv_bn_relu(
        b,
        &format!("{prefix}_double_3x3_reduce"),
        x,
        Conv::new(m.double3x3.0, 1),
    )?;
    let y = conv_bn_relu(
        b,
        &format!("{prefix}_double_3x3_1"),
        y,
        Conv::new(m.double3x3.1, 3).pad(1),
    )?;
    let d = Conv::new(m.double3x3.1, 3).stride(stride).pad(1);
    branches.push(conv_bn_relu(b, &format!("{prefix}_double_3x3_2"), y, d)?);
    let proj = |b: &mut GraphBuilder, y: Value, width: usize| {
        conv_bn_relu(b, &format!("{prefix}_pool_proj"), y, Conv::new(width, 1))
    };
    branches.push(match m.pool {
        Avg(width) => {
            let y = b.avg_pool(x, Pool::new(3, 1).pad(1).ceil())?;
            proj(b, y, width)?
        }
        Max(width) => {
            let y = b.max_pool(x, Pool::new(3, 1).pad(1).ceil())?;
            proj(b, y, width)?
        }
        PassThrough => b.max_pool(x, Pool::new(3, 2).ceil())?,
    });
    b.concat(&branches)
}

/// The whole network: stem `conv1_7x7_s2`, `pool1_3x3_s2`, `conv2_3x3_reduce`,
/// `conv2_3x3`, `pool2_3x3_s2`; modules 3a-5b; global average pool; `last_linear`.
pub fn bn_inception(name: &str, cfg: &Config) -> Result<Graph> {
    let mut b = GraphBuilder::new(name);
    let x = b.input("input", [cfg.batch, cfg.in_channels, cfg.height, cfg.width])?;
    let x = conv_bn_relu(&mut b, "conv1_7x7_s2", x, Conv::new(64, 7).stride(2).pad(3))?;
    let x = b.max_pool(x, Pool::new(3, 2).ceil())?;
    let x = conv_bn_relu(&mut b, "conv2_3x3_reduce", x, Conv::new(64, 1))?;
    let x = conv_bn_relu(&mut b, "conv2_3x3", x, Conv::new(192, 3).pad(1))?;
    let mut x = b.max_pool(x, Pool::new(3, 2).ceil())?;
    for (prefix, m) in MODULES {
        x = module(&mut b, prefix, x, m)?;
    }
    let x = b.global_avg_pool(x)?;
    let x = b.flatten(x)?;
    let y = b.dense("last_linear", x, cfg.num_classes, true)?;
    b.finish(vec![y])
}

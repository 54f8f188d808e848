//! GoogLeNet (Going Deeper with Convolutions, Szegedy et al. 2014) in two
//! forms: torchvision's `googlenet` (BatchNorm after every conv, a 3x3 conv
//! where the paper has a 5x5, a 2x2 fourth max pool, ceil-mode max pools) and
//! the paper's table 1 as the BVLC Caffe model builds it (true 5x5 convs,
//! biases, LRN after the first pool and the third conv, no BatchNorm,
//! ceil-mode pools, dropout 0.4).

use crate::builder::{Conv, GraphBuilder, Pool, Result};
use crate::config::Config;
use kiln_ir::{Graph, Value};

/// torchvision's `BasicConv2d` uses BatchNorm eps 0.001.
const EPS: f32 = 1e-3;

/// Which GoogLeNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Torchvision,
    Paper,
}

/// The widths of one inception module, as the paper's table 1 and
/// torchvision's `Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InceptionWidths {
    pub ch1x1: usize,
    pub ch3x3red: usize,
    pub ch3x3: usize,
    pub ch5x5red: usize,
    pub ch5x5: usize,
    pub pool_proj: usize,
}

const fn w(
    ch1x1: usize,
    ch3x3red: usize,
    ch3x3: usize,
    ch5x5red: usize,
    ch5x5: usize,
    pool_proj: usize,
) -> InceptionWidths {
    InceptionWidths {
        ch1x1,
        ch3x3red,
        ch3x3,
        ch5x5red,
        ch5x5,
        pool_proj,
    }
}

/// Modules 3a-5b of table 1.
pub const MODULES: [(&str, InceptionWidths); 9] = [
    ("inception3a", w(64, 96, 128, 16, 32, 32)),
    ("inception3b", w(128, 128, 192, 32, 96, 64)),
    ("inception4a", w(192, 96, 208, 16, 48, 64)),
    ("inception4b", w(160, 112, 224, 24, 64, 64)),
    ("inception4c", w(128, 128, 256, 24, 64, 64)),
    ("inception4d", w(112, 144, 288, 32, 64, 64)),
    ("inception4e", w(256, 160, 320, 32, 128, 128)),
    ("inception5a", w(256, 160, 320, 32, 128, 128)),
    ("inception5b", w(384, 192, 384, 48, 128, 128)),
];

/// A conv then ReLU, with torchvision's `BasicConv2d` (`<name>.conv`, no bias,
/// then `<name>.bn`) or the paper's biased conv `<name>`.
fn conv_relu(
    b: &mut GraphBuilder,
    variant: Variant,
    name: &str,
    x: Value,
    c: Conv,
) -> Result<Value> {
    let y = match variant {
        Variant::Torchvision => {
            let mut s = b.scope(name);
            let y = s.conv("conv", x, c)?;
            s.bn("bn", y, EPS)?
        }
        Variant::Paper => b.conv(name, x, c.bias(true))?,
    };
    b.relu(y)
}

/// One inception module in the current scope: `branch1` (1x1), `branch2`
/// (1x1 reduce, 3x3), `branch3` (1x1 reduce, then a 3x3 in torchvision, a
/// 5x5 in the paper), `branch4` (3x3/1 max pool, 1x1 projection), concatenated.
pub fn inception(
    b: &mut GraphBuilder,
    variant: Variant,
    x: Value,
    w: InceptionWidths,
) -> Result<Value> {
    let b1 = conv_relu(b, variant, "branch1", x, Conv::new(w.ch1x1, 1))?;
    let b2 = {
        let mut s = b.scope("branch2");
        let y = conv_relu(&mut s, variant, "0", x, Conv::new(w.ch3x3red, 1))?;
        conv_relu(&mut s, variant, "1", y, Conv::new(w.ch3x3, 3).pad(1))?
    };
    let b3 = {
        let mut s = b.scope("branch3");
        let y = conv_relu(&mut s, variant, "0", x, Conv::new(w.ch5x5red, 1))?;
        // torchvision's well-known 3x3 here ("kernel_size=3 instead of 5 is a known bug").
        let k = if variant == Variant::Torchvision {
            3
        } else {
            5
        };
        conv_relu(&mut s, variant, "1", y, Conv::new(w.ch5x5, k).same())?
    };
    let b4 = {
        let mut s = b.scope("branch4");
        let y = s.max_pool(x, Pool::new(3, 1).pad(1).ceil())?;
        conv_relu(&mut s, variant, "1", y, Conv::new(w.pool_proj, 1))?
    };
    b.concat(&[b1, b2, b3, b4])
}

/// An auxiliary classifier in the current scope. torchvision: adaptive
/// average pool to 4x4, `conv` (BasicConv2d 128), flatten, `fc1` 1024 +
/// ReLU, dropout 0.7, `fc2`. Paper: 5x5/3 average pool, `conv` 1x1 128 +
/// ReLU, `fc1` 1024 + ReLU, dropout 0.7, `fc2`.
pub fn aux_head(b: &mut GraphBuilder, variant: Variant, x: Value, classes: usize) -> Result<Value> {
    let y = match variant {
        Variant::Torchvision => b.adaptive_avg_pool(x, [4, 4])?,
        Variant::Paper => b.avg_pool(x, Pool::new(5, 3).ceil())?,
    };
    let y = conv_relu(b, variant, "conv", y, Conv::new(128, 1))?;
    let y = b.flatten(y)?;
    let y = b.dense("fc1", y, 1024, true)?;
    let y = b.relu(y)?;
    let y = b.dropout(y, 0.7)?;
    b.dense("fc2", y, classes, true)
}

/// The whole network. Outputs: the logits, then with `aux_logits` the
/// classifiers after 4d and 4a (torchvision's order: `aux2`, `aux1`).
pub fn googlenet(name: &str, cfg: &Config, variant: Variant) -> Result<Graph> {
    let paper = variant == Variant::Paper;
    let mut b = GraphBuilder::new(name);
    let x = b.input("input", [cfg.batch, cfg.in_channels, cfg.height, cfg.width])?;
    let x = conv_relu(
        &mut b,
        variant,
        "conv1",
        x,
        Conv::new(64, 7).stride(2).pad(3),
    )?;
    let mut x = b.max_pool(x, Pool::new(3, 2).ceil())?;
    if paper {
        x = b.lrn(x, 5, 1e-4, 0.75, 1.0)?;
    }
    let x = conv_relu(&mut b, variant, "conv2", x, Conv::new(64, 1))?;
    let mut x = conv_relu(&mut b, variant, "conv3", x, Conv::new(192, 3).pad(1))?;
    if paper {
        x = b.lrn(x, 5, 1e-4, 0.75, 1.0)?;
    }
    let mut x = b.max_pool(x, Pool::new(3, 2).ceil())?;
    let mut aux = Vec::new();
    for (name, widths) in MODULES {
        x = inception(&mut b.scope(name), variant, x, widths)?;
        match name {
            "inception3b" => x = b.max_pool(x, Pool::new(3, 2).ceil())?,
            // torchvision pools 2x2 here; the paper's table and Caffe model pool 3x3/2.
            "inception4e" => {
                x = b.max_pool(
                    x,
                    if paper {
                        Pool::new(3, 2).ceil()
                    } else {
                        Pool::new(2, 2).ceil()
                    },
                )?
            }
            "inception4a" | "inception4d" if cfg.aux_logits => {
                let head = if name == "inception4a" {
                    "aux1"
                } else {
                    "aux2"
                };
                aux.push(aux_head(&mut b.scope(head), variant, x, cfg.num_classes)?);
            }
            _ => {}
        }
    }
    let x = b.global_avg_pool(x)?;
    let x = b.flatten(x)?;
    let x = b.dropout(x, cfg.dropout)?;
    let y = b.dense("fc", x, cfg.num_classes, true)?;
    let mut outputs = vec![y];
    outputs.extend(aux.into_iter().rev());
    b.finish(outputs)
}

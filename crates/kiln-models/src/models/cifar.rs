//! CIFAR-10 networks: the ResNets of the ResNet paper's section 4.2 (6n+2
//! layers, option-A shortcuts) and Wide ResNets (Zagoruyko and Komodakis
//! 2016, pre-activation, optional dropout between the convs).
//!
//! Parameter names follow the most used PyTorch ports: akamaster's
//! `pytorch_resnet_cifar10` for the ResNets (`layer1.0.conv1`, `linear`),
//! and the torchvision style for WRN (`layer1.0.bn1`, `shortcut`, `bn_final`, `fc`).

use crate::builder::{Conv, GraphBuilder, Result};
use crate::config::Config;
use crate::models::resnet::basic_block_with;
use kiln_ir::{Graph, Value};

const EPS: f32 = 1e-5;

/// Option A of the ResNet paper: the identity, or, where the shape changes,
/// `x[:, :, ::stride, ::stride]` zero-padded to `out` channels (half the new
/// channels before, half after, as akamaster's `LambdaLayer` pads). No parameters.
pub fn option_a_shortcut(
    b: &mut GraphBuilder,
    x: Value,
    out: usize,
    stride: usize,
) -> Result<Value> {
    let shape = b.shape(x)?;
    let cin = b.channels(x)?;
    if stride == 1 && cin == out {
        return Ok(x);
    }
    let mut y = x;
    if stride > 1 {
        y = b.slice(y, 2, 0, shape[2], stride)?;
        y = b.slice(y, 3, 0, shape[3], stride)?;
    }
    if out > cin {
        let before = (out - cin) / 2;
        let after = out - cin - before;
        y = b.pad(y, vec![0, before, 0, 0, 0, after, 0, 0], 0.0)?;
    }
    Ok(y)
}

/// The CIFAR basic block: `conv1` 3x3, `bn1`, ReLU, `conv2` 3x3, `bn2`, the
/// option-A shortcut, add, ReLU.
pub fn cifar_block(b: &mut GraphBuilder, x: Value, planes: usize, stride: usize) -> Result<Value> {
    basic_block_with(b, x, planes, stride, option_a_shortcut)
}

/// ResNet-(6n+2) for 32x32 inputs: `conv1` 3x3 16, three stages of `n`
/// blocks (16, 32, 64 channels; the last two start with stride 2), global
/// average pool, `linear`.
pub fn resnet_cifar(name: &str, cfg: &Config, n: usize) -> Result<Graph> {
    let mut b = GraphBuilder::new(name);
    let x = b.input("input", [cfg.batch, cfg.in_channels, cfg.height, cfg.width])?;
    let x = b.conv("conv1", x, Conv::new(16, 3).pad(1))?;
    let x = b.bn("bn1", x, EPS)?;
    let mut x = b.relu(x)?;
    for (stage, planes) in [16, 32, 64].into_iter().enumerate() {
        let mut layer = b.scope(format!("layer{}", stage + 1));
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            x = cifar_block(&mut layer.scope(i), x, planes, stride)?;
        }
    }
    let x = b.global_avg_pool(x)?;
    let x = b.flatten(x)?;
    let y = b.dense("linear", x, cfg.num_classes, true)?;
    b.finish(vec![y])
}

/// The Wide ResNet block: `bn1`, ReLU, `conv1` 3x3 (the stride), `bn2`,
/// ReLU, dropout, `conv2` 3x3; the shortcut is the identity or, where the
/// shape changes, a 1x1 `shortcut` conv of the activated input.
pub fn wide_block(
    b: &mut GraphBuilder,
    x: Value,
    planes: usize,
    stride: usize,
    dropout: f32,
) -> Result<Value> {
    let same = stride == 1 && b.channels(x)? == planes;
    let a = b.bn("bn1", x, EPS)?;
    let a = b.relu(a)?;
    let y = b.conv("conv1", a, Conv::new(planes, 3).stride(stride).pad(1))?;
    let y = b.bn("bn2", y, EPS)?;
    let y = b.relu(y)?;
    let y = b.dropout(y, dropout)?;
    let y = b.conv("conv2", y, Conv::new(planes, 3).pad(1))?;
    let shortcut = if same {
        x
    } else {
        b.conv("shortcut", a, Conv::new(planes, 1).stride(stride))?
    };
    b.add(y, shortcut)
}

/// WRN-`depth`-`k`: `conv1` 3x3 16, three stages of `(depth - 4) / 6` wide
/// blocks (16k, 32k, 64k channels), `bn_final`, ReLU, global average pool, `fc`.
pub fn wide_resnet(name: &str, cfg: &Config, depth: usize, k: usize) -> Result<Graph> {
    let n = (depth - 4) / 6;
    let mut b = GraphBuilder::new(name);
    let x = b.input("input", [cfg.batch, cfg.in_channels, cfg.height, cfg.width])?;
    let mut x = b.conv("conv1", x, Conv::new(16, 3).pad(1))?;
    for (stage, planes) in [16 * k, 32 * k, 64 * k].into_iter().enumerate() {
        let mut layer = b.scope(format!("layer{}", stage + 1));
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            x = wide_block(&mut layer.scope(i), x, planes, stride, cfg.dropout)?;
        }
    }
    let x = b.bn("bn_final", x, EPS)?;
    let x = b.relu(x)?;
    let x = b.global_avg_pool(x)?;
    let x = b.flatten(x)?;
    let y = b.dense("fc", x, cfg.num_classes, true)?;
    b.finish(vec![y])
}

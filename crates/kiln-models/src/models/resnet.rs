//! ResNets for ImageNet: v1 as torchvision builds it (Deep Residual Learning,
//! He et al. 2015, with the "v1.5" stride on the 3x3 conv of bottlenecks),
//! Wide ResNet-50/101-2 (the bottleneck's inner width doubled), and v2 with
//! full pre-activation (Identity Mappings in Deep Residual Networks, He et
//! al. 2016) as the authors' fb.resnet.torch `preresnet.lua` builds it.

use crate::builder::{Conv, GraphBuilder, Pool, Result};
use crate::config::Config;
use kiln_ir::{Graph, Value};

/// torchvision's BatchNorm2d default.
const EPS: f32 = 1e-5;

/// The residual block of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Two 3x3 convs (ResNet-18/34).
    Basic,
    /// 1x1, 3x3, 1x1 with 4x expansion (ResNet-50 and deeper).
    Bottleneck,
}

impl Block {
    pub fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// The shape of an ImageNet ResNet: block kind, blocks per stage, and the
/// bottleneck width per 64 planes (64 for ResNet, 128 for Wide ResNet-x-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResNetSpec {
    pub block: Block,
    pub layers: [usize; 4],
    pub width_per_group: usize,
}

const PLANES: [usize; 4] = [64, 128, 256, 512];

/// A shortcut builder: `(builder, input, output channels, stride) -> shortcut`.
pub type Shortcut = fn(&mut GraphBuilder, Value, usize, usize) -> Result<Value>;

/// torchvision's `BasicBlock` in the current scope: `conv1`, `bn1`, `conv2`,
/// `bn2`, and `downsample.0` (1x1 conv) / `downsample.1` (BN) when the
/// stride or the width changes.
pub fn basic_block(b: &mut GraphBuilder, x: Value, planes: usize, stride: usize) -> Result<Value> {
    basic_block_with(b, x, planes, stride, projection)
}

/// The basic block with any shortcut (the CIFAR ResNets use option A).
pub fn basic_block_with(
    b: &mut GraphBuilder,
    x: Value,
    planes: usize,
    stride: usize,
    shortcut: Shortcut,
) -> Result<Value> {
    let y = b.conv("conv1", x, Conv::new(planes, 3).stride(stride).pad(1))?;
    let y = b.bn("bn1", y, EPS)?;
    let y = b.relu(y)?;
    let y = b.conv("conv2", y, Conv::new(planes, 3).pad(1))?;
    let y = b.bn("bn2", y, EPS)?;
    let s = shortcut(b, x, planes, stride)?;
    let y = b.add(y, s)?;
    b.relu(y)
}

/// torchvision's `Bottleneck`: `conv1` 1x1, `conv2` 3x3 carrying the stride,
/// `conv3` 1x1 to `4 * planes`, each with its BN, and the projection shortcut.
pub fn bottleneck(
    b: &mut GraphBuilder,
    x: Value,
    planes: usize,
    stride: usize,
    width_per_group: usize,
) -> Result<Value> {
    let width = planes * width_per_group / 64;
    let y = b.conv("conv1", x, Conv::new(width, 1))?;
    let y = b.bn("bn1", y, EPS)?;
    let y = b.relu(y)?;
    let y = b.conv("conv2", y, Conv::new(width, 3).stride(stride).pad(1))?;
    let y = b.bn("bn2", y, EPS)?;
    let y = b.relu(y)?;
    let y = b.conv("conv3", y, Conv::new(planes * 4, 1))?;
    let y = b.bn("bn3", y, EPS)?;
    let shortcut = projection(b, x, planes * 4, stride)?;
    let y = b.add(y, shortcut)?;
    b.relu(y)
}

/// The identity, or torchvision's `downsample` (1x1 conv + BN) when the
/// shape changes.
fn projection(b: &mut GraphBuilder, x: Value, out: usize, stride: usize) -> Result<Value> {
    if stride == 1 && b.channels(x)? == out {
        return Ok(x);
    }
    let mut s = b.scope("downsample");
    let y = s.conv("0", x, Conv::new(out, 1).stride(stride))?;
    s.bn("1", y, EPS)
}

/// The stem shared by v1 and v2: `conv1` 7x7/2, `bn1`, ReLU, 3x3/2 max pool.
fn stem(b: &mut GraphBuilder, cfg: &Config) -> Result<Value> {
    let x = b.input("input", [cfg.batch, cfg.in_channels, cfg.height, cfg.width])?;
    let x = b.conv("conv1", x, Conv::new(64, 7).stride(2).pad(3))?;
    let x = b.bn("bn1", x, EPS)?;
    let x = b.relu(x)?;
    b.max_pool(x, Pool::new(3, 2).pad(1))
}

/// Global average pool, flatten, `fc`.
fn head(b: &mut GraphBuilder, x: Value, classes: usize) -> Result<Value> {
    let x = b.global_avg_pool(x)?;
    let x = b.flatten(x)?;
    b.dense("fc", x, classes, true)
}

/// A torchvision ResNet v1 (`resnet18` ... `resnet152`, `wide_resnet50_2`, ...).
pub fn resnet(name: &str, cfg: &Config, spec: ResNetSpec) -> Result<Graph> {
    let mut b = GraphBuilder::new(name);
    let mut x = stem(&mut b, cfg)?;
    for (stage, (&blocks, &planes)) in spec.layers.iter().zip(&PLANES).enumerate() {
        let mut layer = b.scope(format!("layer{}", stage + 1));
        for i in 0..blocks {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let mut blk = layer.scope(i);
            x = match spec.block {
                Block::Basic => basic_block(&mut blk, x, planes, stride)?,
                Block::Bottleneck => bottleneck(&mut blk, x, planes, stride, spec.width_per_group)?,
            };
        }
    }
    let y = head(&mut b, x, cfg.num_classes)?;
    b.finish(vec![y])
}

/// How a pre-activation block treats its input (fb.resnet.torch's block types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preact {
    /// BN-ReLU opens the residual branch; the shortcut reads the raw input.
    Branch,
    /// BN-ReLU on the input feeds both the branch and the (projection) shortcut:
    /// the first block of stages 2-4.
    Both,
    /// No BN-ReLU: the input is already activated (the first block after the
    /// stem, whose BN-ReLU precedes the max pool).
    None,
}

/// A full pre-activation basic block: [`bn1`, ReLU,] `conv1`, `bn2`, ReLU,
/// `conv2`, plus the shortcut (identity, or a 1x1 `shortcut` conv without BN).
pub fn preact_basic(
    b: &mut GraphBuilder,
    x: Value,
    planes: usize,
    stride: usize,
    mode: Preact,
) -> Result<Value> {
    let (branch_in, shortcut_in) = preactivate(b, x, mode)?;
    let y = b.conv(
        "conv1",
        branch_in,
        Conv::new(planes, 3).stride(stride).pad(1),
    )?;
    let y = b.bn("bn2", y, EPS)?;
    let y = b.relu(y)?;
    let y = b.conv("conv2", y, Conv::new(planes, 3).pad(1))?;
    let shortcut = preact_shortcut(b, shortcut_in, planes, stride)?;
    b.add(y, shortcut)
}

/// A full pre-activation bottleneck: [`bn1`, ReLU,] `conv1` 1x1, `bn2`, ReLU,
/// `conv2` 3x3 (the stride), `bn3`, ReLU, `conv3` 1x1 to `4 * planes`.
pub fn preact_bottleneck(
    b: &mut GraphBuilder,
    x: Value,
    planes: usize,
    stride: usize,
    mode: Preact,
) -> Result<Value> {
    let (branch_in, shortcut_in) = preactivate(b, x, mode)?;
    let y = b.conv("conv1", branch_in, Conv::new(planes, 1))?;
    let y = b.bn("bn2", y, EPS)?;
    let y = b.relu(y)?;
    let y = b.conv("conv2", y, Conv::new(planes, 3).stride(stride).pad(1))?;
    let y = b.bn("bn3", y, EPS)?;
    let y = b.relu(y)?;
    let y = b.conv("conv3", y, Conv::new(planes * 4, 1))?;
    let shortcut = preact_shortcut(b, shortcut_in, planes * 4, stride)?;
    b.add(y, shortcut)
}

/// Returns (branch input, shortcut input) for `mode`.
fn preactivate(b: &mut GraphBuilder, x: Value, mode: Preact) -> Result<(Value, Value)> {
    Ok(match mode {
        Preact::None => (x, x),
        Preact::Branch | Preact::Both => {
            let y = b.bn("bn1", x, EPS)?;
            let y = b.relu(y)?;
            if mode == Preact::Both {
                (y, y)
            } else {
                (y, x)
            }
        }
    })
}

fn preact_shortcut(b: &mut GraphBuilder, x: Value, out: usize, stride: usize) -> Result<Value> {
    if stride == 1 && b.channels(x)? == out {
        return Ok(x);
    }
    b.conv("shortcut", x, Conv::new(out, 1).stride(stride))
}

/// ResNet v2 with full pre-activation: the v1 stem, pre-activation blocks,
/// and `bn_final` + ReLU before the pool, as `preresnet.lua`.
pub fn preact_resnet(name: &str, cfg: &Config, block: Block, layers: [usize; 4]) -> Result<Graph> {
    let mut b = GraphBuilder::new(name);
    let mut x = stem(&mut b, cfg)?;
    for (stage, (&blocks, &planes)) in layers.iter().zip(&PLANES).enumerate() {
        let mut layer = b.scope(format!("layer{}", stage + 1));
        for i in 0..blocks {
            let (stride, mode) = match (stage, i) {
                (0, 0) => (1, Preact::None),
                (_, 0) => (2, Preact::Both),
                _ => (1, Preact::Branch),
            };
            let mut blk = layer.scope(i);
            x = match block {
                Block::Basic => preact_basic(&mut blk, x, planes, stride, mode)?,
                Block::Bottleneck => preact_bottleneck(&mut blk, x, planes, stride, mode)?,
            };
        }
    }
    let x = b.bn("bn_final", x, EPS)?;
    let x = b.relu(x)?;
    let y = head(&mut b, x, cfg.num_classes)?;
    b.finish(vec![y])
}

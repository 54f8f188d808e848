//! Inception-v3 (Rethinking the Inception Architecture for Computer Vision,
//! Szegedy et al. 2015) as torchvision's `inception_v3(aux_logits=False,
//! transform_input=False)` builds it, with module and parameter names equal
//! to its `state_dict` (`Mixed_6b.branch7x7_2.conv.weight`). The blocks take
//! their widths as arguments, as torchvision's classes do, so they can be
//! built on their own (the block tests do).

use crate::builder::{Conv, GraphBuilder, Pool, Result};
use crate::config::Config;
use kiln_ir::{Graph, Value};

/// torchvision's `BasicConv2d`: BatchNorm eps 0.001.
const EPS: f32 = 1e-3;

/// `BasicConv2d`: `<name>.conv` (no bias), `<name>.bn`, ReLU.
pub fn basic_conv(b: &mut GraphBuilder, name: &str, x: Value, c: Conv) -> Result<Value> {
    let mut s = b.scope(name);
    let y = s.conv("conv", x, c)?;
    let y = s.bn("bn", y, EPS)?;
    s.relu(y)
}

fn pool_branch(b: &mut GraphBuilder, x: Value, out: usize) -> Result<Value> {
    let y = b.avg_pool(x, Pool::new(3, 1).pad(1))?;
    basic_conv(b, "branch_pool", y, Conv::new(out, 1))
}

/// `InceptionA(in, pool_features)` (Mixed_5b-5d): 1x1; 1x1-5x5; 1x1-3x3-3x3;
/// 3x3 average pool-1x1. Output `224 + pool_features` channels.
pub fn inception_a(b: &mut GraphBuilder, x: Value, pool_features: usize) -> Result<Value> {
    let b1 = basic_conv(b, "branch1x1", x, Conv::new(64, 1))?;
    let y = basic_conv(b, "branch5x5_1", x, Conv::new(48, 1))?;
    let b5 = basic_conv(b, "branch5x5_2", y, Conv::new(64, 5).pad(2))?;
    let y = basic_conv(b, "branch3x3dbl_1", x, Conv::new(64, 1))?;
    let y = basic_conv(b, "branch3x3dbl_2", y, Conv::new(96, 3).pad(1))?;
    let b3 = basic_conv(b, "branch3x3dbl_3", y, Conv::new(96, 3).pad(1))?;
    let bp = pool_branch(b, x, pool_features)?;
    b.concat(&[b1, b5, b3, bp])
}

/// `InceptionB` (Mixed_6a), the grid reduction to 17x17: 3x3/2; 1x1-3x3-3x3/2; 3x3/2 max pool.
pub fn inception_b(b: &mut GraphBuilder, x: Value) -> Result<Value> {
    let b3 = basic_conv(b, "branch3x3", x, Conv::new(384, 3).stride(2))?;
    let y = basic_conv(b, "branch3x3dbl_1", x, Conv::new(64, 1))?;
    let y = basic_conv(b, "branch3x3dbl_2", y, Conv::new(96, 3).pad(1))?;
    let bd = basic_conv(b, "branch3x3dbl_3", y, Conv::new(96, 3).stride(2))?;
    let bp = b.max_pool(x, Pool::new(3, 2))?;
    b.concat(&[b3, bd, bp])
}

/// `InceptionC(in, channels_7x7)` (Mixed_6b-6e), the factorized 7x7 block:
/// 1x1; 1x1-1x7-7x1; 1x1-7x1-1x7-7x1-1x7; 3x3 average pool-1x1. Output 768 channels.
pub fn inception_c(b: &mut GraphBuilder, x: Value, c7: usize) -> Result<Value> {
    let b1 = basic_conv(b, "branch1x1", x, Conv::new(192, 1))?;
    let y = basic_conv(b, "branch7x7_1", x, Conv::new(c7, 1))?;
    let y = basic_conv(b, "branch7x7_2", y, Conv::rect(c7, 1, 7).same())?;
    let b7 = basic_conv(b, "branch7x7_3", y, Conv::rect(192, 7, 1).same())?;
    let y = basic_conv(b, "branch7x7dbl_1", x, Conv::new(c7, 1))?;
    let y = basic_conv(b, "branch7x7dbl_2", y, Conv::rect(c7, 7, 1).same())?;
    let y = basic_conv(b, "branch7x7dbl_3", y, Conv::rect(c7, 1, 7).same())?;
    let y = basic_conv(b, "branch7x7dbl_4", y, Conv::rect(c7, 7, 1).same())?;
    let bd = basic_conv(b, "branch7x7dbl_5", y, Conv::rect(192, 1, 7).same())?;
    let bp = pool_branch(b, x, 192)?;
    b.concat(&[b1, b7, bd, bp])
}

/// `InceptionD` (Mixed_7a), the grid reduction to 8x8: 1x1-3x3/2;
/// 1x1-1x7-7x1-3x3/2; 3x3/2 max pool.
pub fn inception_d(b: &mut GraphBuilder, x: Value) -> Result<Value> {
    let y = basic_conv(b, "branch3x3_1", x, Conv::new(192, 1))?;
    let b3 = basic_conv(b, "branch3x3_2", y, Conv::new(320, 3).stride(2))?;
    let y = basic_conv(b, "branch7x7x3_1", x, Conv::new(192, 1))?;
    let y = basic_conv(b, "branch7x7x3_2", y, Conv::rect(192, 1, 7).same())?;
    let y = basic_conv(b, "branch7x7x3_3", y, Conv::rect(192, 7, 1).same())?;
    let b7 = basic_conv(b, "branch7x7x3_4", y, Conv::new(192, 3).stride(2))?;
    let bp = b.max_pool(x, Pool::new(3, 2))?;
    b.concat(&[b3, b7, bp])
}

/// `InceptionE` (Mixed_7b, 7c), the expanded-filter-bank block: 1x1;
/// 1x1-(1x3 | 3x1); 1x1-3x3-(1x3 | 3x1); 3x3 average pool-1x1. Output 2048 channels.
pub fn inception_e(b: &mut GraphBuilder, x: Value) -> Result<Value> {
    let b1 = basic_conv(b, "branch1x1", x, Conv::new(320, 1))?;
    let y = basic_conv(b, "branch3x3_1", x, Conv::new(384, 1))?;
    let a = basic_conv(b, "branch3x3_2a", y, Conv::rect(384, 1, 3).same())?;
    let c = basic_conv(b, "branch3x3_2b", y, Conv::rect(384, 3, 1).same())?;
    let b3 = b.concat(&[a, c])?;
    let y = basic_conv(b, "branch3x3dbl_1", x, Conv::new(448, 1))?;
    let y = basic_conv(b, "branch3x3dbl_2", y, Conv::new(384, 3).pad(1))?;
    let a = basic_conv(b, "branch3x3dbl_3a", y, Conv::rect(384, 1, 3).same())?;
    let c = basic_conv(b, "branch3x3dbl_3b", y, Conv::rect(384, 3, 1).same())?;
    let bd = b.concat(&[a, c])?;
    let bp = pool_branch(b, x, 192)?;
    b.concat(&[b1, b3, bd, bp])
}

/// `InceptionAux` (after Mixed_6e): 5x5/3 average pool, `conv0` 1x1 128,
/// `conv1` 5x5 768, global average pool, `fc`.
pub fn aux_head(b: &mut GraphBuilder, x: Value, classes: usize) -> Result<Value> {
    let y = b.avg_pool(x, Pool::new(5, 3))?;
    let y = basic_conv(b, "conv0", y, Conv::new(128, 1))?;
    let y = basic_conv(b, "conv1", y, Conv::new(768, 5))?;
    let y = b.global_avg_pool(y)?;
    let y = b.flatten(y)?;
    b.dense("fc", y, classes, true)
}

/// The whole network. Outputs: the logits, then with `aux_logits` the
/// `AuxLogits` head (torchvision's `InceptionOutputs(logits, aux_logits)`).
pub fn inception_v3(name: &str, cfg: &Config) -> Result<Graph> {
    let mut b = GraphBuilder::new(name);
    let x = b.input("input", [cfg.batch, cfg.in_channels, cfg.height, cfg.width])?;
    let x = basic_conv(&mut b, "Conv2d_1a_3x3", x, Conv::new(32, 3).stride(2))?;
    let x = basic_conv(&mut b, "Conv2d_2a_3x3", x, Conv::new(32, 3))?;
    let x = basic_conv(&mut b, "Conv2d_2b_3x3", x, Conv::new(64, 3).pad(1))?;
    let x = b.max_pool(x, Pool::new(3, 2))?;
    let x = basic_conv(&mut b, "Conv2d_3b_1x1", x, Conv::new(80, 1))?;
    let x = basic_conv(&mut b, "Conv2d_4a_3x3", x, Conv::new(192, 3))?;
    let x = b.max_pool(x, Pool::new(3, 2))?;
    let x = inception_a(&mut b.scope("Mixed_5b"), x, 32)?;
    let x = inception_a(&mut b.scope("Mixed_5c"), x, 64)?;
    let x = inception_a(&mut b.scope("Mixed_5d"), x, 64)?;
    let x = inception_b(&mut b.scope("Mixed_6a"), x)?;
    let x = inception_c(&mut b.scope("Mixed_6b"), x, 128)?;
    let x = inception_c(&mut b.scope("Mixed_6c"), x, 160)?;
    let x = inception_c(&mut b.scope("Mixed_6d"), x, 160)?;
    let x = inception_c(&mut b.scope("Mixed_6e"), x, 192)?;
    let aux = if cfg.aux_logits {
        Some(aux_head(&mut b.scope("AuxLogits"), x, cfg.num_classes)?)
    } else {
        None
    };
    let x = inception_d(&mut b.scope("Mixed_7a"), x)?;
    let x = inception_e(&mut b.scope("Mixed_7b"), x)?;
    let x = inception_e(&mut b.scope("Mixed_7c"), x)?;
    let x = b.global_avg_pool(x)?;
    let x = b.flatten(x)?;
    let x = b.dropout(x, cfg.dropout)?;
    let y = b.dense("fc", x, cfg.num_classes, true)?;
    b.finish(std::iter::once(y).chain(aux).collect())
}

//! Pooling with PyTorch's semantics: max, average, global average.

use crate::layout::{dims4, pool_window, Window};
use kiln_ir::ops::{pool_output_size, AvgPool, GlobalAvgPool, MaxPool};
use kiln_ir::Tensor;
use rayon::prelude::*;

/// The windows of every output position along one axis.
fn windows(
    size: usize,
    kernel: usize,
    stride: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil_mode: bool,
) -> Vec<Window> {
    let out = pool_output_size(size, kernel, stride, pad_begin, pad_end, ceil_mode)
        .expect("the verifier checked a window fits");
    (0..out)
        .map(|o| pool_window(o, size, kernel, stride, pad_begin, pad_end))
        .collect()
}

/// Applies `reduce(plane, row window, column window)` to every output
/// position of every `[H, W]` plane, planes in parallel.
fn pool(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
    ceil_mode: bool,
    reduce: impl Fn(&[f32], &Window, &Window) -> f32 + Sync,
) -> Tensor {
    let [n, c, h, w] = dims4(&x.shape);
    let rows = windows(h, kernel[0], stride[0], pad[0], pad[2], ceil_mode);
    let cols = windows(w, kernel[1], stride[1], pad[1], pad[3], ceil_mode);
    let plane = rows.len() * cols.len();
    let mut out = vec![0f32; n * c * plane];
    out.par_chunks_mut(plane)
        .zip(x.data.par_chunks(h * w))
        .for_each(|(y, xp)| {
            for (r, rw) in rows.iter().enumerate() {
                for (s, cw) in cols.iter().enumerate() {
                    y[r * cols.len() + s] = reduce(xp, rw, cw);
                }
            }
        });
    Tensor {
        shape: vec![n, c, rows.len(), cols.len()],
        data: out,
    }
}

/// The largest input value in each window; padding is -inf, so it never wins
/// (every window holds at least one input position: windows starting in the
/// end padding are dropped and padding is below the kernel size). NaN wins, as
/// in PyTorch.
pub(crate) fn max_pool(op: &MaxPool, x: &Tensor) -> Tensor {
    let w = x.shape[3];
    pool(
        x,
        op.kernel,
        op.stride,
        op.pad,
        op.ceil_mode,
        |xp, rw, cw| {
            let mut m = f32::NEG_INFINITY;
            for iy in rw.lo..rw.hi {
                for &v in &xp[iy * w + cw.lo..iy * w + cw.hi] {
                    if v > m || v.is_nan() {
                        m = v;
                    }
                }
            }
            m
        },
    )
}

/// The window's sum (f64) divided by, with `count_include_pad`, the window's
/// size inside the padded input (not counting a ceil-mode overhang beyond the
/// end padding), and without it, the number of input positions it covers.
pub(crate) fn avg_pool(op: &AvgPool, x: &Tensor) -> Tensor {
    let w = x.shape[3];
    pool(
        x,
        op.kernel,
        op.stride,
        op.pad,
        op.ceil_mode,
        |xp, rw, cw| {
            let mut sum = 0f64;
            for iy in rw.lo..rw.hi {
                for &v in &xp[iy * w + cw.lo..iy * w + cw.hi] {
                    sum += v as f64;
                }
            }
            let count = if op.count_include_pad {
                rw.padded_len * cw.padded_len
            } else {
                (rw.hi - rw.lo) * (cw.hi - cw.lo)
            };
            (sum / count as f64) as f32
        },
    )
}

/// The mean of each `[H, W]` plane, summed in f64.
pub(crate) fn global_avg_pool(_: &GlobalAvgPool, x: &Tensor) -> Tensor {
    let [n, c, h, w] = dims4(&x.shape);
    let data = x
        .data
        .chunks(h * w)
        .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64) as f32)
        .collect();
    Tensor {
        shape: vec![n, c, 1, 1],
        data,
    }
}

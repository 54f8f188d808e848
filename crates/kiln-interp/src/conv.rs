//! 2-D convolution (cross-correlation, as PyTorch), with groups, dilation,
//! per-side padding, bias and the fused epilogue.

use crate::elementwise::{add_scalar, relu_scalar};
use crate::layout::{dims4, valid_outputs};
use kiln_ir::ops::Conv2d;
use kiln_ir::Tensor;
use rayon::prelude::*;

/// `y[b, o, oy, ox] = sum over (ci, ky, kx) of
/// x[b, g * C/groups + ci, oy * sh + ky * dh - pad_top, ox * sw + kx * dw - pad_left] * w[o, ci, ky, kx]`
/// where `g = o / (O/groups)`; taps that land in the padding contribute nothing.
///
/// The sum runs over `ci`, then `ky`, then `kx`, ascending, in f64; the bias is
/// added in f64 and the result rounded to f32 once. The epilogue then works in
/// f32 exactly as the unfused ops would: `+ residual` (as `add`), then `relu`,
/// so a fused conv is bit-identical to conv → add → relu.
///
/// Output planes `(b, o)` are computed in parallel; each plane's sums are
/// independent, so the result does not depend on the thread count.
pub(crate) fn conv2d(op: &Conv2d, args: &[&Tensor]) -> Tensor {
    let (x, w) = (args[0], args[1]);
    let bias = op.bias_slot().map(|s| &args[s].data);
    let residual = op.residual_slot().map(|s| &args[s].data);
    let [n, c, h, wd] = dims4(&x.shape);
    let [o, cg, kh, kw] = dims4(&w.shape);
    let og = o / op.groups;
    let (oh, ow) = (out_size(op, 0, h), out_size(op, 1, wd));
    let [sh, sw] = op.stride;
    let [dh, dw] = op.dilation;
    let (pt, pl) = (op.pad[0] as i64, op.pad[1] as i64);
    let plane = oh * ow;

    let mut out = vec![0f32; n * o * plane];
    out.par_chunks_mut(plane).enumerate().for_each(|(p, y)| {
        let (b, oc) = (p / o, p % o);
        let first_channel = (oc / og) * cg;
        // The loops are interchanged (taps outside, output positions inside) so
        // that the inner loop runs along a row; every output still receives its
        // terms in (ci, ky, kx) order, so the sums are those of the naive loop.
        let mut acc = vec![0f64; plane];
        for ci in 0..cg {
            let xc = &x.data[(b * c + first_channel + ci) * h * wd..][..h * wd];
            for ky in 0..kh {
                let row_offset = (ky * dh) as i64 - pt;
                let rows = valid_outputs(oh, h, sh, row_offset);
                for kx in 0..kw {
                    let col_offset = (kx * dw) as i64 - pl;
                    let cols = valid_outputs(ow, wd, sw, col_offset);
                    if cols.is_empty() {
                        continue;
                    }
                    let wv = w.data[((oc * cg + ci) * kh + ky) * kw + kx] as f64;
                    let first_col = (cols.start as i64 * sw as i64 + col_offset) as usize;
                    for oy in rows.clone() {
                        let iy = (oy as i64 * sh as i64 + row_offset) as usize;
                        let xs = &xc[iy * wd + first_col..(iy + 1) * wd];
                        let accs = &mut acc[oy * ow + cols.start..oy * ow + cols.end];
                        // Stride 1 gets a contiguous loop the compiler vectorises.
                        if sw == 1 {
                            multiply_add(accs, xs.iter(), wv);
                        } else {
                            multiply_add(accs, xs.iter().step_by(sw), wv);
                        }
                    }
                }
            }
        }
        let b_o = bias.map_or(0.0, |bias| bias[oc] as f64);
        for (i, (yv, &a)) in y.iter_mut().zip(&acc).enumerate() {
            let mut v = (a + b_o) as f32;
            if let Some(r) = residual {
                v = add_scalar(v, r[p * plane + i]);
            }
            if op.epilogue.relu {
                v = relu_scalar(v);
            }
            *yv = v;
        }
    });
    Tensor {
        shape: vec![n, o, oh, ow],
        data: out,
    }
}

/// `acc[i] += x[i] * w` in f64, over as many terms as `acc` holds.
#[inline(always)]
fn multiply_add<'a>(acc: &mut [f64], xs: impl Iterator<Item = &'a f32>, w: f64) {
    for (a, &x) in acc.iter_mut().zip(xs) {
        *a += x as f64 * w;
    }
}

fn out_size(op: &Conv2d, axis: usize, size: usize) -> usize {
    op.output_size(axis, size)
        .expect("the verifier checked the kernel fits the padded input")
}

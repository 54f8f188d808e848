//! Data movement: concat, flatten, reshape, pad, slice. Exact copies, no arithmetic.

use crate::layout::split_axis;
use kiln_ir::ops::{Concat, Flatten, Pad, Reshape, Slice};
use kiln_ir::Tensor;

/// The operands one after another along `axis`.
pub(crate) fn concat(op: &Concat, args: &[&Tensor]) -> Tensor {
    let mut shape = args[0].shape.clone();
    shape[op.axis] = args.iter().map(|t| t.shape[op.axis]).sum();
    let (outer, _, _) = split_axis(&shape, op.axis);
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for t in args {
            let (_, len, inner) = split_axis(&t.shape, op.axis);
            data.extend_from_slice(&t.data[o * len * inner..][..len * inner]);
        }
    }
    Tensor { shape, data }
}

/// The same data as `[outer, inner]` around `axis`.
pub(crate) fn flatten(op: &Flatten, x: &Tensor) -> Tensor {
    let outer = x.shape[..op.axis].iter().product();
    let inner = x.shape[op.axis..].iter().product();
    Tensor {
        shape: vec![outer, inner],
        data: x.data.clone(),
    }
}

/// The same row-major data under the new shape.
pub(crate) fn reshape(op: &Reshape, x: &Tensor) -> Tensor {
    Tensor {
        shape: op.shape.clone(),
        data: x.data.clone(),
    }
}

/// Constant padding on every axis: `pads[a]` before axis `a`, `pads[rank + a]` after.
pub(crate) fn pad(op: &Pad, x: &Tensor) -> Tensor {
    let rank = x.shape.len();
    let shape: Vec<usize> = (0..rank)
        .map(|a| op.pads[a] + x.shape[a] + op.pads[rank + a])
        .collect();
    let mut data = vec![op.value; shape.iter().product()];
    // Walk the input in row-major order, carrying its multi-index.
    let mut index = vec![0usize; rank];
    for &v in &x.data {
        let offset = (0..rank).fold(0, |off, a| off * shape[a] + op.pads[a] + index[a]);
        data[offset] = v;
        for a in (0..rank).rev() {
            index[a] += 1;
            if index[a] < x.shape[a] {
                break;
            }
            index[a] = 0;
        }
    }
    Tensor { shape, data }
}

/// Positions `start, start + step, ...` below `end` along `axis`.
pub(crate) fn slice(op: &Slice, x: &Tensor) -> Tensor {
    let (outer, len, inner) = split_axis(&x.shape, op.axis);
    let mut shape = x.shape.clone();
    shape[op.axis] = op.output_len();
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for i in (op.start..op.end).step_by(op.step) {
            data.extend_from_slice(&x.data[(o * len + i) * inner..][..inner]);
        }
    }
    Tensor { shape, data }
}

//! Backend-only rewrites of the graph before planning: forms the kernels
//! handle faster, with the same results.

use crate::error::JitError;
use kiln_ir::ops::Pad;
use kiln_ir::{Graph, Op};

/// A stride-1 conv with a kernel larger than 1x1 and zero padding becomes an
/// explicit `pad` and an unpadded conv: the unpadded conv gathers each row of
/// its im2col matrix with one contiguous copy (`Gather::Shifted`), where the
/// padded one checks every element against the border. The pad is one pass
/// over the input, the gather is `kh * kw` passes.
pub fn explicit_conv_padding(g: &Graph) -> Result<Graph, JitError> {
    let mut out = g.clone();
    let convs: Vec<_> = g
        .node_ids()
        .filter(|&id| match g.op(id) {
            Op::Conv2d(c) => {
                c.stride == [1, 1] && c.pad != [0; 4] && c.kernel[0] * c.kernel[1] > 1
            }
            _ => false,
        })
        .collect();
    for id in convs {
        let Op::Conv2d(mut conv) = out.op(id).clone() else {
            continue;
        };
        let x = out.operands(id)[0];
        let [top, left, bottom, right] = conv.pad;
        let padded = out
            .add(
                Pad {
                    pads: vec![0, 0, top, left, 0, 0, bottom, right],
                    value: 0.0,
                },
                &[x],
            )
            .map_err(|e| JitError::InvalidGraph(format!("{}: {e}", g.describe(id))))?;
        conv.pad = [0; 4];
        out.set_operand(id, 0, padded);
        if let Some(node) = out.node_mut(id) {
            node.op = Op::Conv2d(conv);
        }
    }
    kiln_ir::verify(&out).map_err(|e| {
        JitError::InvalidGraph(format!("after making conv padding explicit: {e}"))
    })?;
    Ok(out)
}

//! 2-D convolution (cross-correlation, as PyTorch and ONNX), with an optional
//! fused epilogue.

use super::{at_least, rank, same_shape, vector, window_attrs};
use crate::op::{Arity, OpDef, OperandRole};
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// Work done on the output tile after the convolution sum and bias, in this
/// order: add the `residual` operand (the last operand), then ReLU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Epilogue {
    pub residual: bool,
    pub relu: bool,
}

impl Epilogue {
    pub fn is_empty(&self) -> bool {
        !self.residual && !self.relu
    }
}

/// Operands: `x: [N, C, H, W]`, `weight: [O, C/groups, KH, KW]`, then `bias: [O]`
/// if `bias`, then `residual: [N, O, OH, OW]` if `epilogue.residual`.
/// `pad` is `[top, left, bottom, right]` (ONNX order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub bias: bool,
    #[serde(default)]
    pub epilogue: Epilogue,
}

impl Conv2d {
    /// A plain conv: square kernel, equal padding on all sides, no dilation,
    /// one group, no bias, no epilogue.
    pub fn new(kernel: usize, stride: usize, pad: usize) -> Conv2d {
        Conv2d {
            kernel: [kernel; 2],
            stride: [stride; 2],
            pad: [pad; 4],
            dilation: [1, 1],
            groups: 1,
            bias: false,
            epilogue: Epilogue::default(),
        }
    }

    /// Output spatial size along `axis` (0 = H, 1 = W) for input size `size`;
    /// `None` when the padded input is smaller than the dilated kernel.
    pub fn output_size(&self, axis: usize, size: usize) -> Option<usize> {
        let padded = size + self.pad[axis] + self.pad[axis + 2];
        let extent = self.dilation[axis] * (self.kernel[axis] - 1) + 1;
        (padded >= extent).then(|| (padded - extent) / self.stride[axis] + 1)
    }

    pub fn bias_slot(&self) -> Option<usize> {
        self.bias.then_some(2)
    }

    pub fn residual_slot(&self) -> Option<usize> {
        self.epilogue.residual.then_some(2 + self.bias as usize)
    }

    fn operand_count(&self) -> usize {
        2 + self.bias as usize + self.epilogue.residual as usize
    }
}

impl OpDef for Conv2d {
    fn arity(&self) -> Arity {
        Arity::Exactly(self.operand_count())
    }

    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        window_attrs(self.kernel, self.stride, self.dilation, self.pad)?;
        at_least("groups", self.groups, 1)?;
        let (x, w) = (ops[0], ops[1]);
        rank("input", x, 4)?;
        rank("weight", w, 4)?;
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let o = w.shape[0];
        if c % self.groups != 0 {
            return Err(format!(
                "groups = {} does not divide the {c} input channels",
                self.groups
            ));
        }
        if o % self.groups != 0 {
            return Err(format!(
                "groups = {} does not divide the {o} output channels",
                self.groups
            ));
        }
        let expected = [o, c / self.groups, self.kernel[0], self.kernel[1]];
        if w.shape != expected {
            return Err(format!(
                "weight must be f32[{},{},{},{}] for {c} input channels, found {w}",
                expected[0], expected[1], expected[2], expected[3]
            ));
        }
        let oh = self
            .output_size(0, h)
            .ok_or_else(|| format!("input height {h} (padded) is smaller than the kernel"))?;
        let ow = self
            .output_size(1, wd)
            .ok_or_else(|| format!("input width {wd} (padded) is smaller than the kernel"))?;
        let out = TensorType::f32([n, o, oh, ow]);
        if let Some(slot) = self.bias_slot() {
            vector("bias", ops[slot], o)?;
        }
        if let Some(slot) = self.residual_slot() {
            same_shape("residual", &out, ops[slot])?;
        }
        Ok(vec![out])
    }

    fn macs(&self, ops: &[&TensorType], outs: &[TensorType]) -> u64 {
        let w = &ops[1].shape;
        outs[0].elements() as u64 * (w[1] * w[2] * w[3]) as u64
    }

    fn operand_role(&self, slot: usize) -> OperandRole {
        match slot {
            1 => OperandRole::Weight,
            s if Some(s) == self.bias_slot() => OperandRole::Bias,
            _ => OperandRole::Data,
        }
    }
}

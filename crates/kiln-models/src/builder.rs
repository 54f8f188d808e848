//! [`GraphBuilder`]: layers with PyTorch-style parameter names over
//! [`kiln_ir::Graph`].
//!
//! A builder holds a stack of scopes; a layer's parameters are named by the
//! scopes joined with dots, then the layer name, then the tensor
//! (`layer3` / `1` / `conv2` / `weight` gives `layer3.1.conv2.weight`), so a
//! model written the way torchvision nests its modules gets torchvision's
//! `state_dict` names. Every op goes through [`Graph::add`], so a layer that
//! does not type-check is refused on the spot with the layer's name.

use crate::error::ModelError;
use kiln_ir::ops::Add as AddOp;
use kiln_ir::ops::Param;
use kiln_ir::ops::{
    AvgPool, BatchNorm, Concat, Conv2d, Dense, Dropout, Epilogue, Flatten, GlobalAvgPool, Lrn,
    MaxPool, Pad, Relu, Slice, Softmax,
};
use kiln_ir::{Graph, Op, TensorType, Value};
use std::collections::HashSet;
use std::fmt::Display;
use std::ops::{Deref, DerefMut};

pub type Result<T> = std::result::Result<T, ModelError>;

/// A convolution layer's shape: output channels, kernel, stride, padding
/// (`[top, left, bottom, right]`), dilation, groups, and whether it has a bias.
/// Made with [`Conv::new`] and refined with the chained setters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    pub out: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub bias: bool,
}

impl Conv {
    /// A square `kernel` with `out` output channels: stride 1, no padding, no
    /// bias (the convs before a BatchNorm have none).
    pub fn new(out: usize, kernel: usize) -> Conv {
        Conv::rect(out, kernel, kernel)
    }

    /// A `kh x kw` kernel (Inception-v3's 1x7 and 7x1).
    pub fn rect(out: usize, kh: usize, kw: usize) -> Conv {
        Conv {
            out,
            kernel: [kh, kw],
            stride: [1, 1],
            pad: [0; 4],
            dilation: [1, 1],
            groups: 1,
            bias: false,
        }
    }

    pub fn stride(mut self, s: usize) -> Conv {
        self.stride = [s, s];
        self
    }

    /// The same padding on all four sides.
    pub fn pad(mut self, p: usize) -> Conv {
        self.pad = [p; 4];
        self
    }

    /// Padding `ph` above and below, `pw` left and right (PyTorch's `padding=(ph, pw)`).
    pub fn pad_hw(mut self, ph: usize, pw: usize) -> Conv {
        self.pad = [ph, pw, ph, pw];
        self
    }

    /// Padding `(k - 1) / 2` on each axis: the output keeps the input's size at stride 1.
    pub fn same(self) -> Conv {
        let [kh, kw] = self.kernel;
        self.pad_hw((kh - 1) / 2, (kw - 1) / 2)
    }

    pub fn bias(mut self, bias: bool) -> Conv {
        self.bias = bias;
        self
    }

    pub fn groups(mut self, g: usize) -> Conv {
        self.groups = g;
        self
    }
}

/// A pooling window: kernel, stride, padding (`[top, left, bottom, right]`),
/// ceil mode and, for average pooling, whether padded positions count in the
/// divisor (PyTorch's default: they do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

impl Pool {
    /// A square window, no padding, floor mode, padding counted (PyTorch's defaults).
    pub fn new(kernel: usize, stride: usize) -> Pool {
        Pool {
            kernel: [kernel; 2],
            stride: [stride; 2],
            pad: [0; 4],
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    pub fn pad(mut self, p: usize) -> Pool {
        self.pad = [p; 4];
        self
    }

    /// PyTorch's `ceil_mode=True` (and Caffe's only mode).
    pub fn ceil(mut self) -> Pool {
        self.ceil_mode = true;
        self
    }

    pub fn exclude_pad(mut self) -> Pool {
        self.count_include_pad = false;
        self
    }
}

/// Builds a [`Graph`] layer by layer under named scopes. See the module docs.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: Graph,
    scopes: Vec<String>,
    params: HashSet<String>,
    /// The last named layer added, so an unnamed op's errors can say where it is.
    last_layer: Option<String>,
}

/// A scope opened by [`GraphBuilder::scope`]: it derefs to the builder and
/// closes the scope when dropped.
pub struct Scope<'a> {
    builder: &'a mut GraphBuilder,
}

impl Deref for Scope<'_> {
    type Target = GraphBuilder;
    fn deref(&self) -> &GraphBuilder {
        self.builder
    }
}

impl DerefMut for Scope<'_> {
    fn deref_mut(&mut self) -> &mut GraphBuilder {
        self.builder
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        self.builder.scopes.pop();
    }
}

impl GraphBuilder {
    /// An empty graph named `name` (the zoo uses the model's zoo name; the
    /// weight initialiser looks it up to pick the model's init rules).
    pub fn new(name: impl Into<String>) -> GraphBuilder {
        GraphBuilder {
            graph: Graph::new(name),
            scopes: Vec::new(),
            params: HashSet::new(),
            last_layer: None,
        }
    }

    /// Opens a nested scope; parameters created through the returned guard
    /// are prefixed with `name` and a dot. An empty name adds no prefix.
    pub fn scope(&mut self, name: impl Display) -> Scope<'_> {
        self.scopes.push(name.to_string());
        Scope { builder: self }
    }

    /// The current scopes and `leaf` joined with dots, empty parts skipped.
    pub fn path(&self, leaf: &str) -> String {
        let parts = self
            .scopes
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(leaf));
        parts
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Where an unnamed op sits, for errors: `layer3.1/add (after layer3.1.bn2)`.
    fn site(&self, op: &str) -> String {
        let scope = self.path("");
        let site = if scope.is_empty() {
            op.to_string()
        } else {
            format!("{scope}/{op}")
        };
        match &self.last_layer {
            Some(last) => format!("{site} (after {last})"),
            None => site,
        }
    }

    /// The graph built so far.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// A graph input named `name` (not scoped) of type `f32[shape]`.
    pub fn input(&mut self, name: &str, shape: impl Into<Vec<usize>>) -> Result<Value> {
        let ty = TensorType::f32(shape);
        ty.validate().map_err(|message| ModelError::Build {
            at: format!("input {name}"),
            source: kiln_ir::IrError::Build {
                op: "input",
                message,
            },
        })?;
        Ok(self.graph.add_input(name, ty))
    }

    /// A parameter named `name` under the current scope. Each name may be
    /// defined once: a second definition is [`ModelError::DuplicateParam`].
    pub fn param(&mut self, name: &str, shape: impl Into<Vec<usize>>) -> Result<Value> {
        let full = self.path(name);
        let ty = TensorType::f32(shape);
        ty.validate().map_err(|message| ModelError::Build {
            at: full.clone(),
            source: kiln_ir::IrError::Build {
                op: "param",
                message,
            },
        })?;
        if !self.params.insert(full.clone()) {
            return Err(ModelError::DuplicateParam { name: full });
        }
        // The builder checks uniqueness itself, so it can skip Graph::add_param's scan.
        Ok(self
            .graph
            .add_node_unchecked(Op::Param(Param { name: full }), &[], vec![ty])
            .into())
    }

    /// The type of `v`.
    pub fn ty(&self, v: Value) -> Result<&TensorType> {
        self.graph
            .value_type(v)
            .ok_or_else(|| ModelError::NoSuchValue {
                at: self.path(""),
                node: v.node.index(),
            })
    }

    /// The shape of `v`.
    pub fn shape(&self, v: Value) -> Result<Vec<usize>> {
        Ok(self.ty(v)?.shape.clone())
    }

    /// Dimension 1 of `v` (channels for NCHW, features for `[N, K]`).
    pub fn channels(&self, v: Value) -> Result<usize> {
        let ty = self.ty(v)?;
        ty.shape.get(1).copied().ok_or_else(|| ModelError::Build {
            at: self.path(""),
            source: kiln_ir::IrError::Build {
                op: "layer",
                message: format!("expected rank >= 2, found {ty}"),
            },
        })
    }

    /// Adds any op; `at` names it in errors.
    pub fn op(&mut self, at: String, op: impl Into<Op>, operands: &[Value]) -> Result<Value> {
        for v in operands {
            if self.graph.value_type(*v).is_none() {
                return Err(ModelError::NoSuchValue {
                    at,
                    node: v.node.index(),
                });
            }
        }
        self.graph
            .add(op, operands)
            .map_err(|source| ModelError::Build { at, source })
    }

    /// A layer named `name` reading `x` and the parameters `<name>.<tensor>`
    /// (created here, in operand order). If the op is refused, the parameters
    /// are removed again, so a failed layer leaves the graph as it was.
    fn layer(
        &mut self,
        name: &str,
        op: impl Into<Op>,
        x: Value,
        params: Vec<(&str, Vec<usize>)>,
    ) -> Result<Value> {
        let at = self.path(name);
        let mut operands = vec![x];
        let mut result = Ok(());
        let mut scope = self.scope(name);
        for (tensor, shape) in params {
            match scope.param(tensor, shape) {
                Ok(v) => operands.push(v),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(scope);
        let result = result.and_then(|()| self.op(at.clone(), op, &operands));
        if result.is_ok() {
            self.last_layer = Some(at);
        } else {
            for v in &operands[1..] {
                if let Some(node) = self.graph.remove_node(v.node) {
                    if let Some(name) = node.op.param_name() {
                        self.params.remove(name);
                    }
                }
            }
        }
        result
    }

    /// A convolution with parameters `<name>.weight` `[out, in/groups, kh, kw]`
    /// and, with a bias, `<name>.bias` `[out]`.
    pub fn conv(&mut self, name: &str, x: Value, c: Conv) -> Result<Value> {
        let at = self.path(name);
        let cin = self.channels(x)?;
        if c.groups == 0 || cin % c.groups != 0 {
            return Err(ModelError::Build {
                at,
                source: kiln_ir::IrError::Build {
                    op: "conv2d",
                    message: format!(
                        "groups = {} does not divide the {cin} input channels",
                        c.groups
                    ),
                },
            });
        }
        let weight = (
            "weight",
            vec![c.out, cin / c.groups, c.kernel[0], c.kernel[1]],
        );
        let bias = ("bias", vec![c.out]);
        let params = if c.bias {
            vec![weight, bias]
        } else {
            vec![weight]
        };
        let op = Conv2d {
            kernel: c.kernel,
            stride: c.stride,
            pad: c.pad,
            dilation: c.dilation,
            groups: c.groups,
            bias: c.bias,
            epilogue: Epilogue::default(),
        };
        self.layer(name, op, x, params)
    }

    /// Inference BatchNorm over dimension 1 with parameters `<name>.weight`,
    /// `.bias`, `.running_mean`, `.running_var` (PyTorch's momentum, 0.1).
    pub fn bn(&mut self, name: &str, x: Value, eps: f32) -> Result<Value> {
        let c = self.channels(x)?;
        let params = ["weight", "bias", "running_mean", "running_var"].map(|t| (t, vec![c]));
        self.layer(name, BatchNorm::inference(eps), x, params.to_vec())
    }

    pub fn relu(&mut self, x: Value) -> Result<Value> {
        let at = self.site("relu");
        self.op(at, Relu {}, &[x])
    }

    pub fn max_pool(&mut self, x: Value, p: Pool) -> Result<Value> {
        let at = self.site("max_pool");
        self.op(
            at,
            MaxPool {
                kernel: p.kernel,
                stride: p.stride,
                pad: p.pad,
                ceil_mode: p.ceil_mode,
            },
            &[x],
        )
    }

    pub fn avg_pool(&mut self, x: Value, p: Pool) -> Result<Value> {
        let at = self.site("avg_pool");
        let op = AvgPool {
            kernel: p.kernel,
            stride: p.stride,
            pad: p.pad,
            ceil_mode: p.ceil_mode,
            count_include_pad: p.count_include_pad,
        };
        self.op(at, op, &[x])
    }

    /// Mean over H and W: `[N, C, H, W] -> [N, C, 1, 1]`.
    pub fn global_avg_pool(&mut self, x: Value) -> Result<Value> {
        let at = self.site("global_avg_pool");
        self.op(at, GlobalAvgPool {}, &[x])
    }

    /// PyTorch's `adaptive_avg_pool2d(x, (oh, ow))`: output cell `i` averages
    /// input rows `floor(i*H/oh) .. ceil((i+1)*H/oh)` (and likewise columns).
    /// Where those windows are evenly spaced and of one size, this is one
    /// avg pool; otherwise it is built exactly from slices, pools and
    /// concats, one axis at a time (a rectangle's mean is the mean of its
    /// rows' means), so PyTorch's aux heads are expressible at any input size.
    pub fn adaptive_avg_pool(&mut self, x: Value, out: [usize; 2]) -> Result<Value> {
        let shape = self.shape(x)?;
        if shape.len() != 4 || out.contains(&0) {
            return Err(ModelError::Build {
                at: self.site("adaptive_avg_pool"),
                source: kiln_ir::IrError::Build {
                    op: "adaptive_avg_pool",
                    message: format!(
                        "cannot pool {} to {}x{}: needs rank 4 and a nonzero output",
                        TensorType::f32(shape.clone()),
                        out[0],
                        out[1]
                    ),
                },
            });
        }
        if out == [1, 1] {
            return self.global_avg_pool(x);
        }
        let mut y = x;
        for axis in 0..2 {
            y = self.adaptive_axis(y, 2 + axis, shape[2 + axis], out[axis])?;
        }
        Ok(y)
    }

    fn adaptive_axis(&mut self, x: Value, axis: usize, len: usize, out: usize) -> Result<Value> {
        let windows: Vec<(usize, usize)> = (0..out)
            .map(|i| (i * len / out, ((i + 1) * len).div_ceil(out)))
            .collect();
        let size = windows[0].1 - windows[0].0;
        let stride = if out > 1 {
            windows[1].0 - windows[0].0
        } else {
            1
        };
        let uniform = windows
            .iter()
            .enumerate()
            .all(|(i, &(s, e))| e - s == size && s == i * stride);
        let mut kernel = [1, 1];
        let mut strides = [1, 1];
        if uniform {
            kernel[axis - 2] = size;
            strides[axis - 2] = stride.max(1);
            let p = Pool {
                kernel,
                stride: strides,
                pad: [0; 4],
                ceil_mode: false,
                count_include_pad: true,
            };
            return self.avg_pool(x, p);
        }
        let mut parts = Vec::with_capacity(out);
        for (s, e) in windows {
            let rows = self.slice(x, axis, s, e, 1)?;
            kernel[axis - 2] = e - s;
            let p = Pool {
                kernel,
                stride: [1, 1],
                pad: [0; 4],
                ceil_mode: false,
                count_include_pad: true,
            };
            parts.push(self.avg_pool(rows, p)?);
        }
        self.concat_axis(&parts, axis)
    }

    /// Cross-channel local response normalisation (Caffe's and PyTorch's formula).
    pub fn lrn(&mut self, x: Value, size: usize, alpha: f32, beta: f32, k: f32) -> Result<Value> {
        let at = self.site("lrn");
        self.op(
            at,
            Lrn {
                size,
                alpha,
                beta,
                k,
            },
            &[x],
        )
    }

    /// Concatenation along the channels (dimension 1).
    pub fn concat(&mut self, xs: &[Value]) -> Result<Value> {
        self.concat_axis(xs, 1)
    }

    pub fn concat_axis(&mut self, xs: &[Value], axis: usize) -> Result<Value> {
        let at = self.site("concat");
        self.op(at, Concat { axis }, xs)
    }

    pub fn add(&mut self, a: Value, b: Value) -> Result<Value> {
        let at = self.site("add");
        self.op(at, AddOp {}, &[a, b])
    }

    /// `nn.Linear(in, out, bias)`: parameters `<name>.weight` `[out, in]` and
    /// `<name>.bias` `[out]`.
    pub fn dense(&mut self, name: &str, x: Value, out: usize, bias: bool) -> Result<Value> {
        let k = self.channels(x)?;
        let weight = ("weight", vec![out, k]);
        let params = if bias {
            vec![weight, ("bias", vec![out])]
        } else {
            vec![weight]
        };
        self.layer(name, Dense { bias }, x, params)
    }

    /// `torch.flatten(x, 1)`.
    pub fn flatten(&mut self, x: Value) -> Result<Value> {
        let at = self.site("flatten");
        self.op(at, Flatten { axis: 1 }, &[x])
    }

    /// Dropout with drop probability `p`. With `p == 0` no node is added and
    /// `x` is returned, so an unused dropout costs nothing.
    pub fn dropout(&mut self, x: Value, p: f32) -> Result<Value> {
        if p == 0.0 {
            return Ok(x);
        }
        let at = self.site("dropout");
        self.op(at, Dropout { p }, &[x])
    }

    /// Softmax over dimension 1.
    pub fn softmax(&mut self, x: Value) -> Result<Value> {
        let at = self.site("softmax");
        self.op(at, Softmax { axis: 1 }, &[x])
    }

    /// Constant padding, ONNX order: begin of every axis, then end of every axis.
    pub fn pad(&mut self, x: Value, pads: Vec<usize>, value: f32) -> Result<Value> {
        let at = self.site("pad");
        self.op(at, Pad { pads, value }, &[x])
    }

    /// Elements `start, start + step, ...` below `end` along `axis`.
    pub fn slice(
        &mut self,
        x: Value,
        axis: usize,
        start: usize,
        end: usize,
        step: usize,
    ) -> Result<Value> {
        let at = self.site("slice");
        self.op(
            at,
            Slice {
                axis,
                start,
                end,
                step,
            },
            &[x],
        )
    }

    /// Sets the graph outputs and verifies the graph.
    pub fn finish(mut self, outputs: Vec<Value>) -> Result<Graph> {
        self.graph.set_outputs(outputs);
        kiln_ir::verify(&self.graph).map_err(|source| ModelError::Verify {
            model: self.graph.name.clone(),
            source,
        })?;
        Ok(self.graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_scopes_name_parameters_with_dots() {
        let mut b = GraphBuilder::new("t");
        let x = b.input("x", [1, 3, 8, 8]).unwrap();
        let mut l3 = b.scope("layer3");
        let mut blk = l3.scope(1);
        blk.conv("conv2", x, Conv::new(4, 3).pad(1).bias(true))
            .unwrap();
        drop(blk);
        l3.bn("bn", x, 1e-5).unwrap();
        drop(l3);
        b.dense("fc", x, 2, false).unwrap_err(); // rank 4 into a dense layer: refused, no trace left
        let names: Vec<_> = b
            .graph()
            .params()
            .into_iter()
            .map(|(_, n, t)| (n.to_string(), t.shape.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("layer3.1.conv2.weight".to_string(), vec![4, 3, 3, 3]),
                ("layer3.1.conv2.bias".to_string(), vec![4]),
                ("layer3.bn.weight".to_string(), vec![3]),
                ("layer3.bn.bias".to_string(), vec![3]),
                ("layer3.bn.running_mean".to_string(), vec![3]),
                ("layer3.bn.running_var".to_string(), vec![3]),
            ]
        );
    }

    #[test]
    fn errors_name_the_layer() {
        let mut b = GraphBuilder::new("t");
        let x = b.input("x", [1, 3, 4, 4]).unwrap();
        let mut s = b.scope("stem");
        let err = s.conv("conv1", x, Conv::new(8, 7)).unwrap_err();
        assert!(
            matches!(&err, ModelError::Build { at, .. } if at == "stem.conv1"),
            "{err}"
        );
        assert!(err.to_string().contains("smaller than the kernel"), "{err}");
        assert!(
            s.graph().params().is_empty(),
            "a refused layer leaves no parameters behind"
        );
        let err = s.max_pool(x, Pool::new(5, 1)).unwrap_err();
        assert!(
            matches!(&err, ModelError::Build { at, .. } if at == "stem/max_pool"),
            "{err}"
        );
        let y = s.conv("c1", x, Conv::new(8, 1)).unwrap();
        let err = s.add(x, y).unwrap_err();
        assert!(
            matches!(&err, ModelError::Build { at, .. } if at == "stem/add (after stem.c1)"),
            "{err}"
        );
        s.conv("c", x, Conv::new(8, 1)).unwrap();
        let err = s.conv("c", y, Conv::new(8, 1)).unwrap_err();
        assert!(
            matches!(&err, ModelError::DuplicateParam { name } if name == "stem.c.weight"),
            "{err}"
        );
        let err = s.conv("g", x, Conv::new(8, 1).groups(2)).unwrap_err();
        assert!(err.to_string().contains("groups = 2"), "{err}");
    }

    #[test]
    fn adaptive_pool_windows_match_pytorch() {
        // 14 -> 4: PyTorch's windows are [0,4) [3,7) [7,11) [10,14): not evenly spaced.
        let mut b = GraphBuilder::new("t");
        let x = b.input("x", [1, 2, 14, 14]).unwrap();
        let y = b.adaptive_avg_pool(x, [4, 4]).unwrap();
        assert_eq!(b.shape(y).unwrap(), vec![1, 2, 4, 4]);
        let slices = b
            .graph()
            .node_ids()
            .filter(|&id| b.graph().op(id).kind() == "slice")
            .count();
        assert_eq!(slices, 8);
        // 16 -> 4 is one 4x4/4 pool per axis.
        let x = b.input("x2", [1, 2, 16, 16]).unwrap();
        let y = b.adaptive_avg_pool(x, [4, 4]).unwrap();
        assert_eq!(b.shape(y).unwrap(), vec![1, 2, 4, 4]);
        let slices_after = b
            .graph()
            .node_ids()
            .filter(|&id| b.graph().op(id).kind() == "slice")
            .count();
        assert_eq!(slices_after, 8);
        // Larger than the input is allowed, as in PyTorch (windows then overlap).
        let y = b.adaptive_avg_pool(x, [17, 1]).unwrap();
        assert_eq!(b.shape(y).unwrap(), vec![1, 2, 17, 1]);
        assert!(b.adaptive_avg_pool(x, [0, 1]).is_err());
    }
}

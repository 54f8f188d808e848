//! Dispatch from an op to its kernel. The match is exhaustive on purpose: a
//! new op in `kiln_ir::Op` (a backward op, an optimizer update) does not
//! compile here until it has a kernel, one arm calling a function in the
//! file of its family.

use crate::error::InterpError;
use crate::{conv, dense, elementwise, loss, norm, pool, shape};
use kiln_ir::{Op, Tensor, TensorType};

/// Why a kernel refused its operands (the caller adds where).
pub(crate) enum KernelError {
    /// Input and param nodes take their value from the caller, not a kernel.
    Source,
    BadLabel(loss::BadLabel),
}

/// Evaluates one op on operands that its inference accepted (the verifier or
/// `eval_op` has checked them), returning one tensor per output.
pub(crate) fn eval(op: &Op, args: &[&Tensor]) -> Result<Vec<Tensor>, KernelError> {
    let out = match op {
        Op::Input(_) | Op::Param(_) => return Err(KernelError::Source),
        Op::Conv2d(o) => conv::conv2d(o, args),
        Op::BatchNorm(o) => norm::batch_norm(o, args),
        Op::Relu(_) => elementwise::relu(args[0]),
        Op::MaxPool(o) => pool::max_pool(o, args[0]),
        Op::AvgPool(o) => pool::avg_pool(o, args[0]),
        Op::GlobalAvgPool(o) => pool::global_avg_pool(o, args[0]),
        Op::Lrn(o) => norm::lrn(o, args[0]),
        Op::Concat(o) => shape::concat(o, args),
        Op::Add(_) => elementwise::add(args[0], args[1]),
        Op::Dense(o) => dense::dense(o, args),
        Op::Flatten(o) => shape::flatten(o, args[0]),
        Op::Reshape(o) => shape::reshape(o, args[0]),
        Op::Pad(o) => shape::pad(o, args[0]),
        Op::Slice(o) => shape::slice(o, args[0]),
        Op::Dropout(_) => elementwise::dropout(args[0]),
        Op::Softmax(o) => elementwise::softmax(o, args[0]),
        Op::SoftmaxCrossEntropy(o) => {
            loss::softmax_cross_entropy(o, args[0], args[1]).map_err(KernelError::BadLabel)?
        }
    };
    Ok(vec![out])
}

/// Evaluates `op`, whose node is described as `node` in errors.
pub(crate) fn eval_node(
    node: &str,
    op: &Op,
    args: &[&Tensor],
    declared: &[TensorType],
) -> Result<Vec<Tensor>, InterpError> {
    let outs = eval(op, args).map_err(|e| match e {
        KernelError::Source => InterpError::Operands {
            node: node.to_string(),
            message: "a source op has no kernel: its value is an input or a parameter".into(),
        },
        KernelError::BadLabel(b) => InterpError::BadLabel {
            node: node.to_string(),
            row: b.row,
            value: b.value,
            classes: b.classes,
        },
    })?;
    for (port, (t, ty)) in outs.iter().zip(declared).enumerate() {
        if t.shape != ty.shape {
            return Err(InterpError::KernelShape {
                node: node.to_string(),
                port,
                expected: ty.clone(),
                found: t.shape.clone(),
            });
        }
    }
    Ok(outs)
}

/// Checks that a tensor's data length matches its shape.
pub(crate) fn well_formed(what: impl FnOnce() -> String, t: &Tensor) -> Result<(), InterpError> {
    let expected = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if expected != Some(t.data.len()) {
        return Err(InterpError::MalformedTensor {
            what: what(),
            shape: t.shape.clone(),
            len: t.data.len(),
        });
    }
    Ok(())
}

/// Evaluates one op outside any graph: checks the operand count, that each
/// operand is well formed, and that the op's inference accepts the operand
/// types, then runs the kernel. For testing a kernel of another backend
/// against this one without building a graph.
pub fn eval_op(op: &Op, operands: &[&Tensor]) -> Result<Vec<Tensor>, InterpError> {
    let node = op.kind();
    let refuse = |message: String| InterpError::Operands {
        node: node.to_string(),
        message,
    };
    let def = op.def();
    if def.is_source() {
        return Err(refuse(
            "a source op has no kernel: its value is an input or a parameter".into(),
        ));
    }
    if !def.arity().accepts(operands.len()) {
        return Err(refuse(format!(
            "takes {} operands, given {}",
            def.arity(),
            operands.len()
        )));
    }
    let mut types = Vec::with_capacity(operands.len());
    for (slot, t) in operands.iter().enumerate() {
        well_formed(|| format!("{node} operand {slot}"), t)?;
        let ty = t.ty();
        ty.validate()
            .map_err(|e| refuse(format!("operand {slot}: {e}")))?;
        types.push(ty);
    }
    let declared = def
        .infer(&types.iter().collect::<Vec<_>>())
        .map_err(refuse)?;
    eval_node(node, op, operands, &declared)
}

//! The verifier: every invariant that later stages rely on. The JIT indexes
//! raw memory on the strength of it, so each rule here has its own test.
//!
//! Rules, in the order they are checked:
//! 1. the graph has at least one output, and each names an existing value;
//! 2. every edge's port exists on its source; every node's operand slots are
//!    exactly `0..n` with no duplicate;
//! 3. the graph is acyclic;
//! 4. every node's operand count is one its op accepts;
//! 5. every declared output type is valid (rank <= 8, no zero dimension,
//!    at most 2^31-1 elements) and is f32;
//! 6. source ops have one output; input names and parameter names are unique;
//! 7. every op's inference accepts its attributes and operand types, and its
//!    inferred output types equal the declared ones.

use crate::error::IrError;
use crate::graph::{Graph, NodeId};
use crate::params::ParamStore;
use crate::types::DType;
use std::collections::HashSet;

fn fail(g: &Graph, id: NodeId, message: impl Into<String>) -> IrError {
    IrError::Verify {
        node: g.describe(id),
        message: message.into(),
    }
}

/// Checks the graph's structure and types. The error names the node and the value at fault.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    if g.outputs().is_empty() {
        return Err(IrError::Verify {
            node: "graph".into(),
            message: "the graph has no output".into(),
        });
    }
    for (i, out) in g.outputs().iter().enumerate() {
        if g.value_type(*out).is_none() {
            return Err(IrError::Verify {
                node: format!("output {i}"),
                message: format!(
                    "names node #{} port {}, which does not exist",
                    out.node.index(),
                    out.port
                ),
            });
        }
    }
    for id in g.node_ids() {
        let mut slots: Vec<u32> = Vec::new();
        for (slot, v) in g.incoming(id) {
            if g.value_type(v).is_none() {
                return Err(fail(
                    g,
                    id,
                    format!(
                        "operand {slot} reads port {} of {}, which has no such output",
                        v.port,
                        g.describe(v.node)
                    ),
                ));
            }
            slots.push(slot);
        }
        slots.sort_unstable();
        for (expected, &slot) in slots.iter().enumerate() {
            if slot as usize != expected {
                let message = if expected > 0 && slots[expected - 1] == slot {
                    format!("operand slot {slot} is fed twice")
                } else {
                    format!("operand slot {expected} is missing")
                };
                return Err(fail(g, id, message));
            }
        }
    }
    if let Err(id) = g.topo_order() {
        return Err(fail(g, id, "the node is on a cycle"));
    }
    let mut inputs = HashSet::new();
    let mut params = HashSet::new();
    for id in g.topo_order().expect("checked acyclic above") {
        let node = g.node(id).expect("live node");
        let def = node.op.def();
        let operands = g.operands(id);
        if !def.arity().accepts(operands.len()) {
            return Err(fail(
                g,
                id,
                format!("takes {} operands, has {}", def.arity(), operands.len()),
            ));
        }
        for (port, ty) in node.outputs.iter().enumerate() {
            ty.validate()
                .map_err(|e| fail(g, id, format!("output {port}: {e}")))?;
            if ty.dtype != DType::F32 {
                return Err(fail(
                    g,
                    id,
                    format!("output {port}: only f32 is supported, found {ty}"),
                ));
            }
        }
        if def.is_source() {
            if node.outputs.len() != 1 {
                return Err(fail(
                    g,
                    id,
                    format!("declares {} outputs, must declare 1", node.outputs.len()),
                ));
            }
            if let Some(name) = node.op.input_name() {
                if !inputs.insert(name.to_string()) {
                    return Err(fail(g, id, "another input has the same name"));
                }
            }
            if let Some(name) = node.op.param_name() {
                if !params.insert(name.to_string()) {
                    return Err(fail(g, id, "another parameter node has the same name"));
                }
            }
            continue;
        }
        let types: Vec<_> = operands
            .iter()
            .map(|v| g.value_type(*v).expect("checked above"))
            .collect();
        let inferred = def.infer(&types).map_err(|e| fail(g, id, e))?;
        if inferred != node.outputs {
            let show = |ts: &[crate::TensorType]| {
                ts.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(fail(
                g,
                id,
                format!(
                    "declares output type {} but its operands give {}",
                    show(&node.outputs),
                    show(&inferred)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that every parameter the graph reads is in `store` with the declared
/// shape. The error names the first missing or mis-shaped parameter (in
/// topological order) and the op that reads it.
pub fn verify_params(g: &Graph, store: &ParamStore) -> Result<(), IrError> {
    let order = g
        .topo_order()
        .map_err(|id| fail(g, id, "the node is on a cycle"))?;
    for id in order {
        let node = g.node(id).expect("live node");
        let Some(name) = node.op.param_name() else {
            continue;
        };
        let user = g
            .uses(id)
            .first()
            .map(|u| format!(" (used by {})", g.describe(u.user)))
            .unwrap_or_default();
        match store.get(name) {
            None => {
                return Err(IrError::Params(format!(
                    "parameter @{name}{user} is missing from the weights"
                )))
            }
            Some(t) if t.shape != node.outputs[0].shape => {
                return Err(IrError::Params(format!(
                    "parameter @{name}{user} has shape {:?} in the weights, the graph needs {}",
                    t.shape, node.outputs[0]
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

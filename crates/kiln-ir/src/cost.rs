//! The cost model: parameters, multiply-accumulates and activation bytes, per
//! node and in total.

use crate::graph::{Graph, NodeId};
use crate::op::OperandRole;
use std::collections::HashSet;

/// The cost of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeCost {
    /// Elements of the trainable parameters this node reads (BatchNorm running
    /// statistics excluded). A parameter read by two nodes counts at the first.
    pub params: u64,
    pub macs: u64,
    /// Bytes of the node's outputs.
    pub activation_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphCost {
    pub nodes: Vec<(NodeId, NodeCost)>,
    pub params: u64,
    pub macs: u64,
    pub activation_bytes: u64,
}

/// Costs of every non-source node, in topological order, and the totals.
/// The graph must be verified.
pub fn cost(g: &Graph) -> GraphCost {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let mut counted = HashSet::new();
    let mut total = GraphCost::default();
    for id in order {
        let node = g.node(id).expect("live node");
        let def = node.op.def();
        if def.is_source() {
            continue;
        }
        let operands = g.operands(id);
        let mut c = NodeCost::default();
        let mut types = Vec::with_capacity(operands.len());
        for (slot, v) in operands.iter().enumerate() {
            let Some(ty) = g.value_type(*v) else { continue };
            types.push(ty);
            let is_param = g.op(v.node).param_name().is_some();
            let trainable = def.operand_role(slot) != OperandRole::RunningStat;
            if is_param && trainable && counted.insert(v.node) {
                c.params += ty.elements() as u64;
            }
        }
        if types.len() == operands.len() && def.arity().accepts(types.len()) {
            c.macs = def.macs(&types, &node.outputs);
        }
        c.activation_bytes = node.outputs.iter().map(|t| t.size_bytes() as u64).sum();
        total.params += c.params;
        total.macs += c.macs;
        total.activation_bytes += c.activation_bytes;
        total.nodes.push((id, c));
    }
    total
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `1814073344` as `1.81G`, for tables.
pub fn si(n: u64) -> String {
    let x = n as f64;
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.2}K", x / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", x / 1e6),
        _ => format!("{:.2}G", x / 1e9),
    }
}

//! The graph: a petgraph `StableGraph` of nodes (an op and its output types)
//! and edges (which output port feeds which operand slot).
//!
//! `NodeId`s stay valid across any edit except the removal of that node
//! (that is what `StableGraph` buys), so a pass may hold ids while rewriting.

use crate::error::IrError;
use crate::op::Op;
use crate::ops::{Input, Param};
use crate::types::TensorType;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub type NodeId = NodeIndex<u32>;

/// One output of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Value {
    pub node: NodeId,
    pub port: u32,
}

impl From<NodeId> for Value {
    fn from(node: NodeId) -> Value {
        Value { node, port: 0 }
    }
}

/// An op with its output types (declared by whoever built the node, checked by
/// the verifier against the op's inference).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: Op,
    pub outputs: Vec<TensorType>,
}

/// The data flowing along an edge: output `port` of the source feeds operand
/// `slot` of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub port: u32,
    pub slot: u32,
}

/// A use of a value: operand `slot` of node `user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Use {
    pub user: NodeId,
    pub slot: u32,
    pub port: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    g: StableGraph<Node, Edge>,
    outputs: Vec<Value>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// The underlying petgraph, for algorithms this API does not offer.
    pub fn petgraph(&self) -> &StableGraph<Node, Edge> {
        &self.g
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> Value {
        let op = Op::Input(Input { name: name.into() });
        self.add_node_unchecked(op, &[], vec![ty]).into()
    }

    /// Adds a parameter, or returns the existing node of that name (a
    /// parameter may feed several ops, e.g. shared weights).
    pub fn add_param(&mut self, name: impl Into<String>, ty: TensorType) -> Value {
        let name = name.into();
        if let Some(id) = self.find_param(&name) {
            return id.into();
        }
        self.add_node_unchecked(Op::Param(Param { name }), &[], vec![ty])
            .into()
    }

    /// Adds a node whose output types come from the op's inference; fails with
    /// the inference error (nothing is added then).
    pub fn add(&mut self, op: impl Into<Op>, operands: &[Value]) -> Result<Value, IrError> {
        let op = op.into();
        let def = op.def();
        if !def.arity().accepts(operands.len()) {
            return Err(IrError::Build {
                op: op.kind(),
                message: format!("takes {} operands, given {}", def.arity(), operands.len()),
            });
        }
        let types: Vec<&TensorType> = operands
            .iter()
            .map(|v| self.value_type(*v))
            .collect::<Option<_>>()
            .ok_or_else(|| IrError::Build {
                op: op.kind(),
                message: "operand does not exist".into(),
            })?;
        let outputs = def.infer(&types).map_err(|message| IrError::Build {
            op: op.kind(),
            message,
        })?;
        Ok(self.add_node_unchecked(op, operands, outputs).into())
    }

    /// Adds a node with the given output types, unchecked (the parser and
    /// passes use this; the verifier checks the result).
    pub fn add_node_unchecked(
        &mut self,
        op: Op,
        operands: &[Value],
        outputs: Vec<TensorType>,
    ) -> NodeId {
        let id = self.g.add_node(Node { op, outputs });
        for (slot, v) in operands.iter().enumerate() {
            self.g.add_edge(
                v.node,
                id,
                Edge {
                    port: v.port,
                    slot: slot as u32,
                },
            );
        }
        id
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.g.node_weight(id)
    }

    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.g.node_weight_mut(id)
    }

    /// The op of node `id`. Panics if the node does not exist: use with ids taken from this graph.
    pub fn op(&self, id: NodeId) -> &Op {
        &self.g[id].op
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    pub fn value_type(&self, v: Value) -> Option<&TensorType> {
        self.g.node_weight(v.node)?.outputs.get(v.port as usize)
    }

    /// All node ids in index order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices()
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// The operands of `id`, ordered by slot. Slots the graph lacks are skipped
    /// (the verifier reports them).
    pub fn operands(&self, id: NodeId) -> Vec<Value> {
        let mut edges: Vec<(u32, Value)> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .map(|e| {
                (
                    e.weight().slot,
                    Value {
                        node: e.source(),
                        port: e.weight().port,
                    },
                )
            })
            .collect();
        edges.sort_by_key(|(slot, _)| *slot);
        edges.into_iter().map(|(_, v)| v).collect()
    }

    /// The raw incoming edges of `id`: (slot, value), unsorted.
    pub fn incoming(&self, id: NodeId) -> Vec<(u32, Value)> {
        self.g
            .edges_directed(id, Direction::Incoming)
            .map(|e| {
                (
                    e.weight().slot,
                    Value {
                        node: e.source(),
                        port: e.weight().port,
                    },
                )
            })
            .collect()
    }

    /// Every use of any output of `id`, ordered by user then slot.
    pub fn uses(&self, id: NodeId) -> Vec<Use> {
        let mut uses: Vec<Use> = self
            .g
            .edges_directed(id, Direction::Outgoing)
            .map(|e| Use {
                user: e.target(),
                slot: e.weight().slot,
                port: e.weight().port,
            })
            .collect();
        uses.sort_by_key(|u| (u.user, u.slot));
        uses
    }

    /// Uses of one value.
    pub fn value_uses(&self, v: Value) -> Vec<Use> {
        self.uses(v.node)
            .into_iter()
            .filter(|u| u.port == v.port)
            .collect()
    }

    /// True if `v` is a graph output.
    pub fn is_output(&self, v: Value) -> bool {
        self.outputs.contains(&v)
    }

    /// Number of uses of `v`, counting each graph-output occurrence as a use.
    pub fn use_count(&self, v: Value) -> usize {
        self.value_uses(v).len() + self.outputs.iter().filter(|o| **o == v).count()
    }

    /// Redirects every use of `from` (including graph outputs) to `to`.
    pub fn replace_all_uses(&mut self, from: Value, to: Value) {
        let edges: Vec<_> = self
            .g
            .edges_directed(from.node, Direction::Outgoing)
            .filter(|e| e.weight().port == from.port)
            .map(|e| (e.id(), e.target(), e.weight().slot))
            .collect();
        for (edge, target, slot) in edges {
            self.g.remove_edge(edge);
            self.g.add_edge(
                to.node,
                target,
                Edge {
                    port: to.port,
                    slot,
                },
            );
        }
        for o in &mut self.outputs {
            if *o == from {
                *o = to;
            }
        }
    }

    /// Adds one edge feeding `v` into operand `slot` of `user`, without
    /// removing what already feeds that slot (the verifier refuses a slot fed
    /// twice). Builders and the parser use the safer `set_operand`.
    pub fn connect(&mut self, v: Value, user: NodeId, slot: u32) {
        self.g.add_edge(v.node, user, Edge { port: v.port, slot });
    }

    /// Replaces operand `slot` of `user` by `v`.
    pub fn set_operand(&mut self, user: NodeId, slot: u32, v: Value) {
        let old: Vec<_> = self
            .g
            .edges_directed(user, Direction::Incoming)
            .filter(|e| e.weight().slot == slot)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        self.g.add_edge(v.node, user, Edge { port: v.port, slot });
    }

    /// Replaces all operands of `user` by `operands` (slots 0..n).
    pub fn set_operands(&mut self, user: NodeId, operands: &[Value]) {
        let old: Vec<_> = self
            .g
            .edges_directed(user, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        for (slot, v) in operands.iter().enumerate() {
            self.g.add_edge(
                v.node,
                user,
                Edge {
                    port: v.port,
                    slot: slot as u32,
                },
            );
        }
    }

    /// Removes a node and its edges. Graph outputs that named it are left
    /// dangling for the verifier to report.
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        self.g.remove_node(id)
    }

    pub fn outputs(&self) -> &[Value] {
        &self.outputs
    }

    pub fn set_outputs(&mut self, outputs: Vec<Value>) {
        self.outputs = outputs;
    }

    /// Inputs in index order: (id, name, type).
    pub fn inputs(&self) -> Vec<(NodeId, &str, &TensorType)> {
        self.g
            .node_indices()
            .filter_map(|id| {
                let n = &self.g[id];
                n.op.input_name().map(|name| (id, name, &n.outputs[0]))
            })
            .collect()
    }

    /// Parameters in index order: (id, name, type).
    pub fn params(&self) -> Vec<(NodeId, &str, &TensorType)> {
        self.g
            .node_indices()
            .filter_map(|id| {
                let n = &self.g[id];
                n.op.param_name().map(|name| (id, name, &n.outputs[0]))
            })
            .collect()
    }

    pub fn find_param(&self, name: &str) -> Option<NodeId> {
        self.g
            .node_indices()
            .find(|&id| self.g[id].op.param_name() == Some(name))
    }

    pub fn find_input(&self, name: &str) -> Option<NodeId> {
        self.g
            .node_indices()
            .find(|&id| self.g[id].op.input_name() == Some(name))
    }

    /// A deterministic topological order: among the ready nodes, the lowest
    /// index first. For a parsed graph that is file order. `Err` names a node
    /// on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        let mut pending: std::collections::HashMap<NodeId, usize> = self
            .g
            .node_indices()
            .map(|id| (id, self.g.edges_directed(id, Direction::Incoming).count()))
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeId>> = pending
            .iter()
            .filter(|(_, &n)| n == 0)
            .map(|(&id, _)| Reverse(id))
            .collect();
        let mut order = Vec::with_capacity(self.g.node_count());
        while let Some(Reverse(id)) = ready.pop() {
            order.push(id);
            for e in self.g.edges_directed(id, Direction::Outgoing) {
                let n = pending.get_mut(&e.target()).expect("edge to a live node");
                *n -= 1;
                if *n == 0 {
                    ready.push(Reverse(e.target()));
                }
            }
        }
        if order.len() != self.g.node_count() {
            let stuck = pending
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(&id, _)| id)
                .min();
            return Err(stuck.expect("a node on the cycle"));
        }
        Ok(order)
    }

    /// A short description of a node for error messages: its op and, when it
    /// has any, the first parameter it reads (`conv2d #12 (@layer1.0.conv1.weight)`).
    pub fn describe(&self, id: NodeId) -> String {
        let Some(node) = self.g.node_weight(id) else {
            return format!("node #{} (removed)", id.index());
        };
        if let Some(name) = node.op.param_name() {
            return format!("param @{name}");
        }
        if let Some(name) = node.op.input_name() {
            return format!("input \"{name}\"");
        }
        let param = self
            .operands(id)
            .into_iter()
            .find_map(|v| self.g.node_weight(v.node).and_then(|n| n.op.param_name()));
        match param {
            Some(p) => format!("{} #{} (@{p})", node.op.kind(), id.index()),
            None => format!("{} #{}", node.op.kind(), id.index()),
        }
    }
}

//! JSON dumps that load back: a serde document listing every node with its op
//! (attributes as in the text format), operands and output types.
//!
//! ```json
//! {"format": "kiln-ir", "version": 1, "name": "g",
//!  "nodes": [{"id": 0, "op": {"op": "input", "name": "x"}, "operands": [], "outputs": [{"dtype": "f32", "shape": [1, 3]}]}, ...],
//!  "outputs": [[3, 0]]}
//! ```
//! `id`s are positions in `nodes` (the canonical topological order);
//! an operand or output is `[id, port]`.

use crate::graph::{Graph, Value};
use crate::op::Op;
use crate::types::TensorType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use thiserror::Error;

pub const FORMAT: &str = "kiln-ir";
pub const VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum JsonError {
    #[error("not a kiln-ir JSON document: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("format is {found:?}, expected \"kiln-ir\" version 1")]
    Format { found: String },
    #[error("node {node}: {message}")]
    Node { node: usize, message: String },
    #[error("output {index}: {message}")]
    Output { index: usize, message: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format: String,
    version: u32,
    name: String,
    nodes: Vec<NodeDoc>,
    outputs: Vec<(usize, u32)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeDoc {
    id: usize,
    op: Op,
    operands: Vec<(usize, u32)>,
    outputs: Vec<TensorType>,
}

/// The graph as pretty-printed JSON, nodes in canonical order.
pub fn to_json(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let position: HashMap<_, _> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let refer = |v: &Value| (position.get(&v.node).copied().unwrap_or(usize::MAX), v.port);
    let nodes = order
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let node = g.node(id).expect("live node");
            NodeDoc {
                id: i,
                op: node.op.clone(),
                operands: g.operands(id).iter().map(refer).collect(),
                outputs: node.outputs.clone(),
            }
        })
        .collect();
    let doc = Document {
        format: FORMAT.into(),
        version: VERSION,
        name: g.name.clone(),
        nodes,
        outputs: g.outputs().iter().map(refer).collect(),
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("a graph serializes");
    text.push('\n');
    text
}

/// Loads a JSON dump. Like the text parser it checks references, not
/// semantics: run `kiln_ir::verify` on the result.
pub fn from_json(text: &str) -> Result<Graph, JsonError> {
    let doc: Document = serde_json::from_str(text)?;
    if doc.format != FORMAT || doc.version != VERSION {
        return Err(JsonError::Format { found: format!("{} version {}", doc.format, doc.version) });
    }
    let mut g = Graph::new(doc.name);
    let mut ids = Vec::with_capacity(doc.nodes.len());
    for (i, node) in doc.nodes.into_iter().enumerate() {
        let fail = |message: String| JsonError::Node { node: i, message };
        if node.id != i {
            return Err(fail(format!("has id {}, expected {i} (ids are positions)", node.id)));
        }
        let operands = node
            .operands
            .iter()
            .map(|&(n, port)| {
                let id = *ids.get(n).ok_or_else(|| fail(format!("operand [{n}, {port}] names a node not defined before it")))?;
                Ok(Value { node: id, port })
            })
            .collect::<Result<Vec<_>, JsonError>>()?;
        for t in &node.outputs {
            t.validate().map_err(|e| fail(format!("output type: {e}")))?;
        }
        ids.push(g.add_node_unchecked(node.op, &operands, node.outputs));
    }
    let outputs = doc
        .outputs
        .iter()
        .enumerate()
        .map(|(index, &(n, port))| {
            let id = *ids.get(n).ok_or_else(|| JsonError::Output { index, message: format!("names node {n}, which does not exist") })?;
            Ok(Value { node: id, port })
        })
        .collect::<Result<Vec<_>, JsonError>>()?;
    g.set_outputs(outputs);
    Ok(g)
}

//! JSON dumps that load back: a serde document listing every node with its op
//! (attributes as in the text format), operands and output types.
//!
//! ```json
//! {"format": "kiln-ir", "version": 1, "name": "g",
//!  "nodes": [{"id": 0, "op": {"op": "input", "name": "x"}, "operands": [],
//!             "outputs": [{"dtype": "f32", "shape": [1, 3]}]}, ...],
//!  "outputs": [[3, 0]]}
//! ```
//! `id`s are positions in `nodes`, which lists the nodes in the canonical
//! (topological) order of the text format; an operand or a graph output is
//! `[id, port]` and names an earlier node. Unknown fields are refused.

use crate::graph::{Graph, Value};
use crate::op::Op;
use crate::types::{TensorType, MAX_ELEMENTS, MAX_RANK};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use thiserror::Error;

/// The `format` field of every document.
pub const FORMAT: &str = "kiln-ir";
/// The `version` field this code writes and reads.
pub const VERSION: u32 = 1;

/// Why a JSON document does not load.
#[derive(Debug, Error)]
pub enum JsonError {
    /// Not JSON, or not this schema; `path` is where in the document
    /// (`nodes[3].op`), `source` says what and at which line:column.
    #[error("{path}: {source}")]
    Syntax {
        path: String,
        source: serde_json::Error,
    },
    #[error("format is {found}, expected \"{FORMAT}\" version {VERSION}")]
    Format { found: String },
    /// A reference or declaration in node `node` (its position in `nodes`).
    #[error("nodes[{node}]: {message}")]
    Node { node: usize, message: String },
    #[error("outputs[{index}]: {message}")]
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

/// Only the identification of a document, read first so that a document of
/// another kind gets a `Format` error rather than a schema error.
#[derive(Deserialize)]
struct Header {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeDoc {
    id: usize,
    op: Op,
    operands: Vec<(usize, u32)>,
    outputs: Vec<TensorType>,
}

/// The graph as pretty-printed JSON, nodes in canonical order (that of
/// `text::print`). A value the graph does not hold (a dangling output, which
/// the verifier refuses) is written as node `usize::MAX` and does not load back.
pub fn to_json(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let position: HashMap<_, _> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let refer = |v: &Value| (position.get(&v.node).copied().unwrap_or(usize::MAX), v.port);
    let nodes = order
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let node = g.node(id).expect("an id from the graph");
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
    // Serializing plain structs, strings and finite numbers cannot fail; a
    // non-finite float attribute becomes `null` (and does not load back).
    let mut text = serde_json::to_string_pretty(&doc).expect("a graph serializes");
    text.push('\n');
    text
}

/// Loads a JSON dump. Like the text parser it checks the document and its
/// references (each operand and output names a port of an earlier node;
/// parameter and input names are unique; types have rank at most 8 and at
/// most 2^31-1 elements, as in the text format), not semantics: run `kiln_ir::verify` on the result.
/// Never panics; nesting deeper than serde_json's limit (128) is an error.
pub fn from_json(text: &str) -> Result<Graph, JsonError> {
    let syntax = |path: String, source| JsonError::Syntax { path, source };
    let header: Header = serde_json::from_str(text).map_err(|e| syntax("document".into(), e))?;
    let (format, version) = (
        header.format.unwrap_or_default(),
        header.version.unwrap_or_default(),
    );
    if format != FORMAT || version != VERSION {
        return Err(JsonError::Format {
            found: format!("{format} version {version}"),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let doc: Document = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        syntax(
            if path == "." { "document".into() } else { path },
            e.into_inner(),
        )
    })?;
    de.end().map_err(|e| syntax("document".into(), e))?;

    let mut g = Graph::new(doc.name);
    let mut ids = Vec::with_capacity(doc.nodes.len());
    let mut params = HashSet::new();
    let mut inputs = HashSet::new();
    for (i, node) in doc.nodes.into_iter().enumerate() {
        let fail = |message: String| JsonError::Node { node: i, message };
        if node.id != i {
            return Err(fail(format!(
                "has id {}, expected {i} (ids are positions in nodes)",
                node.id
            )));
        }
        let operands = node
            .operands
            .iter()
            .enumerate()
            .map(|(slot, &(n, port))| {
                resolve(&g, &ids, n, port)
                    .map_err(|why| fail(format!("operand {slot} [{n}, {port}] {why}")))
            })
            .collect::<Result<Vec<_>, JsonError>>()?;
        for (port, t) in node.outputs.iter().enumerate() {
            bounded(t).map_err(|e| fail(format!("output {port}: {e}")))?;
        }
        if let Some(name) = node.op.param_name() {
            if !params.insert(name.to_string()) {
                return Err(fail(format!("parameter {name:?} is declared twice")));
            }
        }
        if let Some(name) = node.op.input_name() {
            if !inputs.insert(name.to_string()) {
                return Err(fail(format!("input {name:?} is declared twice")));
            }
        }
        ids.push(g.add_node_unchecked(node.op, &operands, node.outputs));
    }
    let outputs = doc
        .outputs
        .iter()
        .enumerate()
        .map(|(index, &(n, port))| {
            resolve(&g, &ids, n, port).map_err(|why| JsonError::Output {
                index,
                message: format!("[{n}, {port}] {why}"),
            })
        })
        .collect::<Result<Vec<_>, JsonError>>()?;
    g.set_outputs(outputs);
    Ok(g)
}

/// The value `[n, port]` among the nodes loaded so far.
fn resolve(g: &Graph, ids: &[crate::NodeId], n: usize, port: u32) -> Result<Value, &'static str> {
    let id = *ids
        .get(n)
        .ok_or("names a node that is not defined before it")?;
    let v = Value { node: id, port };
    g.value_type(v)
        .map(|_| v)
        .ok_or("names a port the node does not have")
}

/// The size limits the text parser applies to a type (a zero dimension is
/// left to the verifier, as in the text format).
fn bounded(t: &TensorType) -> Result<(), String> {
    if t.rank() > MAX_RANK {
        return Err(format!(
            "{t} has rank {}, above the maximum {MAX_RANK}",
            t.rank()
        ));
    }
    match t.checked_elements() {
        Some(n) if n <= MAX_ELEMENTS => Ok(()),
        _ => Err(format!("{t} has more than {MAX_ELEMENTS} elements")),
    }
}

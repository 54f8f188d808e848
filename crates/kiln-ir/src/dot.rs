//! Graphviz DOT dumps, and the node labels and block clusters that the SVG
//! renderer shares.
//!
//! Parameters are not drawn as nodes: each op's box lists the parameters it
//! reads, with its key attributes, output type, parameter count and MACs.
//! Blocks are nested `cluster_` subgraphs named by parameter prefixes (see
//! [`node_blocks`]).

use crate::cost::{cost, grouped};
use crate::graph::{Graph, NodeId};
use crate::op::Op;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

/// The candidate blocks of a parameter, outermost first, from its name alone:
/// a dotted module path gives every proper prefix (`layer3.1.conv2.weight` is
/// in `layer3` > `layer3.1`); a Caffe-style module of three or more `_` words
/// gives its first two (`inception_3a_1x1.weight` is in `inception_3a`); a
/// module of one name (`conv1.weight`) is in no block. [`node_blocks`] keeps a
/// Caffe-style candidate only if it holds two or more layers.
pub fn blocks_of_param(name: &str) -> Vec<String> {
    let Some((module, _)) = name.rsplit_once('.') else {
        return Vec::new();
    };
    let parts: Vec<&str> = module.split('.').collect();
    if parts.len() > 1 {
        return (1..parts.len()).map(|n| parts[..n].join(".")).collect();
    }
    caffe_block(module)
        .map(|b| vec![b.to_string()])
        .unwrap_or_default()
}

/// The first two `_` words of a module of three or more.
fn caffe_block(module: &str) -> Option<&str> {
    let first = module.find('_')?;
    let second = first + 1 + module[first + 1..].find('_')?;
    (second + 1 < module.len()).then(|| &module[..second])
}

/// Caffe-style candidates that hold at least two layers. A module that is
/// another one plus `_suffix` is part of that layer (`conv1_7x7_s2_bn` of
/// `conv1_7x7_s2`), so `conv1_7x7` (one layer and its BN) is no block, while
/// `inception_3a` (1x1, 3x3_reduce, ...) is.
fn caffe_blocks(g: &Graph) -> HashSet<String> {
    let modules: HashSet<&str> = g
        .params()
        .into_iter()
        .filter_map(|(_, name, _)| name.rsplit_once('.').map(|(m, _)| m))
        .filter(|m| !m.contains('.'))
        .collect();
    let mut layers: HashMap<&str, usize> = HashMap::new();
    for &m in &modules {
        let Some(block) = caffe_block(m) else {
            continue;
        };
        // A root layer: no shorter module of the block (or the block's own
        // name) is a `_`-prefix of it.
        let nested = m
            .match_indices('_')
            .map(|(i, _)| &m[..i])
            .any(|p| p.len() >= block.len() && modules.contains(p));
        if !nested {
            *layers.entry(block).or_default() += 1;
        }
    }
    layers
        .into_iter()
        .filter(|&(_, n)| n >= 2)
        .map(|(b, _)| b.to_string())
        .collect()
}

/// The block path (outermost first) of every node that is not a parameter.
///
/// 1. A node that reads parameters is in the blocks of its first parameter.
/// 2. A node without parameters (relu, add, concat, pool) is in the deepest
///    block B, among the prefixes of its operands' paths, in which every
///    operand is available: made inside B, read by a parameterised node inside
///    B (an input of the block), or made without parameters from values
///    available in B. So a residual add lands in its residual block (the
///    shortcut is an input of the block), an Inception concat in its module.
/// 3. A node without parameters whose operands all come from outside the
///    outermost block U of its users, and are available there, moves to its
///    users' common blocks: an Inception pool branch's pool, fed by the
///    module's input, belongs to the module and not to the one before.
pub fn node_blocks(g: &Graph) -> HashMap<NodeId, Vec<String>> {
    let caffe = caffe_blocks(g);
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let param_path = |id: NodeId| -> Option<Vec<String>> {
        let first = g
            .operands(id)
            .into_iter()
            .find_map(|v| g.node(v.node).and_then(|n| n.op.param_name()))?;
        let mut path = blocks_of_param(first);
        let module = first.rsplit_once('.').map_or("", |(m, _)| m);
        if !module.contains('.') {
            path.retain(|b| caffe.contains(b));
        }
        Some(path)
    };
    let mut blocks: HashMap<NodeId, Vec<String>> = HashMap::new();
    // The parameterised nodes that read each node's outputs.
    let mut read_by: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &id in &order {
        if g.op(id).param_name().is_some() {
            continue;
        }
        if let Some(path) = param_path(id) {
            blocks.insert(id, path);
            for v in g.operands(id) {
                read_by.entry(v.node).or_default().push(id);
            }
        }
    }
    let parameterised: HashSet<NodeId> = blocks.keys().copied().collect();
    let operands_of = |id: NodeId| -> Vec<NodeId> {
        g.operands(id)
            .into_iter()
            .map(|v| v.node)
            .filter(|n| g.node(*n).is_some_and(|n| n.op.param_name().is_none()))
            .collect()
    };
    // An input of `b`: read by a parameterised node inside it; or made without
    // parameters from inputs of `b` (a few levels deep, which covers pools).
    fn is_input(n: NodeId, b: &[String], depth: usize, cx: &InputCx<'_>) -> bool {
        if cx
            .read_by
            .get(&n)
            .is_some_and(|users| users.iter().any(|u| cx.blocks[u].starts_with(b)))
        {
            return true;
        }
        depth > 0 && !cx.parameterised.contains(&n) && cx.g.op(n).input_name().is_none() && {
            let ops = (cx.operands_of)(n);
            !ops.is_empty() && ops.iter().all(|&o| is_input(o, b, depth - 1, cx))
        }
    }
    struct InputCx<'a> {
        g: &'a Graph,
        read_by: &'a HashMap<NodeId, Vec<NodeId>>,
        blocks: &'a HashMap<NodeId, Vec<String>>,
        parameterised: &'a HashSet<NodeId>,
        operands_of: &'a dyn Fn(NodeId) -> Vec<NodeId>,
    }
    const DERIVED_DEPTH: usize = 3;
    let empty = Vec::new();
    for &id in &order {
        if g.op(id).param_name().is_some() || parameterised.contains(&id) {
            continue;
        }
        let operands = operands_of(id);
        let chosen = {
            let path_of = |n: &NodeId| blocks.get(n).unwrap_or(&empty);
            let cx = InputCx {
                g,
                read_by: &read_by,
                blocks: &blocks,
                parameterised: &parameterised,
                operands_of: &operands_of,
            };
            let mut candidates: Vec<&[String]> = operands
                .iter()
                .flat_map(|n| (1..=path_of(n).len()).map(move |k| &path_of(n)[..k]))
                .collect();
            candidates.sort_by_key(|c| std::cmp::Reverse(c.len()));
            candidates
                .into_iter()
                .find(|b| {
                    operands
                        .iter()
                        .all(|n| path_of(n).starts_with(b) || is_input(*n, b, DERIVED_DEPTH, &cx))
                })
                .map(|b| b.to_vec())
                .unwrap_or_default()
        };
        blocks.insert(id, chosen);
    }
    for &id in order.iter().rev() {
        if g.op(id).param_name().is_some()
            || parameterised.contains(&id)
            || g.outputs().iter().any(|v| v.node == id)
        {
            continue;
        }
        let users: Vec<&Vec<String>> = g
            .uses(id)
            .iter()
            .filter_map(|u| blocks.get(&u.user))
            .collect();
        let Some((first, rest)) = users.split_first() else {
            continue;
        };
        let mut common: &[String] = first;
        for p in rest {
            let n = common
                .iter()
                .zip(p.iter())
                .take_while(|(a, b)| a == b)
                .count();
            common = &common[..n];
        }
        if common.is_empty() || blocks[&id].as_slice() == common {
            continue;
        }
        let outer = &common[..1];
        let cx = InputCx {
            g,
            read_by: &read_by,
            blocks: &blocks,
            parameterised: &parameterised,
            operands_of: &operands_of,
        };
        let operands = operands_of(id);
        let from_outside = !operands.is_empty()
            && operands.iter().all(|n| {
                !blocks.get(n).unwrap_or(&empty).starts_with(outer)
                    && is_input(*n, outer, DERIVED_DEPTH, &cx)
            });
        if from_outside {
            let common = common.to_vec();
            blocks.insert(id, common);
        }
    }
    blocks
}

/// The MACs and trainable parameter counts of each node of a verified graph;
/// empty for a graph the verifier refuses (the cost model trusts the types).
pub(crate) fn node_costs(g: &Graph) -> HashMap<NodeId, (u64, u64)> {
    if crate::verify(g).is_err() {
        return HashMap::new();
    }
    cost(g)
        .nodes
        .into_iter()
        .map(|(id, c)| (id, (c.params, c.macs)))
        .collect()
}

/// The key attributes of an op, short: `3x3 /2 pad 1` for a conv, the text
/// format's attributes for ops without a special form.
fn key_attributes(op: &Op) -> String {
    let window = |kernel: [usize; 2], stride: [usize; 2], pad: [usize; 4]| {
        let mut s = format!("{}x{}", kernel[0], kernel[1]);
        if stride != [1, 1] {
            let _ = if stride[0] == stride[1] {
                write!(s, " /{}", stride[0])
            } else {
                write!(s, " /{}x{}", stride[0], stride[1])
            };
        }
        if pad.iter().any(|&p| p > 0) {
            if pad.iter().all(|&p| p == pad[0]) {
                let _ = write!(s, " pad {}", pad[0]);
            } else {
                let _ = write!(s, " pad {},{},{},{}", pad[0], pad[1], pad[2], pad[3]);
            }
        }
        s
    };
    match op {
        Op::Conv2d(c) => {
            let mut s = window(c.kernel, c.stride, c.pad);
            if c.dilation != [1, 1] {
                let _ = write!(s, " dil {}x{}", c.dilation[0], c.dilation[1]);
            }
            if c.groups > 1 {
                let _ = write!(s, " groups {}", c.groups);
            }
            if c.epilogue.residual {
                s.push_str(" +residual");
            }
            if c.epilogue.relu {
                s.push_str(" +relu");
            }
            s
        }
        Op::MaxPool(p) => {
            window(p.kernel, p.stride, p.pad) + if p.ceil_mode { " ceil" } else { "" }
        }
        Op::AvgPool(p) => {
            window(p.kernel, p.stride, p.pad)
                + if p.ceil_mode { " ceil" } else { "" }
                + if p.count_include_pad { "" } else { " excl-pad" }
        }
        Op::BatchNorm(b) => format!(
            "eps {:?}{}",
            b.eps,
            if b.training { " training" } else { "" }
        ),
        Op::Input(i) => {
            let mut s = String::new();
            crate::text::quote(&i.name, &mut s);
            s
        }
        Op::Dense(_) => String::new(),
        other => {
            let s = crate::text::inline_attributes(other);
            if s.chars().count() > 48 {
                s.chars().take(47).chain(['…']).collect()
            } else {
                s
            }
        }
    }
}

/// The lines of a node's label: op and key attributes, the parameters it
/// reads, its output types, then its parameter count and MACs when not zero.
pub fn label_lines(g: &Graph, id: NodeId, params: u64, macs: u64) -> Vec<String> {
    let Some(node) = g.node(id) else {
        return vec![format!("node #{} (removed)", id.index())];
    };
    let attrs = key_attributes(&node.op);
    let mut lines = vec![if attrs.is_empty() {
        node.op.kind().to_string()
    } else {
        format!("{} {attrs}", node.op.kind())
    }];
    for v in g.operands(id) {
        if let Some(name) = g.node(v.node).and_then(|n| n.op.param_name()) {
            lines.push(format!("@{name}"));
        }
    }
    lines.push(
        node.outputs
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    let counts: Vec<String> = [(params, "params"), (macs, "MACs")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{} {what}", grouped(*n)))
        .collect();
    if !counts.is_empty() {
        lines.push(counts.join(", "));
    }
    lines
}

/// A DOT string's content: quotes and backslashes escaped, line breaks as `\n`.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\r', "")
}

/// Nodes grouped into a tree of clusters by block path.
#[derive(Default)]
struct Cluster {
    nodes: Vec<NodeId>,
    children: BTreeMap<String, Cluster>,
}

/// The graph in Graphviz DOT: a box per op (an ellipse per input and output),
/// edges labelled with the value's type, nested `cluster_<block>` subgraphs.
/// Node `n<index>` is the node of that `NodeId`; `out<i>` is graph output `i`.
/// MACs and parameter counts appear only if the graph verifies.
pub fn to_dot(g: &Graph) -> String {
    let costs = node_costs(g);
    let blocks = node_blocks(g);
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", escape(&g.name));
    out.push_str("  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=8];\n");
    let mut root = Cluster::default();
    for &id in &order {
        let Some(path) = blocks.get(&id) else {
            continue;
        };
        let mut c = &mut root;
        for b in path {
            c = c.children.entry(b.clone()).or_default();
        }
        c.nodes.push(id);
    }
    fn emit(
        c: &Cluster,
        g: &Graph,
        costs: &HashMap<NodeId, (u64, u64)>,
        depth: usize,
        out: &mut String,
    ) {
        let pad = "  ".repeat(depth);
        for &id in &c.nodes {
            let (params, macs) = costs.get(&id).copied().unwrap_or_default();
            let label = label_lines(g, id, params, macs)
                .iter()
                .map(|l| escape(l))
                .collect::<Vec<_>>()
                .join("\\n");
            let shape = if g.op(id).input_name().is_some() {
                ", shape=ellipse"
            } else {
                ""
            };
            let _ = writeln!(out, "{pad}n{} [label=\"{label}\"{shape}];", id.index());
        }
        for (name, child) in &c.children {
            let _ = writeln!(out, "{pad}subgraph \"cluster_{}\" {{", escape(name));
            let _ = writeln!(
                out,
                "{pad}  label=\"{}\"; style=dashed; color=gray50;",
                escape(name)
            );
            emit(child, g, costs, depth + 1, out);
            let _ = writeln!(out, "{pad}}}");
        }
    }
    emit(&root, g, &costs, 1, &mut out);
    for &id in &order {
        if g.op(id).param_name().is_some() {
            continue;
        }
        for v in g.operands(id) {
            if g.node(v.node).is_some_and(|n| n.op.param_name().is_some()) {
                continue;
            }
            let ty = g.value_type(v).map(|t| t.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "  n{} -> n{} [label=\"{ty}\"];",
                v.node.index(),
                id.index()
            );
        }
    }
    for (i, v) in g.outputs().iter().enumerate() {
        let _ = writeln!(out, "  out{i} [label=\"output {i}\", shape=ellipse];");
        if g.contains(v.node) {
            let _ = writeln!(out, "  n{} -> out{i};", v.node.index());
        }
    }
    out.push_str("}\n");
    out
}

//! Graphviz DOT dumps, and the node labels and block clusters that the SVG
//! renderer shares. Parameters are not drawn as nodes: each op's box lists
//! the parameters it reads, with its attributes, output shape and MACs.

use crate::cost::{cost, grouped};
use crate::graph::{Graph, NodeId};
use crate::op::Op;
use std::collections::HashMap;
use std::fmt::Write;

/// The block a parameter belongs to, outermost first: `layer3.1.conv2.weight`
/// is in `layer3` > `layer3.1`; Caffe-style `inception_3a_1x1.weight` is in
/// `inception_3a`; `conv1.weight` is in no block.
pub fn blocks_of_param(name: &str) -> Vec<String> {
    let Some((module, _)) = name.rsplit_once('.') else { return Vec::new() };
    let parts: Vec<&str> = module.split('.').collect();
    if parts.len() > 1 {
        return (1..parts.len()).map(|n| parts[..n].join(".")).collect();
    }
    let words: Vec<&str> = module.split('_').collect();
    if words.len() >= 3 {
        return vec![words[..2].join("_")];
    }
    Vec::new()
}

/// The block path of every drawn node: that of its first parameter, or for
/// ops without parameters the longest block path all its operands share.
pub fn node_blocks(g: &Graph) -> HashMap<NodeId, Vec<String>> {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let mut blocks: HashMap<NodeId, Vec<String>> = HashMap::new();
    for id in order {
        let op = g.op(id);
        if op.param_name().is_some() {
            continue;
        }
        let operands = g.operands(id);
        let from_param = operands.iter().find_map(|v| g.node(v.node).and_then(|n| n.op.param_name()).map(blocks_of_param));
        let path = match from_param {
            Some(p) => p,
            None => {
                let paths: Vec<&Vec<String>> = operands.iter().filter_map(|v| blocks.get(&v.node)).collect();
                match paths.split_first() {
                    None => Vec::new(),
                    Some((first, rest)) => {
                        let mut common = (*first).clone();
                        for p in rest {
                            let n = common.iter().zip(p.iter()).take_while(|(a, b)| a == b).count();
                            common.truncate(n);
                        }
                        common
                    }
                }
            }
        };
        blocks.insert(id, path);
    }
    blocks
}

fn short_attrs(op: &Op) -> String {
    match op {
        Op::Conv2d(c) => {
            let mut s = format!("{}x{}", c.kernel[0], c.kernel[1]);
            if c.stride != [1, 1] {
                let _ = write!(s, " /{}", c.stride[0]);
            }
            if c.pad.iter().any(|&p| p > 0) {
                let _ = write!(s, " pad {}", c.pad.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","));
            }
            if c.groups > 1 {
                let _ = write!(s, " g{}", c.groups);
            }
            if c.dilation != [1, 1] {
                let _ = write!(s, " d{}", c.dilation[0]);
            }
            if c.epilogue.residual {
                s.push_str(" +residual");
            }
            if c.epilogue.relu {
                s.push_str(" +relu");
            }
            s
        }
        Op::MaxPool(p) => format!("{}x{} /{}{}", p.kernel[0], p.kernel[1], p.stride[0], if p.ceil_mode { " ceil" } else { "" }),
        Op::AvgPool(p) => format!("{}x{} /{}{}", p.kernel[0], p.kernel[1], p.stride[0], if p.ceil_mode { " ceil" } else { "" }),
        Op::BatchNorm(b) => format!("eps {}", b.eps),
        Op::Concat(c) => format!("axis {}", c.axis),
        Op::Input(i) => format!("\"{}\"", i.name),
        _ => String::new(),
    }
}

/// The lines of a node's label: op and key attributes, parameters, output
/// type, MACs.
pub fn label_lines(g: &Graph, id: NodeId, macs: u64) -> Vec<String> {
    let node = g.node(id).expect("live node");
    let attrs = short_attrs(&node.op);
    let mut lines = vec![if attrs.is_empty() { node.op.kind().to_string() } else { format!("{} {attrs}", node.op.kind()) }];
    for v in g.operands(id) {
        if let Some(name) = g.node(v.node).and_then(|n| n.op.param_name()) {
            lines.push(format!("@{name}"));
        }
    }
    lines.push(node.outputs.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "));
    if macs > 0 {
        lines.push(format!("{} MACs", grouped(macs)));
    }
    lines
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The graph in Graphviz DOT, with nested clusters for parameter-named blocks.
pub fn to_dot(g: &Graph) -> String {
    let macs: HashMap<NodeId, u64> = cost(g).nodes.into_iter().map(|(id, c)| (id, c.macs)).collect();
    let blocks = node_blocks(g);
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", escape(&g.name));
    out.push_str("  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=8];\n");
    // Nodes grouped into a tree of clusters by block path.
    #[derive(Default)]
    struct Cluster {
        nodes: Vec<NodeId>,
        children: std::collections::BTreeMap<String, Cluster>,
    }
    let mut root = Cluster::default();
    for &id in &order {
        let Some(path) = blocks.get(&id) else { continue };
        let mut c = &mut root;
        for b in path {
            c = c.children.entry(b.clone()).or_default();
        }
        c.nodes.push(id);
    }
    fn emit(c: &Cluster, g: &Graph, macs: &HashMap<NodeId, u64>, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        for &id in &c.nodes {
            let label = label_lines(g, id, macs.get(&id).copied().unwrap_or(0)).iter().map(|l| escape(l)).collect::<Vec<_>>().join("\\n");
            let shape = if g.op(id).input_name().is_some() { ", shape=ellipse" } else { "" };
            let _ = writeln!(out, "{pad}n{} [label=\"{label}\"{shape}];", id.index());
        }
        for (name, child) in &c.children {
            let _ = writeln!(out, "{pad}subgraph \"cluster_{}\" {{", escape(name));
            let _ = writeln!(out, "{pad}  label=\"{}\"; style=dashed; color=gray50;", escape(name));
            emit(child, g, macs, depth + 1, out);
            let _ = writeln!(out, "{pad}}}");
        }
    }
    emit(&root, g, &macs, 1, &mut out);
    for &id in &order {
        if g.op(id).param_name().is_some() {
            continue;
        }
        for v in g.operands(id) {
            if g.node(v.node).is_some_and(|n| n.op.param_name().is_some()) {
                continue;
            }
            let ty = g.value_type(v).map(|t| t.to_string()).unwrap_or_default();
            let _ = writeln!(out, "  n{} -> n{} [label=\"{ty}\"];", v.node.index(), id.index());
        }
    }
    for (i, v) in g.outputs().iter().enumerate() {
        let _ = writeln!(out, "  out{i} [label=\"output {i}\", shape=ellipse];");
        let _ = writeln!(out, "  n{} -> out{i};", v.node.index());
    }
    out.push_str("}\n");
    out
}

//! SVG drawings of a graph, laid out in-process (no Graphviz needed).
//!
//! A simple layered layout, linear in the graph's size: each drawn node's
//! layer is its longest path from an input; within a layer nodes are ordered
//! by the mean position of their operands (two sweeps), then placed left to
//! right. Boxes carry the DOT labels plus the node's block (`layer3.1`), since
//! the drawing has no cluster frames. (layout-rs was tried first: its layout
//! took over 40 minutes on a 200-node Inception-like graph.)

use crate::cost::cost;
use crate::dot::{label_lines, node_blocks};
use crate::graph::{Graph, NodeId};
use std::collections::HashMap;
use std::fmt::Write;
use thiserror::Error;

/// Drawings of more nodes than this are refused: they would be unreadable
/// and many megabytes.
pub const MAX_SVG_NODES: usize = 20_000;

#[derive(Debug, Error)]
pub enum SvgError {
    #[error("the graph has {0} nodes to draw; SVG drawings are limited to {MAX_SVG_NODES} (use --format dot with Graphviz)")]
    TooLarge(usize),
    #[error("the graph has a cycle at {0}: it cannot be laid out (run the verifier)")]
    Cycle(String),
}

const BOX_W: f64 = 230.0;
const LINE_H: f64 = 13.0;
const GAP_X: f64 = 30.0;
const GAP_Y: f64 = 46.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn to_svg(g: &Graph) -> Result<String, SvgError> {
    let order = g.topo_order().map_err(|id| SvgError::Cycle(g.describe(id)))?;
    let drawn: Vec<NodeId> = order.into_iter().filter(|&id| g.op(id).param_name().is_none()).collect();
    if drawn.len() > MAX_SVG_NODES {
        return Err(SvgError::TooLarge(drawn.len()));
    }
    let macs: HashMap<NodeId, u64> = cost(g).nodes.into_iter().map(|(id, c)| (id, c.macs)).collect();
    let blocks = node_blocks(g);
    let preds = |id: NodeId| -> Vec<NodeId> {
        g.operands(id).into_iter().map(|v| v.node).filter(|n| g.op(*n).param_name().is_none()).collect()
    };
    // Layers by longest path.
    let mut layer: HashMap<NodeId, usize> = HashMap::new();
    for &id in &drawn {
        let l = preds(id).iter().filter_map(|p| layer.get(p)).map(|l| l + 1).max().unwrap_or(0);
        layer.insert(id, l);
    }
    let depth = layer.values().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<NodeId>> = vec![Vec::new(); depth];
    for &id in &drawn {
        layers[layer[&id]].push(id);
    }
    // Order within layers by the barycenter of the operands' positions.
    let mut position: HashMap<NodeId, f64> = HashMap::new();
    for _sweep in 0..2 {
        for row in layers.iter_mut() {
            let key = |id: &NodeId| {
                let ps: Vec<f64> = preds(*id).iter().filter_map(|p| position.get(p)).copied().collect();
                if ps.is_empty() { position.get(id).copied().unwrap_or(0.0) } else { ps.iter().sum::<f64>() / ps.len() as f64 }
            };
            let mut keyed: Vec<(f64, NodeId)> = row.iter().map(|id| (key(id), *id)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            *row = keyed.into_iter().map(|(_, id)| id).collect();
            let width = row.len() as f64;
            for (i, id) in row.iter().enumerate() {
                position.insert(*id, i as f64 - (width - 1.0) / 2.0);
            }
        }
    }
    // Geometry.
    let labels: HashMap<NodeId, Vec<String>> = drawn
        .iter()
        .map(|&id| {
            let mut lines = label_lines(g, id, macs.get(&id).copied().unwrap_or(0));
            if let Some(b) = blocks.get(&id).and_then(|p| p.last()) {
                lines.insert(0, format!("[{b}]"));
            }
            (id, lines)
        })
        .collect();
    let widest = layers.iter().map(|r| r.len()).max().unwrap_or(1) as f64;
    let total_w = widest * (BOX_W + GAP_X) + GAP_X;
    let mut boxes: HashMap<NodeId, (f64, f64, f64)> = HashMap::new(); // x, y, height
    let mut y = GAP_X;
    for row in &layers {
        let h = row.iter().map(|id| labels[id].len()).max().unwrap_or(1) as f64 * LINE_H + 10.0;
        for id in row {
            let cx = total_w / 2.0 + position[id] * (BOX_W + GAP_X);
            boxes.insert(*id, (cx - BOX_W / 2.0, y, labels[id].len() as f64 * LINE_H + 10.0));
        }
        y += h + GAP_Y;
    }
    let total_h = y;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total_w:.0}\" height=\"{total_h:.0}\" viewBox=\"0 0 {total_w:.0} {total_h:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"10\">"
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&g.name));
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n");
    for &id in &drawn {
        let (x, y, _) = boxes[&id];
        for p in preds(id) {
            let (px, py, ph) = boxes[&p];
            let _ = writeln!(
                out,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>",
                px + BOX_W / 2.0,
                py + ph,
                x + BOX_W / 2.0,
                y
            );
        }
    }
    for &id in &drawn {
        let (x, y, h) = boxes[&id];
        let fill = match g.op(id).kind() {
            "input" => "#e8f0fe",
            "conv2d" | "dense" => "#fff4e0",
            _ => "#f5f5f5",
        };
        let _ = writeln!(out, "<g id=\"n{}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{BOX_W}\" height=\"{h:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"#333\"/>", id.index());
        for (i, line) in labels[&id].iter().enumerate() {
            let weight = if i == 0 || (i == 1 && line.starts_with(g.op(id).kind())) { " font-weight=\"bold\"" } else { "" };
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\"{weight}>{}</text>",
                x + BOX_W / 2.0,
                y + 15.0 + i as f64 * LINE_H,
                escape(line)
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    Ok(out)
}

//! SVG drawings of a graph, laid out in-process (no Graphviz needed).
//!
//! A layered (Sugiyama-style) layout kept linear-ish in the graph's size, so
//! that the zoo's ~800-node graphs draw in milliseconds:
//! 1. layers: a node's layer is its longest path from a source; a source that
//!    is not on the longest path (a labels input) moves down to just above its
//!    first user;
//! 2. an edge spanning several layers is routed through one dummy point per
//!    layer it crosses (unless that would exceed `MAX_DUMMIES` points);
//! 3. order within layers: barycenter sweeps, down, up, down;
//! 4. x positions: each box pulled toward the mean x of its neighbours in the
//!    previous layer (then the next), overlaps resolved by packing from both
//!    sides and averaging, which keeps the order and the spacing;
//! 5. edges are vertical Bézier curves through their dummy points.
//!
//! Boxes carry the DOT labels (`dot::label_lines`), headed by the node's
//! innermost block (`[layer3.1]`) since the drawing has no cluster frames.
//! (layout-rs 0.1.3 was tried first; docs/ir.md says why it is not used.)

use crate::dot::{label_lines, node_blocks, node_costs};
use crate::graph::{Graph, NodeId};
use std::collections::HashMap;
use std::fmt::Write;
use thiserror::Error;

/// Drawings of more nodes than this are refused: they would be unreadable
/// and many megabytes.
pub const MAX_SVG_NODES: usize = 20_000;

/// Above this many dummy points, long edges are drawn straight instead of
/// routed between the boxes (bounding the work for pathological graphs).
pub const MAX_DUMMIES: usize = 200_000;

#[derive(Debug, Error)]
pub enum SvgError {
    #[error("the graph has {0} nodes to draw; SVG drawings are limited to {MAX_SVG_NODES} (use --format dot with Graphviz)")]
    TooLarge(usize),
    #[error("the graph has a cycle at {0}: it cannot be laid out (run the verifier)")]
    Cycle(String),
}

const LINE_H: f64 = 13.0;
const CHAR_W: f64 = 6.0;
const PAD: f64 = 8.0;
const GAP_X: f64 = 24.0;
const GAP_DUMMY: f64 = 10.0;
const GAP_Y: f64 = 40.0;
const MARGIN: f64 = 20.0;

/// One thing placed in a layer.
enum Item {
    /// `head` is the index of the op's line (1 when a block line precedes it).
    Node {
        id: NodeId,
        lines: Vec<String>,
        head: usize,
    },
    Output(usize),
    Dummy,
}

struct Layout {
    items: Vec<Item>,
    layer: Vec<usize>,
    preds: Vec<Vec<usize>>,
    succs: Vec<Vec<usize>>,
    width: Vec<f64>,
    height: Vec<f64>,
}

impl Layout {
    fn push(&mut self, item: Item, width: f64, height: f64) -> usize {
        self.items.push(item);
        self.layer.push(0);
        self.preds.push(Vec::new());
        self.succs.push(Vec::new());
        self.width.push(width);
        self.height.push(height);
        self.items.len() - 1
    }

    fn is_dummy(&self, i: usize) -> bool {
        matches!(self.items[i], Item::Dummy)
    }
}

/// XML text: markup characters escaped, characters XML 1.0 forbids replaced.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || matches!(c, '\u{fffe}' | '\u{ffff}') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The graph as a standalone SVG document: a box per op (parameters folded
/// into their users, as in DOT), an ellipse per graph output, arrows along the
/// data flow. Fails on a cyclic graph and on more than `MAX_SVG_NODES` drawn nodes.
pub fn to_svg(g: &Graph) -> Result<String, SvgError> {
    let order = g
        .topo_order()
        .map_err(|id| SvgError::Cycle(g.describe(id)))?;
    let drawn: Vec<NodeId> = order
        .into_iter()
        .filter(|&id| g.op(id).param_name().is_none())
        .collect();
    if drawn.len() > MAX_SVG_NODES {
        return Err(SvgError::TooLarge(drawn.len()));
    }
    let costs = node_costs(g);
    let blocks = node_blocks(g);

    let mut lay = Layout {
        items: Vec::new(),
        layer: Vec::new(),
        preds: Vec::new(),
        succs: Vec::new(),
        width: Vec::new(),
        height: Vec::new(),
    };
    let mut item_of: HashMap<NodeId, usize> = HashMap::new();
    for &id in &drawn {
        let (params, macs) = costs.get(&id).copied().unwrap_or_default();
        let mut lines = label_lines(g, id, params, macs);
        let mut head = 0;
        if let Some(b) = blocks.get(&id).and_then(|p| p.last()) {
            lines.insert(0, format!("[{b}]"));
            head = 1;
        }
        let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
        let (w, h) = (
            (widest * CHAR_W + 2.0 * PAD).clamp(60.0, 480.0),
            lines.len() as f64 * LINE_H + PAD,
        );
        let i = lay.push(Item::Node { id, lines, head }, w, h);
        item_of.insert(id, i);
    }
    for &id in &drawn {
        let to = item_of[&id];
        for v in g.operands(id) {
            if let Some(&from) = item_of.get(&v.node) {
                lay.preds[to].push(from);
                lay.succs[from].push(to);
            }
        }
    }
    for (i, v) in g.outputs().iter().enumerate() {
        let to = lay.push(Item::Output(i), 70.0, 22.0);
        if let Some(&from) = item_of.get(&v.node) {
            lay.preds[to].push(from);
            lay.succs[from].push(to);
        }
    }
    let real = lay.items.len();

    // 1. Layers: items are in topological order, so one pass suffices; then
    // sources move down next to their first user.
    for i in 0..real {
        lay.layer[i] = lay.preds[i]
            .iter()
            .map(|&p| lay.layer[p] + 1)
            .max()
            .unwrap_or(0);
    }
    for i in (0..real).rev() {
        if lay.preds[i].is_empty() {
            if let Some(first_use) = lay.succs[i].iter().map(|&s| lay.layer[s]).min() {
                lay.layer[i] = first_use - 1;
            }
        }
    }

    // 2. Dummy points for long edges.
    let spans: usize = (0..real)
        .flat_map(|i| lay.succs[i].iter().map(move |&s| (i, s)))
        .map(|(i, s)| lay.layer[s] - lay.layer[i] - 1)
        .sum();
    if spans <= MAX_DUMMIES {
        for from in 0..real {
            for k in 0..lay.succs[from].len() {
                let to = lay.succs[from][k];
                if lay.layer[to] - lay.layer[from] < 2 {
                    continue;
                }
                let mut prev = from;
                for l in lay.layer[from] + 1..lay.layer[to] {
                    let d = lay.push(Item::Dummy, 0.0, 0.0);
                    lay.layer[d] = l;
                    lay.preds[d].push(prev);
                    if prev == from {
                        lay.succs[from][k] = d;
                    } else {
                        lay.succs[prev].push(d);
                    }
                    prev = d;
                }
                lay.succs[prev].push(to);
                let slot = lay.preds[to]
                    .iter()
                    .position(|&p| p == from)
                    .expect("the edge being split");
                lay.preds[to][slot] = prev;
            }
        }
    }

    // 3. Order within layers.
    let depth = lay.layer.iter().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for i in 0..lay.items.len() {
        layers[lay.layer[i]].push(i);
    }
    let mut index = vec![0.0f64; lay.items.len()];
    let renumber = |row: &[usize], index: &mut [f64]| {
        row.iter()
            .enumerate()
            .for_each(|(k, &i)| index[i] = k as f64)
    };
    for row in &layers {
        renumber(row, &mut index);
    }
    for sweep in 0..3 {
        let down = sweep % 2 == 0;
        let rows: Vec<usize> = if down {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        for r in rows {
            let mut keyed: Vec<(f64, f64, usize)> = layers[r]
                .iter()
                .map(|&i| {
                    let near = if down { &lay.preds[i] } else { &lay.succs[i] };
                    let key = if near.is_empty() {
                        index[i]
                    } else {
                        near.iter().map(|&n| index[n]).sum::<f64>() / near.len() as f64
                    };
                    (key, index[i], i)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            layers[r] = keyed.into_iter().map(|(_, _, i)| i).collect();
            renumber(&layers[r], &mut index);
        }
    }

    // 4. x positions (box centres).
    let sep = |a: usize, b: usize| {
        let gap = if lay.is_dummy(a) || lay.is_dummy(b) {
            GAP_DUMMY
        } else {
            GAP_X
        };
        (lay.width[a] + lay.width[b]) / 2.0 + gap
    };
    let mut x = vec![0.0f64; lay.items.len()];
    for row in &layers {
        for k in 1..row.len() {
            x[row[k]] = x[row[k - 1]] + sep(row[k - 1], row[k]);
        }
        let mid = row.last().map_or(0.0, |&i| x[i] / 2.0);
        row.iter().for_each(|&i| x[i] -= mid);
    }
    for pass in 0..4 {
        let down = pass % 2 == 0;
        let rows: Vec<usize> = if down {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        for r in rows {
            let row = &layers[r];
            let desired: Vec<f64> = row
                .iter()
                .map(|&i| {
                    let near = if down { &lay.preds[i] } else { &lay.succs[i] };
                    if near.is_empty() {
                        x[i]
                    } else {
                        near.iter().map(|&n| x[n]).sum::<f64>() / near.len() as f64
                    }
                })
                .collect();
            let n = row.len();
            let mut right = desired.clone();
            for k in 1..n {
                right[k] = right[k].max(right[k - 1] + sep(row[k - 1], row[k]));
            }
            let mut left = desired;
            for k in (0..n.saturating_sub(1)).rev() {
                left[k] = left[k].min(left[k + 1] - sep(row[k], row[k + 1]));
            }
            for k in 0..n {
                x[row[k]] = (left[k] + right[k]) / 2.0;
            }
        }
    }
    let min_x = (0..lay.items.len())
        .map(|i| x[i] - lay.width[i] / 2.0)
        .fold(f64::INFINITY, f64::min);
    let shift = if min_x.is_finite() {
        MARGIN - min_x
    } else {
        MARGIN
    };
    x.iter_mut().for_each(|v| *v += shift);
    let total_w = (0..lay.items.len())
        .map(|i| x[i] + lay.width[i] / 2.0)
        .fold(0.0, f64::max)
        + MARGIN;

    // y positions (tops of the layers).
    let mut top = vec![0.0f64; depth];
    let mut row_h = vec![0.0f64; depth];
    let mut y = MARGIN;
    for r in 0..depth {
        top[r] = y;
        row_h[r] = layers[r].iter().map(|&i| lay.height[i]).fold(0.0, f64::max);
        y += row_h[r] + GAP_Y;
    }
    let total_h = y - GAP_Y + MARGIN;

    // 5. Drawing.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total_w:.0}\" height=\"{total_h:.0}\" viewBox=\"0 0 {total_w:.0} {total_h:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"10\">"
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&g.name));
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n");
    out.push_str("<g fill=\"none\" stroke=\"#777\" stroke-width=\"1\">\n");
    for from in 0..real {
        for &first in &lay.succs[from] {
            let (mut px, mut py) = (x[from], top[lay.layer[from]] + lay.height[from]);
            let mut d = format!("M{px:.1},{py:.1}");
            let mut next = first;
            loop {
                let (nx, ny) = (x[next], top[lay.layer[next]]);
                let my = (py + ny) / 2.0;
                let _ = write!(d, " C{px:.1},{my:.1} {nx:.1},{my:.1} {nx:.1},{ny:.1}");
                if !lay.is_dummy(next) {
                    break;
                }
                (px, py) = (nx, ny + row_h[lay.layer[next]]);
                let _ = write!(d, " L{px:.1},{py:.1}");
                next = lay.succs[next][0];
            }
            let _ = writeln!(out, "<path d=\"{d}\" marker-end=\"url(#arrow)\"/>");
        }
    }
    out.push_str("</g>\n");
    for i in 0..real {
        let (cx, y, w, h) = (x[i], top[lay.layer[i]], lay.width[i], lay.height[i]);
        match &lay.items[i] {
            Item::Node { id, lines, head } => {
                let kind = g.op(*id).kind();
                let fill = match kind {
                    "input" => "#e8f0fe",
                    "conv2d" | "dense" => "#fff4e0",
                    _ => "#f5f5f5",
                };
                let _ = writeln!(
                    out,
                    "<g id=\"n{}\"><title>{}</title><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"#333\"/>",
                    id.index(),
                    escape(&g.describe(*id)),
                    cx - w / 2.0
                );
                for (k, line) in lines.iter().enumerate() {
                    let style = if k == *head {
                        " font-weight=\"bold\""
                    } else if k < *head {
                        " fill=\"#666\" font-style=\"italic\""
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        out,
                        "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\"{style}>{}</text>",
                        y + PAD / 2.0 + LINE_H * (k as f64 + 0.8),
                        escape(line)
                    );
                }
                out.push_str("</g>\n");
            }
            Item::Output(k) => {
                let _ = writeln!(
                    out,
                    "<g id=\"out{k}\"><ellipse cx=\"{cx:.1}\" cy=\"{:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"#e8f5e9\" stroke=\"#333\"/><text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">output {k}</text></g>",
                    y + h / 2.0,
                    w / 2.0,
                    h / 2.0,
                    y + h / 2.0 + 3.5
                );
            }
            Item::Dummy => {}
        }
    }
    out.push_str("</svg>\n");
    Ok(out)
}

//! The memory plan: every value gets a view (storage, offset, batch stride);
//! storages get arena offsets by first-fit packing of their liveness intervals.
//!
//! - Elementwise ops (relu, inference batch norm, add) write in place over an
//!   operand whose storage dies at that node.
//! - Reshape, flatten and dropout are views of their operand (a copy only when
//!   the operand is a strided slice and the batch axis changes).
//! - A channel concat owns one storage; producers whose value is used once in
//!   it write straight into their slice (their view has the concat's batch stride).

use kiln_ir::{Graph, NodeId, Op, Value};
use std::collections::HashMap;

/// Alignment of every storage in the arena, in floats (one cache line).
const ALIGN: usize = 16;

/// Floats of slack after the arena and the constant pool: a GEMM tile may
/// read up to this far past the end of its input (columns it then drops,
/// see codegen/gemm.rs), and the reads must stay inside the allocation.
pub const READ_SLACK: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    /// An arena storage (index into `Plan::storages`).
    Storage(usize),
    /// A parameter read as data, materialised into the constant pool on demand.
    Param(NodeId),
}

/// Where one value lives: its home, the element offset inside it, and the
/// distance between batch items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub home: Home,
    pub off: usize,
    pub bstride: usize,
}

#[derive(Clone, Debug)]
pub struct Storage {
    pub size: usize,
    pub first: usize,
    pub last: usize,
    pub offset: usize,
    values: Vec<Value>,
}

/// How a node is realised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Realise {
    /// Needs its own kernel(s).
    Kernel,
    /// The output is a view of the operand: nothing to run.
    Alias,
    /// A view that needs a copy first (strided operand).
    CopyThenView,
    /// Concat whose operands all write into it: nothing to run.
    Nothing,
}

pub struct Plan {
    pub order: Vec<NodeId>,
    pub views: HashMap<Value, View>,
    pub storages: Vec<Storage>,
    pub realise: HashMap<NodeId, Realise>,
    /// Concat operands already in place: (concat node, operand slot).
    pub in_place_concat: std::collections::HashSet<(NodeId, usize)>,
    pub arena_len: usize,
}

pub fn item(shape: &[usize]) -> usize {
    shape
        .iter()
        .skip(1)
        .product::<usize>()
        .max(if shape.is_empty() { 1 } else { 0 })
}

fn writes_anywhere(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv2d(_)
            | Op::BatchNorm(_)
            | Op::Relu(_)
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::GlobalAvgPool(_)
            | Op::Lrn(_)
            | Op::Add(_)
            | Op::Dense(_)
            | Op::Softmax(_)
            | Op::Pad(_)
            | Op::Slice(_)
    )
}

pub fn plan(g: &Graph, order: Vec<NodeId>) -> Plan {
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let end = order.len() + 1;
    let shape = |v: Value| g.value_type(v).map(|t| t.shape.clone()).unwrap_or_default();
    let last_use = |v: Value| -> usize {
        if g.is_output(v) {
            return end;
        }
        g.value_uses(v)
            .iter()
            .map(|u| pos[&u.user])
            .max()
            .unwrap_or(pos[&v.node])
    };
    let mut p = Plan {
        order: order.clone(),
        views: HashMap::new(),
        storages: Vec::new(),
        realise: HashMap::new(),
        in_place_concat: Default::default(),
        arena_len: 0,
    };
    let new_storage = |p: &mut Plan, size: usize| {
        p.storages.push(Storage {
            size: size.max(1),
            first: 0,
            last: 0,
            offset: 0,
            values: Vec::new(),
        });
        p.storages.len() - 1
    };
    // Concat placement first: producers come earlier in the order.
    let mut placed: HashMap<Value, View> = HashMap::new();
    for &id in &order {
        let Op::Concat(c) = g.op(id) else { continue };
        let out = Value { node: id, port: 0 };
        let oshape = shape(out);
        if c.axis != 1 || oshape.len() < 2 {
            continue;
        }
        let inner: usize = oshape[2..].iter().product();
        let st = new_storage(&mut p, oshape.iter().product());
        p.views.insert(
            out,
            View {
                home: Home::Storage(st),
                off: 0,
                bstride: item(&oshape),
            },
        );
        let ops = g.operands(id);
        let mut start = 0;
        for (slot, v) in ops.iter().enumerate() {
            let once = ops.iter().filter(|w| *w == v).count() == 1;
            let producer = g.op(v.node);
            if once && writes_anywhere(producer) && !placed.contains_key(v) {
                placed.insert(
                    *v,
                    View {
                        home: Home::Storage(st),
                        off: start * inner,
                        bstride: item(&oshape),
                    },
                );
                p.in_place_concat.insert((id, slot));
            }
            start += shape(*v)[1];
        }
    }
    let storage_last = |p: &Plan, st: usize| {
        p.storages[st]
            .values
            .iter()
            .map(|v| last_use(*v))
            .max()
            .unwrap_or(0)
    };
    for (i, &id) in order.iter().enumerate() {
        let out = Value { node: id, port: 0 };
        let oshape = shape(out);
        let ops = g.operands(id);
        let mut realise = Realise::Kernel;
        let view = if let Some(v) = placed.get(&out) {
            *v
        } else if let Some(v) = p.views.get(&out) {
            // a concat with its own storage
            if ops
                .iter()
                .enumerate()
                .all(|(s, _)| p.in_place_concat.contains(&(id, s)))
            {
                realise = Realise::Nothing;
            }
            *v
        } else {
            match g.op(id) {
                Op::Param(_) => {
                    realise = Realise::Nothing;
                    View {
                        home: Home::Param(id),
                        off: 0,
                        bstride: item(&oshape),
                    }
                }
                Op::Dropout(_) | Op::Reshape(_) | Op::Flatten(_) => {
                    let src = p.views[&ops[0]];
                    let ishape = shape(ops[0]);
                    let contiguous =
                        src.bstride == item(&ishape) || ishape.first().copied().unwrap_or(1) <= 1;
                    let same_batch = !ishape.is_empty()
                        && !oshape.is_empty()
                        && ishape[0] == oshape[0]
                        && item(&ishape) == item(&oshape);
                    if same_batch {
                        realise = Realise::Alias;
                        src
                    } else if contiguous {
                        realise = Realise::Alias;
                        View {
                            bstride: item(&oshape),
                            ..src
                        }
                    } else {
                        realise = Realise::CopyThenView;
                        let st = new_storage(&mut p, oshape.iter().product());
                        View {
                            home: Home::Storage(st),
                            off: 0,
                            bstride: item(&oshape),
                        }
                    }
                }
                Op::Relu(_) | Op::BatchNorm(_) | Op::Add(_) => {
                    let cands = if matches!(g.op(id), Op::Add(_)) { 2 } else { 1 };
                    let mut chosen = None;
                    for slot in 0..cands {
                        let src = p.views[&ops[slot]];
                        if let Home::Storage(st) = src.home {
                            let is_input = matches!(g.op(ops[slot].node), Op::Input(_));
                            if !is_input && storage_last(&p, st) == i {
                                chosen = Some(src);
                                break;
                            }
                        }
                    }
                    match chosen {
                        Some(v) => v,
                        None => {
                            let st = new_storage(&mut p, oshape.iter().product());
                            View {
                                home: Home::Storage(st),
                                off: 0,
                                bstride: item(&oshape),
                            }
                        }
                    }
                }
                _ => {
                    if matches!(g.op(id), Op::Input(_)) {
                        realise = Realise::Nothing;
                    }
                    let st = new_storage(&mut p, oshape.iter().product());
                    View {
                        home: Home::Storage(st),
                        off: 0,
                        bstride: item(&oshape),
                    }
                }
            }
        };
        if let Home::Storage(st) = view.home {
            let s = &mut p.storages[st];
            if s.values.is_empty() {
                s.first = if matches!(g.op(id), Op::Input(_)) {
                    0
                } else {
                    i
                };
            } else {
                s.first = s.first.min(i);
            }
            s.values.push(out);
        }
        p.views.insert(out, view);
        p.realise.insert(id, realise);
    }
    for st in 0..p.storages.len() {
        let last = storage_last(&p, st);
        let s = &mut p.storages[st];
        s.last = last.max(s.first);
    }
    // First-fit packing, largest first.
    let mut idx: Vec<usize> = (0..p.storages.len())
        .filter(|s| !p.storages[*s].values.is_empty())
        .collect();
    idx.sort_by_key(|s| std::cmp::Reverse(p.storages[*s].size));
    let mut done: Vec<usize> = Vec::new();
    for s in idx {
        let (first, last, size) = (p.storages[s].first, p.storages[s].last, p.storages[s].size);
        let mut busy: Vec<(usize, usize)> = done
            .iter()
            .map(|d| &p.storages[*d])
            .filter(|o| o.first <= last && first <= o.last)
            .map(|o| (o.offset, o.offset + o.size))
            .collect();
        busy.sort();
        let mut off = 0;
        for (b0, b1) in busy {
            if off + size <= b0 {
                break;
            }
            off = off.max(b1.div_ceil(ALIGN) * ALIGN);
        }
        p.storages[s].offset = off;
        p.arena_len = p.arena_len.max(off + size);
        done.push(s);
    }
    p.arena_len += READ_SLACK;
    p
}

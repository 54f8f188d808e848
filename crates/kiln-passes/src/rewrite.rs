//! Helpers that rewrites share: use counts, parameter access, fresh names,
//! building nodes, erasing what became dead.

use crate::pass::{Context, PassError};
use kiln_ir::{Graph, NodeId, Op, Tensor, Value};

/// The only use of `v` as `(user, slot)`, or `None` when `v` has another use
/// or is a graph output.
pub fn single_use(g: &Graph, v: Value) -> Option<(NodeId, u32)> {
    if g.use_count(v) != 1 {
        return None;
    }
    g.value_uses(v).first().map(|u| (u.user, u.slot))
}

/// A sentence for "why `v` cannot be absorbed": how many uses it has.
pub fn uses_reason(g: &Graph, v: Value, what: &str) -> String {
    let n = g.value_uses(v).len();
    if g.is_output(v) {
        return format!("{what} is a graph output");
    }
    format!("{what} has {n} users")
}

/// The parameter name of value `v`, when `v` is a parameter node.
pub fn param_name(g: &Graph, v: Value) -> Option<&str> {
    g.op(v.node).param_name()
}

/// The tensor of parameter value `v`, read for the rewrite of `user`.
/// Fails when the store lacks it or holds another shape.
pub fn param_tensor<'a>(g: &Graph, cx: &'a Context, v: Value, user: NodeId) -> Result<&'a Tensor, PassError> {
    let name = param_name(g, v).expect("callers check the operand is a parameter");
    let node = g.describe(user);
    let t = cx.params.get(name).ok_or_else(|| PassError::MissingParam { param: name.into(), node: node.clone() })?;
    let expected = &g.value_type(v).expect("live value").shape;
    if &t.shape != expected || t.data.len() != expected.iter().product::<usize>() {
        return Err(PassError::ParamShape {
            param: name.into(),
            node,
            expected: expected.clone(),
            found: t.shape.clone(),
        });
    }
    Ok(t)
}

/// `base` if neither the graph nor the store uses it, else `base.2`, `base.3`, ...
pub fn fresh_name(g: &Graph, cx: &Context, base: &str) -> String {
    let taken = |n: &str| g.find_param(n).is_some() || cx.params.contains(n);
    if !taken(base) {
        return base.to_string();
    }
    (2..).map(|i| format!("{base}.{i}")).find(|n| !taken(n)).expect("an unbounded range finds a free name")
}

/// `conv1.weight` -> `conv1`: the layer prefix of a parameter name.
pub fn layer_of(param: &str) -> &str {
    param.strip_suffix(".weight").unwrap_or(param)
}

/// Adds a parameter node under a fresh name derived from `base`, storing `t`
/// in the weights when `store` is true (a pass rewriting a graph without
/// weights adds the node only).
pub fn new_param(g: &mut Graph, cx: &mut Context, base: &str, t: Tensor, store: bool) -> Value {
    let name = fresh_name(g, cx, base);
    let v = g.add_param(name.clone(), t.ty());
    if store {
        cx.params.insert(name, t);
    }
    v
}

/// Adds a node whose output types come from the op's inference; a failure
/// is a bug in the pass, reported against `at`.
pub fn build(g: &mut Graph, at: &str, op: impl Into<Op>, operands: &[Value]) -> Result<Value, PassError> {
    g.add(op, operands).map_err(|source| PassError::Rewrite { node: at.to_string(), source })
}

/// Replaces node `id`'s op and operands, re-inferring its output types.
pub fn rebuild(g: &mut Graph, id: NodeId, op: Op, operands: &[Value]) -> Result<(), PassError> {
    let types: Vec<kiln_ir::TensorType> =
        operands.iter().map(|v| g.value_type(*v).expect("live operand").clone()).collect();
    let refs: Vec<&kiln_ir::TensorType> = types.iter().collect();
    let outputs = op.def().infer(&refs).map_err(|message| PassError::Rewrite {
        node: g.describe(id),
        source: kiln_ir::IrError::Build { op: op.kind(), message },
    })?;
    let node = g.node_mut(id).expect("live node");
    node.op = op;
    node.outputs = outputs;
    g.set_operands(id, operands);
    Ok(())
}

/// Removes `id` if nothing uses it and it is not a graph output nor a graph
/// input, then does the same for its operands. Parameters removed this way
/// are dropped from the weights too (no node reads them any more). Returns
/// how many nodes were removed.
pub fn erase_dead(g: &mut Graph, cx: &mut Context, id: NodeId) -> usize {
    let mut stack = vec![id];
    let mut removed = 0;
    while let Some(id) = stack.pop() {
        if !g.contains(id) || !g.uses(id).is_empty() || g.outputs().iter().any(|o| o.node == id) {
            continue;
        }
        if g.op(id).input_name().is_some() {
            continue;
        }
        let operands = g.operands(id);
        if let Some(name) = g.op(id).param_name() {
            cx.params.remove(name);
        }
        g.remove_node(id);
        removed += 1;
        stack.extend(operands.into_iter().map(|v| v.node));
    }
    removed
}

/// Redirects every use of `from` to `to`, then erases what became dead from `from`.
pub fn replace_and_erase(g: &mut Graph, cx: &mut Context, from: Value, to: Value) -> usize {
    g.replace_all_uses(from, to);
    erase_dead(g, cx, from.node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::ops::Relu;
    use kiln_ir::{ParamStore, TensorType};

    #[test]
    fn fresh_names_avoid_graph_and_store() {
        let mut g = Graph::new("t");
        g.add_param("w.folded", TensorType::f32([1]));
        let mut store = ParamStore::new();
        store.insert("w.folded.2", Tensor::zeros(&[1]));
        let cx = Context::new(store);
        assert_eq!(fresh_name(&g, &cx, "v"), "v");
        assert_eq!(fresh_name(&g, &cx, "w.folded"), "w.folded.3");
        assert_eq!(layer_of("layer1.0.conv1.weight"), "layer1.0.conv1");
        assert_eq!(layer_of("gamma"), "gamma");
    }

    #[test]
    fn erase_dead_removes_chains_and_drops_weights_but_keeps_inputs() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32([2]));
        let w = g.add_param("w", TensorType::f32([2]));
        let a = g.add(Relu {}, &[w]).unwrap();
        let b = g.add(Relu {}, &[a]).unwrap();
        let live = g.add(Relu {}, &[x]).unwrap();
        g.set_outputs(vec![live]);
        let mut store = ParamStore::new();
        store.insert("w", Tensor::zeros(&[2]));
        let mut cx = Context::new(store);
        assert_eq!(erase_dead(&mut g, &mut cx, b.node), 3);
        assert!(!cx.params.contains("w"));
        assert_eq!(g.node_count(), 2);
        // A used node is kept, an input is kept even unused.
        assert_eq!(erase_dead(&mut g, &mut cx, live.node), 0);
        g.set_outputs(vec![g.add(Relu {}, &[x]).unwrap()]);
        assert_eq!(erase_dead(&mut g, &mut cx, live.node), 1);
        assert!(g.contains(x.node));
    }

    #[test]
    fn single_use_counts_graph_outputs() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32([2]));
        let a = g.add(Relu {}, &[x]).unwrap();
        let b = g.add(Relu {}, &[a]).unwrap();
        g.set_outputs(vec![b]);
        assert_eq!(single_use(&g, a), Some((b.node, 0)));
        assert_eq!(single_use(&g, b), None);
        assert_eq!(uses_reason(&g, b, "its output"), "its output is a graph output");
        g.set_outputs(vec![b, a]);
        assert_eq!(single_use(&g, a), None);
    }
}

//! `const-fold`: constant folding.

use super::{fresh_name, param};
use crate::pass::{Context, Pass, PassError, Report};
use kiln_ir::{Graph, NodeId, Tensor, Value};
use std::collections::{HashMap, HashSet};

/// Replaces every maximal subgraph whose inputs are all parameters by
/// parameters holding its values, computed with the reference interpreter.
/// A new parameter is named after the first parameter its subgraph reads and
/// the op that produced it (`fc.weight.relu`, made fresh if taken). Only the
/// values other nodes read (or that are graph outputs) become parameters;
/// the folded nodes are then dead and removed, with the weights only they read.
/// Needs the weights of the parameters it folds ([`PassError::MissingParam`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConstFold;

/// The first parameter `id` reads, following operand 0 down the subgraph.
fn root_param(g: &Graph, mut id: NodeId) -> String {
    loop {
        if let Some(name) = g.op(id).param_name() {
            return name.to_string();
        }
        match g.operands(id).first() {
            Some(v) => id = v.node,
            None => return "const".into(),
        }
    }
}

impl Pass for ConstFold {
    fn name(&self) -> &str {
        "const-fold"
    }

    fn run(&self, g: &mut Graph, cx: &mut Context) -> Result<Report, PassError> {
        let mut report = Report::new();
        report.add("folded", "node", 0);
        let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
        let mut constant: HashSet<NodeId> = HashSet::new();
        for &id in &order {
            let op = g.op(id);
            let is_const = if op.def().is_source() {
                op.param_name().is_some()
            } else {
                g.operands(id).iter().all(|v| constant.contains(&v.node))
            };
            if is_const {
                constant.insert(id);
            }
        }
        let is_folded =
            |g: &Graph, id: NodeId| constant.contains(&id) && !g.op(id).def().is_source();
        // The folded values that something outside the constant subgraphs reads.
        let mut frontier: Vec<Value> = Vec::new();
        for &id in &order {
            if !is_folded(g, id) {
                continue;
            }
            for port in 0..g.node(id).expect("live node").outputs.len() as u32 {
                let v = Value { node: id, port };
                let read_outside = g.value_uses(v).iter().any(|u| !constant.contains(&u.user));
                if read_outside || g.is_output(v) {
                    frontier.push(v);
                }
            }
        }
        if frontier.is_empty() {
            return Ok(report);
        }
        // Parameters that folded nodes read: those left unread after folding go.
        let read_by_folded: HashSet<NodeId> = order
            .iter()
            .copied()
            .filter(|&id| {
                g.op(id).param_name().is_some() && g.uses(id).iter().any(|u| is_folded(g, u.user))
            })
            .collect();
        let mut values: HashMap<NodeId, Vec<Tensor>> = HashMap::new();
        for &id in &order {
            if !constant.contains(&id) {
                continue;
            }
            if let Some(name) = g.op(id).param_name() {
                let t = param(cx, g, name, g.uses(id).first().map_or(id, |u| u.user))?;
                values.insert(id, vec![t.clone()]);
                continue;
            }
            let operands = g.operands(id);
            let args: Vec<&Tensor> = operands
                .iter()
                .map(|v| &values[&v.node][v.port as usize])
                .collect();
            let out =
                kiln_interp::eval_op(g.op(id), &args).map_err(|source| PassError::Interp {
                    node: g.describe(id),
                    source,
                })?;
            values.insert(id, out);
        }
        for v in frontier {
            let desc = g.describe(v.node);
            let mut base = format!("{}.{}", root_param(g, v.node), g.op(v.node).kind());
            if v.port > 0 {
                base.push_str(&format!(".{}", v.port));
            }
            let t = values[&v.node][v.port as usize].clone();
            let name = fresh_name(g, cx, &base);
            let p = g.add_param(name.clone(), t.ty());
            cx.params.insert(name.clone(), t);
            g.replace_all_uses(v, p);
            report.count("folded", "node");
            report.changed(desc, format!("became parameter @{name}"));
        }
        // Every folded node is now read by folded nodes only: remove them from
        // the last up, then the parameters nothing reads any more.
        for &id in order.iter().rev() {
            if is_folded(g, id)
                && g.uses(id).is_empty()
                && !g.outputs().iter().any(|o| o.node == id)
            {
                g.remove_node(id);
            }
        }
        for id in order {
            let Some(name) = g
                .node(id)
                .and_then(|n| n.op.param_name())
                .map(str::to_string)
            else {
                continue;
            };
            if read_by_folded.contains(&id)
                && g.uses(id).is_empty()
                && !g.outputs().iter().any(|o| o.node == id)
            {
                g.remove_node(id);
                cx.params.remove(&name);
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::ops::{Add, Relu, Reshape};
    use kiln_ir::{ParamStore, TensorType};

    #[test]
    fn folds_parameter_only_subgraphs_into_one_parameter() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32([2, 2]));
        let w = g.add_param("w", TensorType::f32([4]));
        let r = g.add(Reshape { shape: vec![2, 2] }, &[w]).unwrap();
        let c = g.add(Relu {}, &[r]).unwrap();
        let y = g.add(Add {}, &[x, c]).unwrap();
        g.set_outputs(vec![y]);
        let mut store = ParamStore::new();
        store.insert(
            "w",
            Tensor::new(vec![4], vec![1.0, -2.0, 3.0, -4.0]).unwrap(),
        );
        let mut cx = Context::new(store);
        let report = ConstFold.run(&mut g, &mut cx).unwrap();
        assert_eq!(report.to_string(), "folded 1 node");
        kiln_ir::verify(&g).unwrap();
        assert_eq!(g.node_count(), 3);
        let folded = cx.params.get("w.relu").expect("the folded parameter");
        assert_eq!(folded.shape, [2, 2]);
        assert_eq!(folded.data, [1.0, 0.0, 3.0, 0.0]);
        assert!(!cx.params.contains("w"), "the only reader of w was folded");
        assert_eq!(
            ConstFold.run(&mut g, &mut cx).unwrap().to_string(),
            "folded 0 nodes"
        );
    }

    #[test]
    fn missing_weights_are_an_error_naming_the_parameter() {
        let mut g = Graph::new("t");
        let w = g.add_param("w", TensorType::f32([4]));
        let r = g.add(Relu {}, &[w]).unwrap();
        g.set_outputs(vec![r]);
        let e = ConstFold.run(&mut g, &mut Context::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "relu #1 (@w): parameter @w is not in the weights"
        );
    }
}

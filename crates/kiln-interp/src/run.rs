//! The driver: checks the graph, the weights and the inputs, then evaluates
//! the nodes in `Graph::topo_order()`.

use crate::error::InterpError;
use crate::kernel::{eval_node, well_formed};
use kiln_ir::{verify, verify_params, Graph, NodeId, Op, ParamStore, Tensor, Value};
use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Named input tensors: a slice, array or `Vec` of `(name, tensor)` pairs, or
/// a map from name to tensor (tensors owned or borrowed).
pub trait Inputs {
    /// The `(name, tensor)` pairs, in the caller's order.
    fn entries(&self) -> Vec<(&str, &Tensor)>;
}

impl<S: AsRef<str>, T: Borrow<Tensor>> Inputs for [(S, T)] {
    fn entries(&self) -> Vec<(&str, &Tensor)> {
        self.iter().map(|(s, t)| (s.as_ref(), t.borrow())).collect()
    }
}

impl<S: AsRef<str>, T: Borrow<Tensor>, const N: usize> Inputs for [(S, T); N] {
    fn entries(&self) -> Vec<(&str, &Tensor)> {
        self[..].entries()
    }
}

impl<S: AsRef<str>, T: Borrow<Tensor>> Inputs for Vec<(S, T)> {
    fn entries(&self) -> Vec<(&str, &Tensor)> {
        self[..].entries()
    }
}

impl<S: AsRef<str>, T: Borrow<Tensor>, H> Inputs for HashMap<S, T, H> {
    fn entries(&self) -> Vec<(&str, &Tensor)> {
        self.iter().map(|(s, t)| (s.as_ref(), t.borrow())).collect()
    }
}

impl<S: AsRef<str>, T: Borrow<Tensor>> Inputs for BTreeMap<S, T> {
    fn entries(&self) -> Vec<(&str, &Tensor)> {
        self.iter().map(|(s, t)| (s.as_ref(), t.borrow())).collect()
    }
}

/// Runs the graph and returns its outputs, in the order of `Graph::outputs()`.
///
/// Before evaluating anything it checks, in this order: the graph
/// (`kiln_ir::verify`), the weights (`kiln_ir::verify_params`: every
/// parameter present with its declared shape), and the inputs (each graph
/// input given exactly once with exactly its declared shape, no name the
/// graph does not have). Each check's error names what is wrong and where.
/// Intermediate values are dropped as soon as their last user has run.
pub fn run<I: Inputs + ?Sized>(
    g: &Graph,
    params: &ParamStore,
    inputs: &I,
) -> Result<Vec<Tensor>, InterpError> {
    let values = evaluate(g, params, inputs, false)?;
    Ok(g.outputs()
        .iter()
        .map(|v| values[&v.node][v.port as usize].clone().into_owned())
        .collect())
}

/// Runs the graph like [`run`] and returns every value of every node
/// (inputs and parameters included), for debugging and for comparing the
/// intermediate values of a graph before and after a pass.
pub fn run_all<I: Inputs + ?Sized>(
    g: &Graph,
    params: &ParamStore,
    inputs: &I,
) -> Result<BTreeMap<Value, Tensor>, InterpError> {
    let values = evaluate(g, params, inputs, true)?;
    let mut all = BTreeMap::new();
    for (node, outs) in values {
        for (port, t) in outs.into_iter().enumerate() {
            all.insert(
                Value {
                    node,
                    port: port as u32,
                },
                t.into_owned(),
            );
        }
    }
    Ok(all)
}

/// The values of the evaluated nodes, one tensor per output port. Inputs and
/// parameters are borrowed from the caller rather than copied.
type Values<'a> = HashMap<NodeId, Vec<Cow<'a, Tensor>>>;

fn evaluate<'a, I: Inputs + ?Sized>(
    g: &Graph,
    params: &'a ParamStore,
    inputs: &'a I,
    keep_all: bool,
) -> Result<Values<'a>, InterpError> {
    verify(g).map_err(InterpError::InvalidGraph)?;
    verify_params(g, params).map_err(InterpError::Weights)?;
    let given = bind_inputs(g, inputs)?;

    let order = g.topo_order().expect("verified graphs are acyclic");
    let pinned: HashSet<NodeId> = g.outputs().iter().map(|v| v.node).collect();
    let mut pending_uses: HashMap<NodeId, usize> =
        order.iter().map(|&id| (id, g.uses(id).len())).collect();
    let mut values: Values<'a> = HashMap::new();
    for id in order {
        let node = g.node(id).expect("live node");
        let outs: Vec<Cow<'a, Tensor>> = match &node.op {
            Op::Input(i) => vec![Cow::Borrowed(given[i.name.as_str()])],
            Op::Param(p) => {
                let t = params
                    .get(&p.name)
                    .expect("verify_params checked it is present");
                well_formed(|| format!("parameter @{}", p.name), t)?;
                vec![Cow::Borrowed(t)]
            }
            op => {
                let operands = g.operands(id);
                let args: Vec<&Tensor> = operands
                    .iter()
                    .map(|v| values[&v.node][v.port as usize].as_ref())
                    .collect();
                let outs = eval_node(&g.describe(id), op, &args, &node.outputs)?;
                if !keep_all {
                    for v in &operands {
                        let left = pending_uses
                            .get_mut(&v.node)
                            .expect("every node is counted");
                        *left -= 1;
                        if *left == 0 && !pinned.contains(&v.node) {
                            values.remove(&v.node);
                        }
                    }
                }
                outs.into_iter().map(Cow::Owned).collect()
            }
        };
        values.insert(id, outs);
    }
    Ok(values)
}

/// Matches the given tensors to the graph's inputs by name.
fn bind_inputs<'a, I: Inputs + ?Sized>(
    g: &Graph,
    inputs: &'a I,
) -> Result<HashMap<&'a str, &'a Tensor>, InterpError> {
    let declared = g.inputs();
    let mut given: HashMap<&str, &Tensor> = HashMap::new();
    for (name, t) in inputs.entries() {
        if !declared.iter().any(|(_, n, _)| *n == name) {
            let known = declared
                .iter()
                .map(|(_, n, _)| format!("\"{n}\""))
                .collect::<Vec<_>>();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            return Err(InterpError::UnknownInput {
                name: name.to_string(),
                known,
            });
        }
        if given.insert(name, t).is_some() {
            return Err(InterpError::DuplicateInput {
                name: name.to_string(),
            });
        }
    }
    for (_, name, ty) in &declared {
        let t = given.get(name).ok_or_else(|| InterpError::MissingInput {
            name: name.to_string(),
            expected: (*ty).clone(),
        })?;
        if t.shape != ty.shape {
            return Err(InterpError::InputShape {
                name: name.to_string(),
                expected: (*ty).clone(),
                found: t.shape.clone(),
            });
        }
        well_formed(|| format!("input \"{name}\""), t)?;
    }
    Ok(given)
}

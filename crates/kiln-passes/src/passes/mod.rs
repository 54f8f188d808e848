//! The built-in passes, one file each, and the helpers they share.

mod canonicalize;
mod const_fold;
mod cse;
mod dce;
mod factorize;
mod fold_bn;
mod fuse_residual;

pub use canonicalize::Canonicalize;
pub use const_fold::ConstFold;
pub use cse::Cse;
pub use dce::Dce;
pub use factorize::{Factorize, Mode as FactorizeMode, Pairing as FactorizePairing};
pub use fold_bn::FoldBn;
pub use fuse_residual::FuseResidual;

use crate::pass::{Context, PassError};
use crate::registry::{OptionDoc, Registry};
use kiln_ir::{Graph, NodeId, Tensor, Value};

/// Registers every pass of this crate.
pub(crate) fn register_builtin(r: &mut Registry) {
    type Make = fn() -> Box<dyn crate::Pass>;
    let simple: [(&str, &str, Make); 5] = [
        ("dce", "removes nodes no output depends on, and their parameters", || Box::new(Dce)),
        ("cse", "merges nodes that compute the same op on the same operands", || Box::new(Cse)),
        ("canonicalize", "removes identities: inference dropout, no-op reshape/flatten/pad/slice, one-operand concat", || {
            Box::new(Canonicalize)
        }),
        ("fold-bn", "folds inference BatchNorm into the conv or dense layer before or after it, where exact (weights scaled, bias created or merged)", || {
            Box::new(FoldBn)
        }),
        ("fuse-residual", "fuses conv + residual add (+ relu), and conv + relu, into one conv with an epilogue", || {
            Box::new(FuseResidual)
        }),
    ];
    for (name, summary, make) in simple {
        r.register_simple(name, summary, make)
            .expect("built-in names are valid and distinct");
    }
    r.register_simple("const-fold", "replaces subgraphs whose inputs are all parameters by one parameter, computed with the interpreter", || {
        Box::new(ConstFold)
    })
    .expect("built-in names are valid and distinct");
    let factorize_options = vec![
        OptionDoc::new(
            "mode",
            "structural",
            "structural (fresh layers) | fit (least squares) | exact (same output)",
        ),
        OptionDoc::new(
            "into",
            "3x3",
            "3x3 (5x5 -> 3x3 + 3x3) | 1xn (nxn -> 1xn + nx1)",
        ),
        OptionDoc::new(
            "width",
            "1",
            "middle width as a fraction of the output channels (structural, fit)",
        ),
        OptionDoc::new("iterations", "20", "alternating least-squares sweeps (fit)"),
        OptionDoc::new(
            "bn",
            "false",
            "BatchNorm + ReLU between the two convs (structural)",
        ),
        OptionDoc::new(
            "prefix",
            "",
            "only convs whose weight name starts with this",
        ),
    ];
    r.register_with_options(
        "factorize",
        "factorizes 5x5 convs into two 3x3, or nxn into 1xn + nx1 (structural, fit or exact)",
        factorize_options,
        Factorize::from_options,
    )
    .expect("built-in names are valid and distinct");
}

/// The tensor of parameter `name`, or the error naming it and its user.
pub(crate) fn param<'a>(
    cx: &'a Context,
    g: &Graph,
    name: &str,
    user: NodeId,
) -> Result<&'a Tensor, PassError> {
    cx.params.get(name).ok_or_else(|| PassError::MissingParam {
        param: name.to_string(),
        node: g.describe(user),
    })
}

/// The parameter name feeding `v`, if `v` is a parameter.
pub(crate) fn param_name(g: &Graph, v: Value) -> Option<&str> {
    g.node(v.node).and_then(|n| n.op.param_name())
}

/// A parameter name not yet used by the graph or the store: `base`, or
/// `base.1`, `base.2`, ...
pub(crate) fn fresh_name(g: &Graph, cx: &Context, base: &str) -> String {
    let taken = |n: &str| cx.params.contains(n) || g.find_param(n).is_some();
    if !taken(base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}.{i}"))
        .find(|n| !taken(n))
        .expect("some suffix is free")
}

/// True if `v` has exactly one use and is not a graph output.
pub(crate) fn single_use(g: &Graph, v: Value) -> bool {
    g.use_count(v) == 1 && !g.is_output(v)
}

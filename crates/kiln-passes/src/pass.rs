//! The pass API: the [`Pass`] trait, the [`Context`] a pass runs in, the
//! [`Report`] it returns and the [`PassError`] it fails with.

use kiln_interp::InterpError;
use kiln_ir::{Graph, IrError, ParamStore};
use serde::Serialize;
use std::fmt;
use thiserror::Error;

/// One rewrite of a graph.
///
/// Contract: `run` receives a verified graph (the [`PassManager`] checks it
/// before the first pass) and must leave a graph that verifies, and whose
/// parameters are all in `cx.params` with their declared shapes whenever the
/// store held the graph's weights on entry. A pass keeps no state between
/// runs (hence `&self`): everything it learns goes into the [`Report`].
/// Refusing to rewrite a pattern is not an error: the pass records it with
/// [`Report::left`] and carries on. `Err` is for what stops the pass (a
/// weight it needs is missing, the interpreter failed).
///
/// [`PassManager`]: crate::PassManager
pub trait Pass {
    /// The name the pipeline text uses (`fold-bn`).
    fn name(&self) -> &str;

    /// The pass's options as pipeline text, without braces (`mode=fit,width=1`);
    /// empty when it has none. The pass manager prints the pipeline with it.
    fn options(&self) -> String {
        String::new()
    }

    /// Rewrites `g` in place; `cx` holds the weights and the seed.
    fn run(&self, g: &mut Graph, cx: &mut Context) -> Result<Report, PassError>;
}

/// What a pass runs with besides the graph.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The graph's weights. Passes read them, and create and drop parameters
    /// in it: a pass never overwrites a tensor under a name that a node still
    /// reads with other values; it writes new names (`conv1.weight.folded`).
    /// An empty store means "no weights": the graph is rewritten alone
    /// (passes that must compute with weights then fail with
    /// [`PassError::MissingParam`]).
    pub params: ParamStore,
    /// Seeds every random choice a pass makes (fresh weights of
    /// `factorize{mode=structural}`, the starting point of `mode=fit`), so a
    /// pipeline is deterministic.
    pub seed: u64,
}

impl Context {
    pub fn new(params: ParamStore) -> Context {
        Context { params, seed: 0 }
    }

    pub fn with_seed(mut self, seed: u64) -> Context {
        self.seed = seed;
        self
    }

    /// True when the store holds weights (it is not empty).
    pub fn has_weights(&self) -> bool {
        !self.params.is_empty()
    }
}

/// Why a pass stopped.
#[derive(Debug, Error)]
pub enum PassError {
    /// A weight the pass must compute with is not in the store.
    #[error("{node}: parameter @{param} is not in the weights")]
    MissingParam { param: String, node: String },

    /// A weight in the store does not have the shape the graph declares.
    #[error("{node}: parameter @{param} has shape {found:?} in the weights, the graph declares {expected:?}")]
    ParamShape {
        param: String,
        node: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// The interpreter failed while the pass computed a value (const-fold).
    #[error("{node}: evaluating it failed: {source}")]
    Interp {
        node: String,
        #[source]
        source: InterpError,
    },

    /// A node the pass built does not type-check: a bug in the pass.
    #[error("{node}: the rewrite does not type-check: {source}")]
    Rewrite {
        node: String,
        #[source]
        source: IrError,
    },

    /// Anything else, for passes written outside this crate.
    #[error("{0}")]
    Custom(String),
}

/// Whether a node was rewritten or left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Changed,
    Left,
}

/// What happened at one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detail {
    /// The node as `Graph::describe` spells it before the rewrite
    /// (`batch_norm #12 (@layer1.0.bn1.weight)`).
    pub node: String,
    pub outcome: Outcome,
    /// What was done, or why nothing was.
    pub message: String,
    /// Named figures of this node (`fit_error`, `macs_before`, ...).
    pub metrics: Vec<(String, f64)>,
}

impl Detail {
    /// Adds a named figure.
    pub fn metric(&mut self, name: impl Into<String>, value: f64) -> &mut Detail {
        self.metrics.push((name.into(), value));
        self
    }

    /// The figure called `name`, if recorded.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// A count of one kind of change: `folded 53 batch norms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub verb: String,
    /// Singular; the plural adds an `s`.
    pub noun: String,
    pub count: u64,
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.count == 1 { "" } else { "s" };
        write!(f, "{} {} {}{s}", self.verb, self.count, self.noun)
    }
}

/// A whole-graph figure before and after the pass (`params`, `macs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub name: String,
    pub before: u64,
    pub after: u64,
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use kiln_ir::cost::grouped;
        let change = if self.before == 0 {
            String::new()
        } else {
            format!(
                " ({:+.2}%)",
                100.0 * (self.after as f64 - self.before as f64) / self.before as f64
            )
        };
        write!(
            f,
            "{} {} -> {}{change}",
            self.name,
            grouped(self.before),
            grouped(self.after)
        )
    }
}

/// What a pass did: counters, whole-graph figures, per-node details, notes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub counters: Vec<Counter>,
    pub figures: Vec<Figure>,
    pub details: Vec<Detail>,
    /// Sentences about the run as a whole ("the new layers are freshly
    /// initialised: train the network").
    pub notes: Vec<String>,
    /// Set by [`Report::changed`] (and by [`Report::mark_changed`] for passes
    /// that change the graph without per-node details).
    pub changed: bool,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    /// Adds `n` to the counter `verb noun` (created at zero).
    pub fn add(&mut self, verb: &str, noun: &str, n: u64) {
        match self
            .counters
            .iter_mut()
            .find(|c| c.verb == verb && c.noun == noun)
        {
            Some(c) => c.count += n,
            None => self.counters.push(Counter {
                verb: verb.into(),
                noun: noun.into(),
                count: n,
            }),
        }
    }

    /// Adds one to the counter `verb noun`.
    pub fn count(&mut self, verb: &str, noun: &str) {
        self.add(verb, noun, 1);
    }

    /// The value of counter `verb noun` (0 if never counted).
    pub fn counter(&self, verb: &str, noun: &str) -> u64 {
        self.counters
            .iter()
            .find(|c| c.verb == verb && c.noun == noun)
            .map_or(0, |c| c.count)
    }

    /// Records a rewrite of `node` and marks the report changed.
    pub fn changed(&mut self, node: impl Into<String>, message: impl Into<String>) -> &mut Detail {
        self.changed = true;
        self.detail(node.into(), Outcome::Changed, message.into())
    }

    /// Records a pattern the pass did not rewrite, and why.
    pub fn left(&mut self, node: impl Into<String>, reason: impl Into<String>) -> &mut Detail {
        self.detail(node.into(), Outcome::Left, reason.into())
    }

    fn detail(&mut self, node: String, outcome: Outcome, message: String) -> &mut Detail {
        self.details.push(Detail {
            node,
            outcome,
            message,
            metrics: Vec::new(),
        });
        self.details.last_mut().expect("just pushed")
    }

    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    pub fn figure(&mut self, name: &str, before: u64, after: u64) {
        self.figures.push(Figure {
            name: name.into(),
            before,
            after,
        });
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The details with the given outcome.
    pub fn details_of(&self, outcome: Outcome) -> impl Iterator<Item = &Detail> {
        self.details.iter().filter(move |d| d.outcome == outcome)
    }
}

/// One line: the counters, then the figures (`folded 53 batch norms; params
/// 25,557,032 -> 25,530,472 (-0.10%)`), or `no change`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.counters.iter().map(|c| c.to_string()).collect();
        parts.extend(self.figures.iter().map(|x| x.to_string()));
        if parts.is_empty() {
            return write!(f, "{}", if self.changed { "changed" } else { "no change" });
        }
        write!(f, "{}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_accumulate_and_pluralise() {
        let mut r = Report::new();
        r.count("folded", "batch norm");
        assert_eq!(r.to_string(), "folded 1 batch norm");
        r.add("folded", "batch norm", 52);
        r.count("left", "batch norm");
        assert_eq!(r.to_string(), "folded 53 batch norms; left 1 batch norm");
        assert_eq!(r.counter("folded", "batch norm"), 53);
        assert_eq!(r.counter("fused", "conv"), 0);
    }

    #[test]
    fn details_record_outcomes_and_metrics() {
        let mut r = Report::new();
        assert!(!r.changed);
        assert_eq!(r.to_string(), "no change");
        r.left("relu #3", "not after a conv");
        assert!(!r.changed);
        r.changed("conv2d #2", "factorized")
            .metric("fit_error", 0.25);
        assert!(r.changed);
        let d = r.details_of(Outcome::Changed).next().unwrap();
        assert_eq!(d.get("fit_error"), Some(0.25));
        assert_eq!(d.get("other"), None);
        assert_eq!(r.details_of(Outcome::Left).count(), 1);
    }

    #[test]
    fn figures_show_the_relative_change() {
        let mut r = Report::new();
        r.figure("params", 2000, 1500);
        assert_eq!(r.to_string(), "params 2,000 -> 1,500 (-25.00%)");
    }
}

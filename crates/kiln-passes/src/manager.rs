//! The pass manager: runs a pipeline, verifies after every pass, times every
//! pass, and prints the IR after all passes or after named ones.

use crate::pass::{Context, Pass, PassError, Report};
use crate::pipeline::PipelineError;
use crate::registry::Registry;
use kiln_ir::{verify, verify_params, Graph, IrError};
use serde::{Serialize, Serializer};
use std::fmt;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a pipeline stopped. The variants about a pass name it and its
/// position (`index` counts from 0; messages count from 1: "#2 in the pipeline").
#[derive(Debug, Error)]
pub enum RunError {
    /// The graph given to the manager does not verify: no pass ran.
    #[error("the input graph does not verify: {0}")]
    InvalidInput(#[source] IrError),

    /// The weights given to the manager do not fit the graph: no pass ran.
    #[error("the input weights do not fit the graph: {0}")]
    InvalidWeights(#[source] IrError),

    /// `print_after` names a pass that is not in the pipeline.
    #[error("--print-after {name}: no such pass in the pipeline `{pipeline}`")]
    NoSuchPass { name: String, pipeline: String },

    /// The pass itself failed.
    #[error("pass `{pass}` (#{} in the pipeline) failed: {source}", .index + 1)]
    Pass {
        pass: String,
        index: usize,
        #[source]
        source: PassError,
    },

    /// The pass returned a graph that does not verify.
    #[error("pass `{pass}` (#{} in the pipeline) broke the graph: {source}", .index + 1)]
    Broken {
        pass: String,
        index: usize,
        #[source]
        source: IrError,
    },

    /// The pass left parameters missing from, or mis-shaped in, the weights.
    #[error("pass `{pass}` (#{} in the pipeline) broke the weights: {source}", .index + 1)]
    BrokenWeights {
        pass: String,
        index: usize,
        #[source]
        source: IrError,
    },
}

impl RunError {
    /// The name of the pass at fault, if one is.
    pub fn pass(&self) -> Option<&str> {
        match self {
            RunError::Pass { pass, .. }
            | RunError::Broken { pass, .. }
            | RunError::BrokenWeights { pass, .. } => Some(pass),
            _ => None,
        }
    }
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// One pass of a run: what it did, how long it took.
#[derive(Clone, Debug, Serialize)]
pub struct PassRun {
    pub name: String,
    /// The entry as pipeline text (`factorize{mode=fit,width=1}`).
    pub entry: String,
    pub report: Report,
    /// Time in the pass itself (serialized as seconds).
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    /// Time verifying the graph after it.
    #[serde(serialize_with = "seconds")]
    pub verify_elapsed: Duration,
    /// The IR after the pass (`kiln_ir::text::print`), when printing was
    /// asked for this pass and no callback takes it.
    pub ir: Option<String>,
}

/// A whole run: one [`PassRun`] per pass, in order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    pub passes: Vec<PassRun>,
}

impl RunReport {
    /// The run of the first pass called `name`.
    pub fn get(&self, name: &str) -> Option<&PassRun> {
        self.passes.iter().find(|p| p.name == name)
    }

    /// Time in the passes (verification excluded).
    pub fn pass_time(&self) -> Duration {
        self.passes.iter().map(|p| p.elapsed).sum()
    }
}

/// A table: pass, time, what it did.
impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .passes
            .iter()
            .map(|p| p.entry.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:<width$}  {:>10}  {:>10}  result",
            "pass", "time", "verify"
        )?;
        for p in &self.passes {
            writeln!(
                f,
                "{:<width$}  {:>10}  {:>10}  {}",
                p.entry,
                ms(p.elapsed),
                ms(p.verify_elapsed),
                p.report
            )?;
            for note in &p.report.notes {
                writeln!(f, "{:<width$}  {:>10}  {:>10}  note: {note}", "", "", "")?;
            }
        }
        Ok(())
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

enum PrintWhen {
    Never,
    AfterAll,
    After(Vec<String>),
}

type Printer = Box<dyn FnMut(&str, &Graph)>;

/// Runs passes in order over a graph and its weights.
///
/// ```
/// use kiln_passes::{Context, PassManager, Registry};
/// # fn demo(mut graph: kiln_ir::Graph, weights: kiln_ir::ParamStore) -> Result<(), Box<dyn std::error::Error>> {
/// let mut pm = PassManager::parse("fold-bn,fuse-residual,dce", &Registry::builtin())?;
/// let mut cx = Context::new(weights);
/// let run = pm.run(&mut graph, &mut cx)?;
/// println!("{run}");
/// # Ok(()) }
/// ```
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    verify: bool,
    print: PrintWhen,
    printer: Option<Printer>,
}

impl Default for PassManager {
    fn default() -> Self {
        PassManager::new()
    }
}

impl PassManager {
    /// An empty pipeline, verifying after every pass, printing nothing.
    pub fn new() -> PassManager {
        PassManager {
            passes: Vec::new(),
            verify: true,
            print: PrintWhen::Never,
            printer: None,
        }
    }

    /// The pipeline `text` made from `registry`'s passes.
    pub fn parse(text: &str, registry: &Registry) -> Result<PassManager, PipelineError> {
        let mut pm = PassManager::new();
        pm.passes = registry.parse(text)?;
        Ok(pm)
    }

    /// Appends a pass.
    pub fn add(&mut self, pass: Box<dyn Pass>) -> &mut PassManager {
        self.passes.push(pass);
        self
    }

    /// Turns the verification before the first pass and after each pass on
    /// (the default) or off.
    pub fn verify_each(mut self, on: bool) -> PassManager {
        self.verify = on;
        self
    }

    /// Prints the IR after every pass.
    pub fn print_after_all(mut self) -> PassManager {
        self.print = PrintWhen::AfterAll;
        self
    }

    /// Prints the IR after the passes with these names (each must be in the pipeline).
    pub fn print_after<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> PassManager {
        self.print = PrintWhen::After(names.into_iter().map(Into::into).collect());
        self
    }

    /// Hands the graph to `f(pass name, graph)` where printing is asked,
    /// instead of collecting the text into [`PassRun::ir`].
    pub fn on_print(mut self, f: impl FnMut(&str, &Graph) + 'static) -> PassManager {
        self.printer = Some(Box::new(f));
        self
    }

    /// The pipeline as text; it parses back to the same passes.
    pub fn pipeline(&self) -> String {
        self.passes
            .iter()
            .map(|p| entry(p.as_ref()))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn len(&self) -> usize {
        self.passes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passes.is_empty()
    }

    /// Runs every pass over `g` and `cx`. With verification on, the graph is
    /// checked first (and its weights, if `cx` holds any), then after each
    /// pass; the first failure stops the run with an error naming the pass.
    /// The graph is then left as the failing pass left it, for inspection.
    pub fn run(&mut self, g: &mut Graph, cx: &mut Context) -> Result<RunReport, RunError> {
        if let PrintWhen::After(names) = &self.print {
            if let Some(name) = names
                .iter()
                .find(|n| !self.passes.iter().any(|p| p.name() == n.as_str()))
            {
                return Err(RunError::NoSuchPass {
                    name: name.clone(),
                    pipeline: self.pipeline(),
                });
            }
        }
        let weights = cx.has_weights();
        if self.verify {
            verify(g).map_err(RunError::InvalidInput)?;
            if weights {
                verify_params(g, &cx.params).map_err(RunError::InvalidWeights)?;
            }
        }
        let mut run = RunReport::default();
        for (index, pass) in self.passes.iter().enumerate() {
            let name = pass.name().to_string();
            let start = Instant::now();
            let report = pass.run(g, cx).map_err(|source| RunError::Pass {
                pass: name.clone(),
                index,
                source,
            })?;
            let elapsed = start.elapsed();
            let start = Instant::now();
            if self.verify {
                verify(g).map_err(|source| RunError::Broken {
                    pass: name.clone(),
                    index,
                    source,
                })?;
                if weights {
                    verify_params(g, &cx.params).map_err(|source| RunError::BrokenWeights {
                        pass: name.clone(),
                        index,
                        source,
                    })?;
                }
            }
            let verify_elapsed = start.elapsed();
            let wanted = match &self.print {
                PrintWhen::Never => false,
                PrintWhen::AfterAll => true,
                PrintWhen::After(names) => names.contains(&name),
            };
            let mut ir = None;
            if wanted {
                match &mut self.printer {
                    Some(f) => f(&name, g),
                    None => ir = Some(kiln_ir::text::print(g)),
                }
            }
            run.passes.push(PassRun {
                name,
                entry: entry(pass.as_ref()),
                report,
                elapsed,
                verify_elapsed,
                ir,
            });
        }
        Ok(run)
    }
}

fn entry(p: &dyn Pass) -> String {
    let options = p.options();
    if options.is_empty() {
        p.name().to_string()
    } else {
        format!("{}{{{options}}}", p.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::ops::{Dropout, Relu};
    use kiln_ir::TensorType;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// x -> dropout -> relu -> relu, output the last relu.
    fn graph() -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32([2, 3]));
        let d = g.add(Dropout { p: 0.5 }, &[x]).unwrap();
        let a = g.add(Relu {}, &[d]).unwrap();
        let b = g.add(Relu {}, &[a]).unwrap();
        g.set_outputs(vec![b]);
        g
    }

    #[test]
    fn prints_after_the_named_passes_only() {
        let seen: Rc<RefCell<Vec<String>>> = Rc::default();
        let log = seen.clone();
        let mut pm = PassManager::parse("canonicalize,cse,dce", &Registry::builtin())
            .unwrap()
            .print_after(["cse"])
            .on_print(move |pass, g| {
                log.borrow_mut()
                    .push(format!("{pass}: {} nodes", g.node_count()))
            });
        let run = pm.run(&mut graph(), &mut Context::default()).unwrap();
        assert_eq!(*seen.borrow(), ["cse: 3 nodes"]);
        assert!(
            run.passes.iter().all(|p| p.ir.is_none()),
            "the callback took the text"
        );
        assert_eq!(
            run.get("canonicalize").unwrap().report.to_string(),
            "removed 1 identity"
        );
    }

    #[test]
    fn collects_the_ir_after_every_pass_without_a_callback() {
        let mut pm = PassManager::parse("canonicalize,dce", &Registry::builtin())
            .unwrap()
            .print_after_all();
        let mut g = graph();
        let run = pm.run(&mut g, &mut Context::default()).unwrap();
        assert_eq!(run.passes.len(), 2);
        let last = run.passes[1].ir.as_deref().unwrap();
        assert_eq!(last, kiln_ir::text::print(&g));
        assert!(!run.passes[0].ir.as_deref().unwrap().contains("dropout"));
    }

    #[test]
    fn print_after_a_pass_not_in_the_pipeline_is_refused_before_running() {
        let mut pm = PassManager::parse("dce", &Registry::builtin())
            .unwrap()
            .print_after(["cse"]);
        let mut g = graph();
        let e = pm.run(&mut g, &mut Context::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--print-after cse: no such pass in the pipeline `dce`"
        );
        assert_eq!(g.node_count(), 4, "nothing ran");
    }

    #[test]
    fn an_invalid_input_graph_is_refused_before_any_pass() {
        let mut g = graph();
        g.set_outputs(Vec::new());
        let mut pm = PassManager::parse("dce", &Registry::builtin()).unwrap();
        let e = pm.run(&mut g, &mut Context::default()).unwrap_err();
        assert!(matches!(e, RunError::InvalidInput(_)), "{e}");
        assert_eq!(e.pass(), None);
        // Without verification the manager does not look.
        let mut pm = PassManager::parse("", &Registry::builtin())
            .unwrap()
            .verify_each(false);
        assert!(pm.run(&mut g, &mut Context::default()).is_ok());
    }

    #[test]
    fn the_pipeline_prints_back_with_every_option() {
        let r = Registry::builtin();
        let pm = PassManager::parse(" fold-bn , factorize{mode=fit} ", &r).unwrap();
        let text = pm.pipeline();
        assert!(text.starts_with("fold-bn,factorize{mode=fit,"), "{text}");
        assert_eq!(PassManager::parse(&text, &r).unwrap().pipeline(), text);
        assert_eq!(pm.len(), 2);
    }
}

//! Pass filetests: `tests/passes/<pass>/*.kir` at the workspace root.
//!
//! A file is an IR graph in the text format, preceded by directives in
//! comments and followed by the expected IR:
//!
//! ```text
//! // pipeline: fold-bn,dce          (required: the pipeline to run)
//! // tolerance: 1e-5                (optional: also run the interpreter before
//! //                                  and after on random weights and inputs;
//! //                                  outputs must agree to this relative error)
//! // report: folded 1 batch norm    (optional, repeatable: a substring of the
//! //                                  pipeline's report: its summary table, then
//! //                                  `<pass>: changed|left <node>: <message>`
//! //                                  for every detail)
//! // error: unknown option          (optional: the pipeline must fail with
//! //                                  this substring; no expected IR then)
//! graph "t"
//! ...
//! output %3
//! // expected:
//! graph "t"
//! ...
//! ```
//!
//! Weights are random (`kiln_models::init_params` and `randomize_bn_stats`,
//! fixed seeds), so passes that compute with weights run for real. On a
//! mismatch the test prints a diff; `KILN_BLESS=1 cargo test -p kiln-passes
//! --test filetests` rewrites the expected sections with what the passes
//! produce (review the diff before committing it).

use kiln_ir::{Graph, ParamStore, Tensor};
use kiln_passes::{Context, PassManager, Registry, RunReport};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const EXPECTED: &str = "// expected:";
const WEIGHT_SEED: u64 = 1;
const BN_SEED: u64 = 2;

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

fn root() -> PathBuf {
    workspace().join("tests/passes")
}

/// `tests/passes/fold-bn/conv_bn.kir`, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The directives and the two halves of one file.
struct Case {
    pipeline: String,
    tolerance: Option<f32>,
    reports: Vec<String>,
    error: Option<String>,
    input: String,
    /// `None` when the file has no `// expected:` line yet.
    expected: Option<String>,
}

fn read_case(text: &str) -> Result<Case, String> {
    let (input, expected) = match text.split_once(&format!("\n{EXPECTED}\n")) {
        Some((a, b)) => (format!("{a}\n"), Some(b.to_string())),
        None => match text.strip_suffix(&format!("\n{EXPECTED}")) {
            Some(a) => (format!("{a}\n"), Some(String::new())),
            None => (text.to_string(), None),
        },
    };
    let mut case = Case {
        pipeline: String::new(),
        tolerance: None,
        reports: Vec::new(),
        error: None,
        input,
        expected,
    };
    let mut pipeline = None;
    for (n, line) in text.lines().enumerate() {
        let Some(comment) = line.trim().strip_prefix("//") else {
            break;
        };
        let comment = comment.trim();
        let at = |e: String| format!("line {}: {e}", n + 1);
        if let Some(v) = comment.strip_prefix("pipeline:") {
            pipeline = Some(v.trim().to_string());
        } else if let Some(v) = comment.strip_prefix("tolerance:") {
            let t: f32 = v
                .trim()
                .parse()
                .map_err(|_| at(format!("bad tolerance `{}`", v.trim())))?;
            case.tolerance = Some(t);
        } else if let Some(v) = comment.strip_prefix("report:") {
            case.reports.push(v.trim().to_string());
        } else if let Some(v) = comment.strip_prefix("error:") {
            case.error = Some(v.trim().to_string());
        }
    }
    case.pipeline = pipeline.ok_or("no `// pipeline:` line in the header")?;
    if case.error.is_none() && case.expected.is_none() && std::env::var_os("KILN_BLESS").is_none() {
        return Err(format!(
            "no `{EXPECTED}` line (run with KILN_BLESS=1 to write it)"
        ));
    }
    Ok(case)
}

/// The report as text: the summary table, then one line per detail.
fn report_text(run: &RunReport) -> String {
    let mut s = run.to_string();
    for p in &run.passes {
        for d in &p.report.details {
            let outcome = match d.outcome {
                kiln_passes::Outcome::Changed => "changed",
                kiln_passes::Outcome::Left => "left",
            };
            let _ = writeln!(s, "{}: {outcome} {}: {}", p.name, d.node, d.message);
        }
    }
    s
}

fn random_inputs(g: &Graph) -> Vec<(String, Tensor)> {
    let mut rng = kiln_models::init::Rng::new(3);
    g.inputs()
        .iter()
        .map(|(_, name, ty)| {
            let data = (0..ty.elements()).map(|_| rng.normal() as f32).collect();
            (
                name.to_string(),
                Tensor {
                    shape: ty.shape.clone(),
                    data,
                },
            )
        })
        .collect()
}

/// What went wrong with one file.
#[derive(Default)]
struct Outcome {
    /// Directive checks that failed (report, tolerance, error, parsing).
    problems: Vec<String>,
    /// The diff, and the text the file should hold, when the IR differs.
    mismatch: Option<(String, String)>,
}

/// Runs one file.
fn run_case(text: &str) -> Outcome {
    let mut out = Outcome::default();
    if let Err(e) = check_case(text, &mut out) {
        out.problems.push(e);
    }
    out
}

fn check_case(text: &str, out: &mut Outcome) -> Result<(), String> {
    let case = read_case(text)?;
    let original =
        kiln_ir::text::parse(&case.input).map_err(|e| format!("input does not parse: {e}"))?;
    kiln_ir::verify(&original).map_err(|e| format!("input does not verify: {e}"))?;
    let mut weights = kiln_models::init_params(&original, WEIGHT_SEED);
    kiln_models::randomize_bn_stats(&original, &mut weights, BN_SEED);

    let mut g = original.clone();
    let mut cx = Context::new(weights.clone());
    let outcome = PassManager::parse(&case.pipeline, &Registry::builtin())
        .map_err(|e| e.to_string())
        .and_then(|mut pm| pm.run(&mut g, &mut cx).map_err(|e| e.to_string()));
    let run = match (outcome, &case.error) {
        (Err(e), Some(want)) if e.contains(want.as_str()) => return Ok(()),
        (Err(e), Some(want)) => return Err(format!("the error `{e}` does not contain `{want}`")),
        (Err(e), None) => return Err(format!("the pipeline failed: {e}")),
        (Ok(_), Some(want)) => {
            return Err(format!(
                "the pipeline succeeded; expected an error with `{want}`"
            ))
        }
        (Ok(run), None) => run,
    };
    let reported = report_text(&run);
    for want in &case.reports {
        if !reported.contains(want.as_str()) {
            out.problems
                .push(format!("the report lacks `{want}`; it says:\n{reported}"));
        }
    }
    if let Some(tol) = case.tolerance {
        if let Err(e) = same_outputs(&original, &weights, &g, &cx.params, tol) {
            out.problems.push(e);
        }
    }
    let actual = kiln_ir::text::print(&g);
    if case.expected.as_deref() != Some(actual.as_str()) {
        let expected = case.expected.clone().unwrap_or_default();
        let message = format!(
            "the IR after `{}` differs from the expected IR (- expected, + actual):\n{}",
            case.pipeline,
            diff(&expected, &actual)
        );
        out.mismatch = Some((message, format!("{}{EXPECTED}\n{actual}", case.input)));
    }
    Ok(())
}

fn same_outputs(
    g0: &Graph,
    p0: &ParamStore,
    g1: &Graph,
    p1: &ParamStore,
    tol: f32,
) -> Result<(), String> {
    let x = random_inputs(g0);
    let before = kiln_interp::run(g0, p0, &x).map_err(|e| format!("interpreter, before: {e}"))?;
    let after = kiln_interp::run(g1, p1, &x).map_err(|e| format!("interpreter, after: {e}"))?;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let Some(d) = b.max_abs_diff(a) else {
            return Err(format!(
                "output {i}: shape {:?} became {:?}",
                b.shape, a.shape
            ));
        };
        let rel = d / b.max_abs().max(f32::MIN_POSITIVE);
        if rel.is_nan() || rel > tol {
            return Err(format!(
                "output {i}: relative difference {rel:e} exceeds the tolerance {tol:e}"
            ));
        }
    }
    Ok(())
}

/// A line diff (longest common subsequence), `-` for expected, `+` for actual,
/// with two lines of context around each change.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| {
        lines[k.saturating_sub(2)..(k + 3).min(lines.len())]
            .iter()
            .any(|(c, _)| *c != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line)) in lines.iter().enumerate() {
        if near_change(k) {
            if skipped {
                out.push_str("  ...\n");
            }
            skipped = false;
            let _ = writeln!(out, "{c} {line}");
        } else {
            skipped = true;
        }
    }
    out
}

fn files() -> Vec<PathBuf> {
    let root = root();
    let dirs = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read the filetests at {}: {e}", root.display()));
    let mut files = Vec::new();
    for dir in dirs {
        let dir = dir.expect("a directory entry").path();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(
            entries
                .map(|e| e.expect("a directory entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "kir")),
        );
    }
    files.sort();
    files
}

#[test]
fn pass_filetests() {
    let bless = std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1");
    let files = files();
    assert!(
        !files.is_empty(),
        "no .kir files under {}",
        root().display()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", shown(path)));
        let Outcome {
            mut problems,
            mismatch,
        } = run_case(&text);
        match mismatch {
            Some((_, new_text)) if bless => {
                std::fs::write(path, new_text).unwrap_or_else(|e| panic!("{}: {e}", shown(path)));
                eprintln!("blessed {}", shown(path));
            }
            Some((message, _)) => problems.push(message),
            None => {}
        }
        if !problems.is_empty() {
            failures.push(format!("{}:\n{}", shown(path), problems.join("\n")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} filetests failed:\n\n{}\n\nIf the new output is right, re-bless with \
         `KILN_BLESS=1 cargo test -p kiln-passes --test filetests` and review the diff.",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_builtin_pass_has_filetests() {
    let files = files();
    for name in Registry::builtin().names() {
        let dir = root().join(name);
        let count = files
            .iter()
            .filter(|f| f.parent() == Some(dir.as_path()))
            .count();
        assert!(count > 0, "no filetests for `{name}` in {}", dir.display());
    }
}

#[test]
fn the_harness_reads_directives_and_diffs() {
    let text = "// pipeline: dce\n// tolerance: 1e-5\n// report: removed\n// a free comment: ignored\ngraph \"t\"\noutput %0\n// expected:\ngraph \"t\"\n";
    let case = read_case(text).unwrap();
    assert_eq!(case.pipeline, "dce");
    assert_eq!(case.tolerance, Some(1e-5));
    assert_eq!(case.reports, ["removed"]);
    assert!(case.input.ends_with("output %0\n"));
    assert_eq!(case.expected.as_deref(), Some("graph \"t\"\n"));
    assert!(
        read_case("graph \"t\"\n").is_err(),
        "a file without a pipeline is refused"
    );
    let d = diff("a\nb\nc\n", "a\nx\nc\n");
    assert_eq!(d, "  a\n- b\n+ x\n  c\n");
}

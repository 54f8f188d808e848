//! The `kiln` command line, run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("kiln runs")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ok(args: &[&str]) -> String {
    let out = kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn fails(args: &[&str]) -> String {
    let out = kiln(args);
    assert!(!out.status.success(), "kiln {args:?} should fail");
    String::from_utf8(out.stderr).expect("UTF-8 errors")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn conformance(model: &str, file: &str) -> String {
    let p = root().join("../shared/conformance").join(model).join(file);
    assert!(
        p.exists(),
        "{} is missing: the conformance data must be beside this checkout",
        p.display()
    );
    p.display().to_string()
}

#[test]
fn dump_writes_all_four_formats_for_both_blocks() {
    for block in ["inception_3a", "resnet_bottleneck"] {
        let kir = format!("tests/data/{block}.kir");
        for (format, marker) in [
            ("text", "graph \""),
            ("json", "\"kiln-ir\""),
            ("dot", "digraph"),
            ("svg", "<svg"),
        ] {
            let out = tmp(&format!("{block}.{format}"));
            ok(&[
                "dump",
                &kir,
                "--format",
                format,
                "-o",
                out.to_str().unwrap(),
            ]);
            let text = std::fs::read_to_string(&out).unwrap();
            assert!(text.contains(marker), "{block} {format} lacks {marker:?}");
        }
        // The JSON dump loads back and prints the same text.
        let json = tmp(&format!("{block}.json"));
        let again = ok(&["dump", json.to_str().unwrap(), "--format", "text"]);
        assert_eq!(again, std::fs::read_to_string(root().join(&kir)).unwrap());
    }
}

#[test]
fn run_matches_pytorch_on_the_bottleneck() {
    run_bottleneck_against_pytorch(&[], "bottleneck.out.npy");
}

/// `kiln run` of the bottleneck block with `extra` arguments reproduces
/// PyTorch's output to 1e-5 relative.
fn run_bottleneck_against_pytorch(extra: &[&str], out_name: &str) {
    let out = tmp(out_name);
    let mut args = vec![
        "run",
        "tests/data/resnet_bottleneck.kir",
        "--weights",
        "tests/data/resnet_bottleneck.weights.safetensors",
        "--input",
        "tests/data/resnet_bottleneck.input.npy",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    let found = kiln::ir::npy::read_npy(&out).unwrap();
    let expected =
        kiln::ir::npy::read_npy(root().join("tests/data/resnet_bottleneck.output.npy")).unwrap();
    assert!(found.max_abs_diff(&expected).unwrap() / expected.max_abs() < 1e-5);
}

#[test]
fn run_names_the_first_missing_parameter() {
    let weights = conformance("resnet18", "weights.safetensors");
    let err = fails(&[
        "run",
        "tests/data/inception_3a.kir",
        "--weights",
        &weights,
        "--input",
        "tests/data/inception_3a.input.npy",
        "--output",
        tmp("never.npy").to_str().unwrap(),
    ]);
    assert!(
        err.contains("@inception_3a_1x1.weight") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn summary_json_has_totals_at_the_top_level() {
    let text = ok(&["summary", "resnet18", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["params"], 11_689_512);
    assert_eq!(doc["macs"], 1_814_073_344u64);
    assert!(doc["nodes"].as_u64().unwrap() > 50);
    assert_eq!(doc["ops"]["conv2d"], 20);
    let table = ok(&["summary", "tests/data/resnet_bottleneck.kir"]);
    assert!(
        table.contains("conv2d") && table.contains("params"),
        "{table}"
    );
}

#[test]
fn models_lists_the_zoo_and_unknown_names_get_suggestions() {
    let list = ok(&["models"]);
    for name in [
        "resnet50",
        "googlenet",
        "bn-inception",
        "inception-v3",
        "resnet20-cifar",
    ] {
        assert!(list.contains(name), "{name} missing from `kiln models`");
    }
    let err = fails(&["summary", "resnet5"]);
    assert!(
        err.contains("resnet50") || err.contains("resnet18"),
        "{err}"
    );
}

#[test]
fn bad_files_get_errors_not_panics() {
    let garbage = tmp("garbage.kir");
    std::fs::write(&garbage, "graph \"g\"\n%0 = input \"x\" : f32[1,\n").unwrap();
    let err = fails(&["summary", garbage.to_str().unwrap()]);
    assert!(err.contains("garbage.kir") && err.contains(':'), "{err}");
    let err = fails(&["summary", "/nonexistent/model.kir"]);
    assert!(err.contains("/nonexistent/model.kir"), "{err}");
    let bad_npy = tmp("bad.npy");
    std::fs::write(&bad_npy, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}").unwrap();
    let err = fails(&[
        "run",
        "tests/data/resnet_bottleneck.kir",
        "--weights",
        "tests/data/resnet_bottleneck.weights.safetensors",
        "--input",
        bad_npy.to_str().unwrap(),
    ]);
    assert!(err.contains("bad.npy"), "{err}");
    assert!(!Path::new(&tmp("never.npy")).exists());
}

#[test]
fn zoo_run_on_conformance_weights_reproduces_pytorch() {
    let out = tmp("resnet18.out.npy");
    ok(&[
        "run",
        "resnet18",
        "--weights",
        &conformance("resnet18", "weights.safetensors"),
        "--input",
        &conformance("resnet18", "input.npy"),
        "--output",
        out.to_str().unwrap(),
    ]);
    let found = kiln::ir::npy::read_npy(&out).unwrap();
    let expected = kiln::ir::npy::read_npy(conformance("resnet18", "output.npy")).unwrap();
    let rel = found.max_abs_diff(&expected).unwrap() / expected.max_abs();
    assert!(rel < 1e-4, "relative error {rel:.3e}");
}

/// Issue 5's done-when: the JIT reproduces the conformance outputs to 1e-4 of
/// the largest magnitude, with and without the inference passes.
#[test]
fn jit_reproduces_the_conformance_outputs_with_and_without_passes() {
    for model in ["resnet18", "googlenet"] {
        for passes in [None, Some("fold-bn,fuse-residual,dce")] {
            let out = tmp(&format!("{model}.{}.jit.npy", passes.is_some()));
            let (weights, input) = (
                conformance(model, "weights.safetensors"),
                conformance(model, "input.npy"),
            );
            let mut args = vec![
                "run",
                model,
                "--backend",
                "jit",
                "--weights",
                &weights,
                "--input",
                &input,
                "--output",
                out.to_str().unwrap(),
            ];
            if let Some(p) = passes {
                args.extend(["--passes", p]);
            }
            ok(&args);
            let found = kiln::ir::npy::read_npy(&out).unwrap();
            let expected = kiln::ir::npy::read_npy(conformance(model, "output.npy")).unwrap();
            let err = found.max_abs_diff(&expected).unwrap() / expected.max_abs();
            assert!(
                err < 1e-4,
                "{model} {passes:?}: {err:.3e} of the largest magnitude"
            );
        }
    }
}

#[test]
fn passes_on_summary_run_and_opt() {
    let text = ok(&[
        "summary",
        "resnet50",
        "--passes",
        "fold-bn,fuse-residual,dce",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ops = doc["ops"].as_object().unwrap();
    assert!(
        !ops.contains_key("batch_norm") && !ops.contains_key("add"),
        "{ops:?}"
    );
    assert_eq!(doc["macs"], 4_089_184_256u64);
    // The optimized block still matches PyTorch.
    run_bottleneck_against_pytorch(
        &["--passes", "fold-bn,fuse-residual,dce"],
        "bottleneck.opt.npy",
    );
    // opt emits a graph that loads back, and --stats reports each pass.
    let kir = tmp("googlenet.opt.kir");
    let out = kiln(&[
        "opt",
        "googlenet",
        "--passes",
        "fold-bn,dce",
        "--stats",
        "-o",
        kir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(stats.contains("folded 57 batch norms"), "{stats}");
    let summary = ok(&["summary", kir.to_str().unwrap(), "--json"]);
    assert!(!summary.contains("\"batch_norm\""));
    let err = fails(&["summary", "resnet18", "--passes", "fold-bn,fuse-residul"]);
    assert!(
        err.contains("fuse-residul") && err.contains("fuse-residual"),
        "{err}"
    );
}

/// `--check` means the JIT against the interpreter: it picks the JIT by
/// itself and refuses to compare the interpreter with itself.
#[test]
fn check_runs_the_jit_and_refuses_the_interpreter_alone() {
    let input = conformance("resnet18", "input.npy");
    let weights = conformance("resnet18", "weights.safetensors");
    let text = ok(&[
        "run",
        "resnet18",
        "--weights",
        &weights,
        "--input",
        &input,
        "--check",
    ]);
    let rel: f64 = text
        .split("relative to the largest output ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no relative error in {text}"));
    assert!(rel > 0.0 && rel < 1e-4, "{text}");
    let err = fails(&[
        "run",
        "resnet18",
        "--backend",
        "interp",
        "--check",
        "--input",
        &input,
    ]);
    assert!(err.contains("--backend jit"), "{err}");
}

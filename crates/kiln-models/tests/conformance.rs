//! Conformance with PyTorch: for every folder of the conformance data that
//! has an `info.json` (`../shared/conformance` beside the workspace, or
//! `$KILN_CONFORMANCE_DIR`), build the zoo model it names at its input
//! shape, load `weights.safetensors` (torchvision's or pretrainedmodels'
//! own names), run the reference interpreter on `input.npy` and compare with
//! PyTorch's `output.npy` to 1e-4 of the output's largest magnitude.

use kiln_ir::npy::read_npy;
use kiln_ir::ParamStore;
use kiln_models::{find, Config};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn conformance_dir() -> PathBuf {
    match std::env::var_os("KILN_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

/// The zoo name of a conformance folder's model: make_conformance.py names
/// models as torchvision and pretrainedmodels do (`wide_resnet50_2`,
/// `bninception`), with `_b<N>` for batch variants (`resnet50_b8`).
fn zoo_name(model: &str) -> &str {
    match model.rsplit_once("_b") {
        Some((base, batch)) if !batch.is_empty() && batch.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => model,
    }
}

/// Runs one folder; returns a line for the report, or the failure.
fn check(folder: &Path) -> Result<String, String> {
    let read = |f: &str| folder.join(f);
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(read("info.json")).map_err(|e| format!("info.json: {e}"))?,
    )
    .map_err(|e| format!("info.json: {e}"))?;
    let model = info["model"].as_str().ok_or("info.json has no \"model\"")?;
    let m = find(zoo_name(model)).map_err(|e| e.to_string())?;
    let x = read_npy(read("input.npy")).map_err(|e| e.to_string())?;
    let expected = read_npy(read("output.npy")).map_err(|e| e.to_string())?;
    let [n, c, h, w] = x.shape[..] else {
        return Err(format!("input.npy has shape {:?}", x.shape));
    };
    let classes = *expected
        .shape
        .get(1)
        .ok_or("output.npy is not [N, classes]")?;
    let cfg = Config {
        batch: n,
        in_channels: c,
        height: h,
        width: w,
        num_classes: classes,
        ..m.default_config()
    };
    let g = m.build(&cfg).map_err(|e| e.to_string())?;
    let weights = ParamStore::load(read("weights.safetensors")).map_err(|e| e.to_string())?;
    // The file must hold exactly the graph's parameters (besides int64 counters).
    let graph_names: BTreeSet<&str> = g.params().into_iter().map(|(_, n, _)| n).collect();
    let extra: Vec<&String> = weights
        .names()
        .filter(|n| !graph_names.contains(n.as_str()))
        .collect();
    if !extra.is_empty() {
        return Err(format!("weights the graph does not use: {extra:?}"));
    }
    let outputs = kiln_interp::run(&g, &weights, &[("input", &x)]).map_err(|e| e.to_string())?;
    let diff = outputs[0].max_abs_diff(&expected).ok_or_else(|| {
        format!(
            "output shape {:?}, PyTorch's {:?}",
            outputs[0].shape, expected.shape
        )
    })?;
    let scale = expected.max_abs();
    let line = format!(
        "{model} ({}): max |kiln - torch| = {diff:.3e}, max |torch| = {scale:.3e}",
        m.name
    );
    if diff <= 1e-4 * scale {
        Ok(line)
    } else {
        Err(format!("{line}: beyond 1e-4 of the largest magnitude"))
    }
}

#[test]
fn zoo_models_reproduce_pytorch_outputs() {
    let dir = conformance_dir();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "conformance data {}: {e} (set KILN_CONFORMANCE_DIR to override)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("info.json").is_file())
        .collect();
    folders.sort();
    assert!(
        !folders.is_empty(),
        "no folder with an info.json in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for folder in &folders {
        match check(folder) {
            Ok(line) => println!("{line}"),
            Err(e) => failures.push(format!("{}: {e}", folder.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn batch_variant_names_map_to_the_zoo() {
    assert_eq!(zoo_name("resnet50_b8"), "resnet50");
    assert_eq!(zoo_name("wide_resnet50_2"), "wide_resnet50_2");
    assert_eq!(zoo_name("bninception"), "bninception");
    assert_eq!(find(zoo_name("inception_v3")).unwrap().name, "inception-v3");
}

//! Parameter names and shapes against the `state_dict`s of the reference
//! implementations: every f32 tensor of the reference must be a parameter
//! of the graph with that shape, and every parameter of the graph must be in
//! the reference. For resnet18 and googlenet the reference is the
//! conformance weights file; for the other compatible models, a name/shape
//! list that `tests/data/make_references.py` wrote with torch
//! (`tests/data/state_dicts/<model>.txt`, one `name dim,dim,...` a line).

use kiln_ir::{Graph, ParamStore};
use kiln_models::{build, Config};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn graph_params(g: &Graph) -> BTreeMap<String, Vec<usize>> {
    g.params()
        .into_iter()
        .map(|(_, n, t)| (n.to_string(), t.shape.clone()))
        .collect()
}

/// Compares two name -> shape maps and reports every difference at once.
fn assert_same(
    model: &str,
    graph: &BTreeMap<String, Vec<usize>>,
    reference: &BTreeMap<String, Vec<usize>>,
) {
    let mut problems = Vec::new();
    for (name, shape) in reference {
        match graph.get(name) {
            None => problems.push(format!("missing from the graph: {name} {shape:?}")),
            Some(s) if s != shape => {
                problems.push(format!("{name}: graph {s:?}, reference {shape:?}"))
            }
            Some(_) => {}
        }
    }
    for name in graph.keys().filter(|n| !reference.contains_key(*n)) {
        problems.push(format!("not in the reference: {name}"));
    }
    assert!(
        problems.is_empty(),
        "{model}: {} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(!reference.is_empty());
}

fn conformance_weights(folder: &str) -> ParamStore {
    let path = workspace_root()
        .join("../shared/conformance")
        .join(folder)
        .join("weights.safetensors");
    assert!(
        path.exists(),
        "{} is missing: the conformance data is needed for this test",
        path.display()
    );
    ParamStore::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The conformance checkpoint of `model` against its graph; `counters` is the
/// number of int64 `num_batches_tracked` entries (one per BatchNorm), the
/// only tensors the loader skips.
fn check_checkpoint(model: &str, counters: usize) {
    let store = conformance_weights(model);
    let reference = store
        .iter()
        .map(|(n, t)| (n.clone(), t.shape.clone()))
        .collect();
    let g = build(model, &Config::default_for(model).unwrap()).unwrap();
    assert_same(model, &graph_params(&g), &reference);
    assert_eq!(store.skipped.len(), counters, "{model}");
    assert!(
        store
            .skipped
            .iter()
            .all(|n| n.ends_with("num_batches_tracked")),
        "{model}"
    );
    kiln_ir::verify_params(&g, &store).unwrap();
}

#[test]
fn resnet18_matches_the_torchvision_checkpoint() {
    check_checkpoint("resnet18", 20);
}

#[test]
fn googlenet_matches_the_torchvision_checkpoint() {
    check_checkpoint("googlenet", 57);
}

fn read_list(file: &str) -> BTreeMap<String, Vec<usize>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/state_dicts")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, dims) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("{file}: bad line {l:?}"));
            let shape = if dims == "-" {
                Vec::new()
            } else {
                dims.split(',')
                    .map(|d| {
                        d.parse()
                            .unwrap_or_else(|_| panic!("{file}: bad dims {l:?}"))
                    })
                    .collect()
            };
            (name.to_string(), shape)
        })
        .collect()
}

/// (zoo name, list file, aux heads on).
const LISTS: [(&str, &str, bool); 10] = [
    ("resnet34", "resnet34.txt", false),
    ("resnet50", "resnet50.txt", false),
    ("resnet101", "resnet101.txt", false),
    ("resnet152", "resnet152.txt", false),
    ("wide-resnet50-2", "wide_resnet50_2.txt", false),
    ("wide-resnet101-2", "wide_resnet101_2.txt", false),
    ("inception-v3", "inception_v3.txt", false),
    ("inception-v3", "inception_v3_aux.txt", true),
    ("googlenet", "googlenet_aux.txt", true),
    ("bn-inception", "bninception.txt", false),
];

#[test]
fn compatible_models_match_their_reference_state_dicts() {
    for (model, file, aux) in LISTS {
        let cfg = Config::default_for(model).unwrap().with_aux_logits(aux);
        let g = build(model, &cfg).unwrap();
        assert_same(file, &graph_params(&g), &read_list(file));
    }
}

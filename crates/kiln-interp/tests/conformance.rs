//! Whole networks against PyTorch: torchvision's resnet18 and googlenet,
//! built here by hand from the layer list of torchvision's source, run on the
//! conformance data (../shared/conformance: random seeded weights with
//! randomized BatchNorm statistics, PyTorch's outputs). These hold every
//! kernel that the two networks use (conv, BatchNorm in both modes, relu,
//! max pools in floor and ceil mode, global average pool, concat, add,
//! dense, dropout, cross-entropy with label smoothing) to figures nobody here
//! computed.

mod common;

use common::max_rel_diff;
use kiln_ir::npy::read_npy;
use kiln_ir::ops::*;
use kiln_ir::{Graph, ParamStore, Tensor, TensorType, Value};
use std::path::PathBuf;

fn conformance(file: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("../shared/conformance").join(file);
    assert!(
        path.exists(),
        "conformance file {} is missing (see ../shared/conformance/README.md)",
        path.display()
    );
    path
}

/// Adds the named parameter with the shape the store gives it.
fn param(g: &mut Graph, store: &ParamStore, name: &str) -> Value {
    let t = store
        .get(name)
        .unwrap_or_else(|| panic!("the weights lack {name}"));
    g.add_param(name, TensorType::f32(t.shape.clone()))
}

/// `prefix.weight` as a conv without bias; the kernel size comes from the weight.
fn conv(
    g: &mut Graph,
    store: &ParamStore,
    prefix: &str,
    x: Value,
    stride: usize,
    pad: usize,
) -> Value {
    let w = param(g, store, &format!("{prefix}.weight"));
    let k = g.value_type(w).unwrap().shape[2];
    g.add(Conv2d::new(k, stride, pad), &[x, w]).unwrap()
}

fn bn(
    g: &mut Graph,
    store: &ParamStore,
    prefix: &str,
    x: Value,
    eps: f32,
    training: bool,
) -> Value {
    let mut operands = vec![x];
    for p in ["weight", "bias", "running_mean", "running_var"] {
        operands.push(param(g, store, &format!("{prefix}.{p}")));
    }
    g.add(
        BatchNorm {
            eps,
            momentum: 0.1,
            training,
        },
        &operands,
    )
    .unwrap()
}

fn relu(g: &mut Graph, x: Value) -> Value {
    g.add(Relu {}, &[x]).unwrap()
}

fn max_pool(
    g: &mut Graph,
    x: Value,
    kernel: usize,
    stride: usize,
    pad: usize,
    ceil_mode: bool,
) -> Value {
    let op = MaxPool {
        kernel: [kernel; 2],
        stride: [stride; 2],
        pad: [pad; 4],
        ceil_mode,
    };
    g.add(op, &[x]).unwrap()
}

/// Global average pool, flatten, `fc`.
fn head(g: &mut Graph, store: &ParamStore, x: Value) -> Value {
    let x = g.add(GlobalAvgPool {}, &[x]).unwrap();
    let x = g.add(Flatten { axis: 1 }, &[x]).unwrap();
    let (w, b) = (param(g, store, "fc.weight"), param(g, store, "fc.bias"));
    g.add(Dense { bias: true }, &[x, w, b]).unwrap()
}

/// torchvision `resnet18()`: returns the graph and its logits value.
fn resnet18(store: &ParamStore, input: &[usize], training: bool) -> (Graph, Value) {
    let mut g = Graph::new("resnet18");
    let x = g.add_input("input", TensorType::f32(input.to_vec()));
    let x = conv(&mut g, store, "conv1", x, 2, 3);
    let x = bn(&mut g, store, "bn1", x, 1e-5, training);
    let x = relu(&mut g, x);
    let mut x = max_pool(&mut g, x, 3, 2, 1, false);
    for layer in 1..=4 {
        for block in 0..2 {
            let p = format!("layer{layer}.{block}");
            let stride = if layer > 1 && block == 0 { 2 } else { 1 };
            let y = conv(&mut g, store, &format!("{p}.conv1"), x, stride, 1);
            let y = bn(&mut g, store, &format!("{p}.bn1"), y, 1e-5, training);
            let y = relu(&mut g, y);
            let y = conv(&mut g, store, &format!("{p}.conv2"), y, 1, 1);
            let y = bn(&mut g, store, &format!("{p}.bn2"), y, 1e-5, training);
            let shortcut = if store.contains(&format!("{p}.downsample.0.weight")) {
                let s = conv(&mut g, store, &format!("{p}.downsample.0"), x, stride, 0);
                bn(
                    &mut g,
                    store,
                    &format!("{p}.downsample.1"),
                    s,
                    1e-5,
                    training,
                )
            } else {
                x
            };
            let y = g.add(Add {}, &[y, shortcut]).unwrap();
            x = relu(&mut g, y);
        }
    }
    let logits = head(&mut g, store, x);
    (g, logits)
}

/// torchvision's BasicConv2d: conv (no bias), BatchNorm (eps 0.001), ReLU.
fn basic(
    g: &mut Graph,
    store: &ParamStore,
    prefix: &str,
    x: Value,
    stride: usize,
    pad: usize,
) -> Value {
    let y = conv(g, store, &format!("{prefix}.conv"), x, stride, pad);
    let y = bn(g, store, &format!("{prefix}.bn"), y, 1e-3, false);
    relu(g, y)
}

/// torchvision `googlenet(aux_logits=False, transform_input=False)` in eval mode.
fn googlenet(store: &ParamStore) -> (Graph, Value) {
    let mut g = Graph::new("googlenet");
    let x = g.add_input("input", TensorType::f32([1, 3, 224, 224]));
    let x = basic(&mut g, store, "conv1", x, 2, 3);
    let x = max_pool(&mut g, x, 3, 2, 0, true);
    let x = basic(&mut g, store, "conv2", x, 1, 0);
    let x = basic(&mut g, store, "conv3", x, 1, 1);
    let mut x = max_pool(&mut g, x, 3, 2, 0, true);
    for module in ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"] {
        let p = format!("inception{module}");
        let b1 = basic(&mut g, store, &format!("{p}.branch1"), x, 1, 0);
        let b2 = basic(&mut g, store, &format!("{p}.branch2.0"), x, 1, 0);
        let b2 = basic(&mut g, store, &format!("{p}.branch2.1"), b2, 1, 1);
        // torchvision's "5x5" branch is a 3x3 conv (a known quirk it keeps).
        let b3 = basic(&mut g, store, &format!("{p}.branch3.0"), x, 1, 0);
        let b3 = basic(&mut g, store, &format!("{p}.branch3.1"), b3, 1, 1);
        let b4 = max_pool(&mut g, x, 3, 1, 1, true);
        let b4 = basic(&mut g, store, &format!("{p}.branch4.1"), b4, 1, 0);
        x = g.add(Concat { axis: 1 }, &[b1, b2, b3, b4]).unwrap();
        x = match module {
            "3b" => max_pool(&mut g, x, 3, 2, 0, true),
            "4e" => max_pool(&mut g, x, 2, 2, 0, true),
            _ => x,
        };
    }
    let x = g.add(Dropout { p: 0.2 }, &[x]).unwrap();
    let logits = head(&mut g, store, x);
    (g, logits)
}

fn check_inference(model: &str, build: impl Fn(&ParamStore) -> (Graph, Value)) {
    let store = ParamStore::load(conformance(&format!("{model}/weights.safetensors"))).unwrap();
    let input = read_npy(conformance(&format!("{model}/input.npy"))).unwrap();
    let expected = read_npy(conformance(&format!("{model}/output.npy"))).unwrap();
    let (mut g, logits) = build(&store);
    g.set_outputs(vec![logits]);
    let started = std::time::Instant::now();
    let out = kiln_interp::run(&g, &store, &[("input", &input)]).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    // Relative to the output's scale: logits near zero make per-element ratios meaningless.
    let scale = expected.max_abs();
    let max_abs = out[0].max_abs_diff(&expected).unwrap();
    eprintln!(
        "{model}: max |interp - torch| = {max_abs:e} (outputs up to {scale}), {seconds:.2} s"
    );
    assert!(
        max_abs <= 1e-5 * scale,
        "{model}: max abs diff {max_abs} exceeds 1e-5 x {scale}"
    );
}

#[test]
fn resnet18_matches_pytorch() {
    check_inference("resnet18", |s| resnet18(s, &[1, 3, 224, 224], false));
}

#[test]
fn googlenet_matches_pytorch() {
    check_inference("googlenet", googlenet);
}

/// Sum, L2 norm and max |x| of a tensor, in f64.
fn stats(t: &Tensor) -> [f64; 3] {
    let sum = t.data.iter().map(|&v| v as f64).sum();
    let l2 = t
        .data
        .iter()
        .map(|&v| (v as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    [sum, l2, t.max_abs() as f64]
}

/// The first step of the training reference: resnet18 with BatchNorm in
/// training mode (batch statistics) on a 4x3x64x64 batch, and
/// `CrossEntropyLoss(label_smoothing=0.1)`: the forward loss and the logits'
/// checksums must be PyTorch's.
#[test]
fn resnet18_training_forward_loss_matches_pytorch() {
    let store = ParamStore::load(conformance("resnet18/weights.safetensors")).unwrap();
    let input = read_npy(conformance("resnet18/train_input.npy")).unwrap();
    let labels = read_npy(conformance("resnet18/train_labels.npy")).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(conformance("resnet18/train.json")).unwrap())
            .unwrap();
    let step = &reference["steps"][0];
    let smoothing = reference["hyper"]["label_smoothing"].as_f64().unwrap() as f32;

    let (mut g, logits) = resnet18(&store, &input.shape, true);
    let l = g.add_input("labels", TensorType::f32(labels.shape.clone()));
    let loss = g
        .add(
            SoftmaxCrossEntropy {
                label_smoothing: smoothing,
            },
            &[logits, l],
        )
        .unwrap();
    g.set_outputs(vec![loss, logits]);
    let out = kiln_interp::run(&g, &store, &[("input", &input), ("labels", &labels)]).unwrap();

    let torch_loss = step["loss"].as_f64().unwrap();
    let rel = (out[0].data[0] as f64 - torch_loss).abs() / torch_loss;
    eprintln!(
        "training loss: interp {} torch {torch_loss} (rel {rel:e})",
        out[0].data[0]
    );
    assert!(rel < 1e-5, "loss {} vs torch {torch_loss}", out[0].data[0]);
    let found = stats(&out[1]);
    for (i, key) in ["sum", "l2", "max_abs"].iter().enumerate() {
        let want = step["logits"][key].as_f64().unwrap();
        let rel = (found[i] - want).abs() / want.abs();
        eprintln!(
            "logits {key}: interp {} torch {want} (rel {rel:e})",
            found[i]
        );
        assert!(rel < 1e-5, "logits {key}: {} vs torch {want}", found[i]);
    }
    // The same batch in inference mode gives other logits: BatchNorm's mode matters here.
    let (mut eval_g, eval_logits) = resnet18(&store, &input.shape, false);
    eval_g.set_outputs(vec![eval_logits]);
    let eval_out = kiln_interp::run(&eval_g, &store, &[("input", &input)]).unwrap();
    assert!(
        max_rel_diff(&eval_out[0], &out[1], 1.0) > 1e-2,
        "training-mode BatchNorm made no difference"
    );
}

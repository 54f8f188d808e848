//! Seeded initialisation: reproducible per (seed, name), the distributions
//! of the reference implementations, and randomized BatchNorms.

use kiln_ir::{Graph, ParamStore, Tensor};
use kiln_models::init::{Fan, WeightInit};
use kiln_models::{build, init_params, init_params_with, randomize_bn_stats, Config, InitScheme};

fn model(name: &str) -> Graph {
    build(name, &Config::default_for(name).unwrap()).unwrap()
}

fn stats(t: &Tensor) -> (f64, f64, f32) {
    let n = t.data.len() as f64;
    let mean = t.data.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = t
        .data
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt(), t.max_abs())
}

fn get<'a>(store: &'a ParamStore, name: &str) -> &'a Tensor {
    store.get(name).unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn every_parameter_is_initialised_with_its_shape() {
    for name in [
        "resnet18",
        "googlenet",
        "bn-inception",
        "resnet20-cifar",
        "googlenet-paper",
    ] {
        let g = model(name);
        let store = init_params(&g, 0);
        assert_eq!(store.len(), g.params().len(), "{name}");
        kiln_ir::verify_params(&g, &store).unwrap();
        assert!(
            store
                .iter()
                .all(|(_, t)| t.data.iter().all(|v| v.is_finite())),
            "{name}"
        );
    }
}

#[test]
fn values_depend_only_on_seed_and_name() {
    let a = init_params(&model("resnet18"), 42);
    let b = init_params(&model("resnet18"), 42);
    assert_eq!(a, b);
    // resnet34 shares these names and shapes (and the init rule) with resnet18.
    let c = init_params(&model("resnet34"), 42);
    for name in [
        "conv1.weight",
        "layer1.0.conv1.weight",
        "layer4.1.conv2.weight",
        "fc.bias",
    ] {
        assert_eq!(get(&a, name), get(&c, name), "{name}");
    }
    let d = init_params(&model("resnet18"), 43);
    assert_ne!(get(&a, "conv1.weight"), get(&d, "conv1.weight"));
    assert_ne!(
        get(&a, "layer1.0.conv1.weight").data,
        get(&a, "layer1.0.conv2.weight").data
    );
}

#[test]
fn resnets_use_he_normal_fan_out_and_the_linear_default() {
    let store = init_params(&model("resnet18"), 1);
    // layer3.0.conv2: [256, 256, 3, 3], fan_out = 256 * 9.
    let (mean, std, _) = stats(get(&store, "layer3.0.conv2.weight"));
    let expected = (2.0 / (256.0 * 9.0f64)).sqrt();
    assert!(mean.abs() < 0.01 * expected * 10.0, "mean {mean}");
    assert!(
        (std / expected - 1.0).abs() < 0.01,
        "std {std} vs {expected}"
    );
    // fc: U(-1/sqrt(512), 1/sqrt(512)), std bound / sqrt(3).
    let bound = 1.0 / 512f64.sqrt();
    let (_, std, max) = stats(get(&store, "fc.weight"));
    assert!(
        max as f64 <= bound && max as f64 > 0.99 * bound,
        "max {max}"
    );
    assert!(
        (std / (bound / 3f64.sqrt()) - 1.0).abs() < 0.01,
        "std {std}"
    );
    assert!(get(&store, "fc.bias").max_abs() as f64 <= bound);
    for (tensor, value) in [
        ("weight", 1.0),
        ("bias", 0.0),
        ("running_mean", 0.0),
        ("running_var", 1.0),
    ] {
        assert!(
            get(&store, &format!("layer2.1.bn2.{tensor}"))
                .data
                .iter()
                .all(|&v| v == value),
            "{tensor}"
        );
    }
}

#[test]
fn inception_models_use_truncated_normals() {
    let cfg = Config::default_for("inception-v3")
        .unwrap()
        .with_aux_logits(true);
    let g = build("inception-v3", &cfg).unwrap();
    let store = init_params(&g, 5);
    for (name, std) in [
        ("Mixed_6b.branch7x7_2.conv.weight", 0.1),
        ("fc.weight", 0.1),
        ("AuxLogits.conv0.conv.weight", 0.1),
        ("AuxLogits.conv1.conv.weight", 0.01),
        ("AuxLogits.fc.weight", 0.001),
    ] {
        let (_, s, max) = stats(get(&store, name));
        assert!(
            (s / std - 1.0).abs() < 0.02,
            "{name}: std {s}, expected {std}"
        );
        assert!(max <= 2.0, "{name}");
    }
    let store = init_params(&model("googlenet"), 5);
    let (_, s, _) = stats(get(&store, "inception4a.branch2.1.conv.weight"));
    assert!((s / 0.01 - 1.0).abs() < 0.02, "std {s}");
}

#[test]
fn cifar_resnets_use_fan_in() {
    let store = init_params(&model("resnet56-cifar"), 2);
    // layer3.4.conv1: [64, 64, 3, 3]: fan_in = fan_out = 576; the linear layer: fan_in 64.
    let (_, s, _) = stats(get(&store, "linear.weight"));
    let expected = (2.0 / 64.0f64).sqrt();
    assert!((s / expected - 1.0).abs() < 0.1, "std {s} vs {expected}");
    let (_, s, _) = stats(get(&store, "layer1.0.conv1.weight"));
    assert!((s / (2.0 / 144.0f64).sqrt() - 1.0).abs() < 0.05, "std {s}");
}

#[test]
fn explicit_schemes_and_overrides() {
    let g = model("resnet18");
    let scheme = InitScheme {
        conv: WeightInit::HeNormal(Fan::In),
        dense: WeightInit::TorchDefault,
        overrides: &[("layer4.", WeightInit::TruncNormal { std: 0.5 })],
    };
    let store = init_params_with(&g, 3, &scheme);
    let (_, s, _) = stats(get(&store, "layer1.0.conv1.weight"));
    assert!((s / (2.0 / 576.0f64).sqrt() - 1.0).abs() < 0.03, "std {s}");
    let (_, s, max) = stats(get(&store, "layer4.0.conv1.weight"));
    // N(0, 0.5^2) truncated at 4 sigma: the std barely moves.
    assert!(
        (s / 0.5 - 1.0).abs() < 0.01 && max <= 2.0,
        "std {s}, max {max}"
    );
    // A graph not named after a zoo model gets PyTorch's defaults.
    assert_eq!(InitScheme::for_model("my-net"), InitScheme::TORCH_DEFAULT);
}

#[test]
fn randomized_batch_norms_are_in_the_reference_ranges() {
    let g = model("resnet18");
    let mut store = init_params(&g, 0);
    let before = store.clone();
    assert_eq!(randomize_bn_stats(&g, &mut store, 0), 20);
    kiln_ir::verify_params(&g, &store).unwrap();
    let var = get(&store, "layer1.0.bn1.running_var");
    let weight = get(&store, "layer1.0.bn1.weight");
    assert!(var
        .data
        .iter()
        .chain(&weight.data)
        .all(|&v| (0.5..1.5).contains(&v)));
    assert_ne!(var.data, weight.data);
    let (mean, std, _) = stats(get(&store, "layer3.1.bn2.running_mean"));
    assert!(
        mean.abs() < 0.03 && (std - 0.1).abs() < 0.03,
        "mean {mean}, std {std}"
    );
    // Convs are untouched; the same seed gives the same statistics.
    assert_eq!(get(&store, "conv1.weight"), get(&before, "conv1.weight"));
    let mut again = before.clone();
    randomize_bn_stats(&g, &mut again, 0);
    assert_eq!(store, again);
}

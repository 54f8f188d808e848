//! The zoo's figures: parameter counts and MACs against the reference
//! implementations and the papers, the zoo table against the built graphs,
//! smallest inputs, configuration errors.

use kiln_ir::cost::cost;
use kiln_models::{build, find, zoo, Config, ModelError};

fn figures(name: &str, size: usize) -> (u64, u64) {
    let cfg = Config::default_for(name).unwrap().with_input(size);
    let c = cost(&build(name, &cfg).unwrap());
    (c.params, c.macs)
}

/// The table, measured from torchvision and pretrainedmodels
/// (parameters without BatchNorm running statistics; convs and dense layers
/// counted at one multiply-add per MAC).
#[test]
fn counts_equal_the_reference_implementations() {
    let expected = [
        ("resnet18", 224, 11_689_512, 1_814_073_344),
        ("resnet50", 224, 25_557_032, 4_089_184_256),
        ("resnet152", 224, 60_192_808, 11_513_626_624),
        ("wide-resnet50-2", 224, 68_883_240, 11_398_021_120),
        ("googlenet", 224, 6_624_904, 1_498_376_192),
        ("inception-v3", 299, 23_834_568, 5_713_216_096),
        ("bn-inception", 224, 11_295_240, 2_032_600_064),
    ];
    for (name, size, params, macs) in expected {
        assert_eq!(figures(name, size), (params, macs), "{name} at {size}");
    }
}

/// Rounds to `digits` decimals of millions, the papers' precision.
fn millions(params: u64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (params as f64 / 1e6 * scale).round() / scale
}

#[test]
fn cifar_resnets_match_the_paper() {
    // ResNet paper, table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.
    for (name, m, digits) in [
        ("resnet20-cifar", 0.27, 2),
        ("resnet32-cifar", 0.46, 2),
        ("resnet44-cifar", 0.66, 2),
        ("resnet56-cifar", 0.85, 2),
        ("resnet110-cifar", 1.7, 1),
    ] {
        let (params, _) = figures(name, 32);
        assert_eq!(millions(params, digits), m, "{name}: {params}");
    }
}

#[test]
fn wrn_28_10_matches_the_paper() {
    // Wide Residual Networks, table 4 (WRN-28-10: 36.5M).
    let (params, _) = figures("wrn-28-10", 32);
    assert_eq!(millions(params, 1), 36.5, "{params}");
    // Dropout adds nodes, not parameters.
    let cfg = Config::default_for("wrn-28-10").unwrap().with_dropout(0.3);
    let g = build("wrn-28-10", &cfg).unwrap();
    assert_eq!(cost(&g).params, params);
    let dropouts = g
        .node_ids()
        .filter(|&id| g.op(id).kind() == "dropout")
        .count();
    assert_eq!(dropouts, 12);
}

#[test]
fn zoo_table_matches_the_built_graphs() {
    assert_eq!(zoo().len(), 22);
    for m in zoo() {
        let g = m.build(&m.default_config()).unwrap();
        assert_eq!(g.name, m.name);
        let c = cost(&g);
        assert_eq!(
            (c.params, c.macs),
            (m.params, m.macs),
            "{}: the zoo table is stale",
            m.name
        );
        assert!(!m.paper.is_empty() && !m.arxiv.is_empty() && !m.reference.is_empty());
    }
}

#[test]
fn min_input_is_the_smallest_input_that_builds() {
    for m in zoo() {
        let cfg = m.default_config();
        m.build(&cfg.clone().with_input(m.min_input))
            .unwrap_or_else(|e| panic!("{} at its min_input {}: {e}", m.name, m.min_input));
        for s in 1..m.min_input {
            assert!(
                m.build_unchecked(&cfg.clone().with_input(s)).is_err(),
                "{} builds at {s}",
                m.name
            );
        }
        if m.min_input > 1 {
            let err = m
                .build(&cfg.clone().with_input(m.min_input - 1))
                .unwrap_err();
            assert!(
                matches!(err, ModelError::InputTooSmall { min, .. } if min == m.min_input),
                "{err}"
            );
        }
    }
}

#[test]
fn bn_inception_refuses_odd_maps_before_its_stride_2_modules() {
    let cfg = Config::default_for("bn-inception").unwrap();
    // 224 gives 28x28 before 3c and 14x14 before 4e; 200 gives 25x25 before
    // 3c; 240 gives 30x30 before 3c, then 15x15 before 4e.
    build("bn-inception", &cfg.clone().with_input(224)).unwrap();
    let err = build("bn-inception", &cfg.clone().with_input(200)).unwrap_err();
    assert!(
        matches!(&err, ModelError::Config { message, .. } if message.contains("inception_3c")),
        "{err}"
    );
    assert!(err.to_string().contains("25x25"), "{err}");
    let err = build("bn-inception", &cfg.with_input(240)).unwrap_err();
    assert!(
        matches!(&err, ModelError::Config { message, .. } if message.contains("inception_4e")),
        "{err}"
    );
}

#[test]
fn batch_classes_and_channels_propagate() {
    for name in [
        "resnet50",
        "googlenet",
        "inception-v3",
        "bn-inception",
        "resnet20-cifar",
        "preact-resnet18",
    ] {
        let cfg = Config::default_for(name)
            .unwrap()
            .with_batch(3)
            .with_classes(7)
            .with_in_channels(1);
        let g = build(name, &cfg).unwrap();
        let (_, _, input) = g.inputs()[0];
        assert_eq!(input.shape, vec![3, 1, cfg.height, cfg.width], "{name}");
        assert_eq!(
            g.value_type(g.outputs()[0]).unwrap().shape,
            vec![3, 7],
            "{name}"
        );
    }
}

#[test]
fn aux_heads_are_extra_outputs() {
    let cases = [
        ("inception-v3", 2, "AuxLogits.fc.weight"),
        ("googlenet", 3, "aux2.fc2.weight"),
        ("googlenet-paper", 3, "aux1.fc1.weight"),
    ];
    for (name, outputs, param) in cases {
        let cfg = Config::default_for(name)
            .unwrap()
            .with_aux_logits(true)
            .with_classes(5);
        let g = build(name, &cfg).unwrap();
        assert_eq!(g.outputs().len(), outputs, "{name}");
        for out in g.outputs() {
            assert_eq!(g.value_type(*out).unwrap().shape, vec![1, 5], "{name}");
        }
        assert!(g.find_param(param).is_some(), "{name} lacks {param}");
    }
    // torchvision's aux head of Inception-v3 needs the 17x17 grid of a 299 input.
    let cfg = Config::default_for("inception-v3")
        .unwrap()
        .with_aux_logits(true)
        .with_input(298);
    assert!(build("inception-v3", &cfg).is_err());
}

#[test]
fn bad_configurations_are_typed_errors() {
    let base = Config::default_for("resnet18").unwrap();
    let config_err = |cfg: Config, needle: &str| {
        let err = build("resnet18", &cfg).unwrap_err();
        assert!(matches!(err, ModelError::Config { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    };
    config_err(base.clone().with_batch(0), "batch");
    config_err(base.clone().with_classes(0), "num_classes");
    config_err(base.clone().with_dropout(0.5), "no dropout layer");
    config_err(base.clone().with_aux_logits(true), "auxiliary");
    config_err(
        base.clone().with_batch(1 << 20).with_input(1 << 12),
        "exceeds the limit",
    );
    config_err(base.clone().with_input(usize::MAX), "exceeds the limit");
    let cfg = Config::default_for("googlenet").unwrap();
    for p in [1.0, -0.1, f32::NAN] {
        let err = build("googlenet", &cfg.clone().with_dropout(p)).unwrap_err();
        assert!(
            err.to_string().contains("dropout must be in [0, 1)"),
            "{err}"
        );
    }
    // Sizes the input check lets through but the graph cannot hold fail in the verifier.
    // (10000 x 3 x 224 x 224 fits; conv1's 10000 x 64 x 112 x 112 does not.)
    let err = build("resnet18", &base.clone().with_batch(10_000)).unwrap_err();
    assert!(matches!(err, ModelError::Verify { .. }), "{err}");
}

#[test]
fn unknown_names_suggest_the_closest() {
    let err = Config::default_for("resnet-50").unwrap_err();
    let ModelError::Unknown { name, suggestions } = &err else {
        panic!("{err}")
    };
    assert_eq!(name, "resnet-50");
    assert_eq!(suggestions.first().map(String::as_str), Some("resnet50"));
    let err = build("inceptionv4", &Config::default_for("inception-v3").unwrap()).unwrap_err();
    assert!(err.to_string().contains("'inception-v3'"), "{err}");
    assert_eq!(find("GoogLeNet").unwrap().name, "googlenet");
}

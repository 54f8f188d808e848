//! Random graphs round-trip through the text format and JSON; dumps of them
//! are well formed.

use kiln_ir::ops::*;
use kiln_ir::*;
use proptest::prelude::*;

/// Builds a random valid graph from a list of choices: a chain (with
/// branches) of ops over an NCHW input, with awkward parameter names.
fn build(choices: &[(u8, u8, u8)], names: &[String]) -> Graph {
    let mut g = Graph::new(names.first().cloned().unwrap_or_default());
    let x = g.add_input("in \"put\"", TensorType::f32([2, 4, 9, 7]));
    let mut values = vec![x];
    let mut k = 0usize;
    let mut name = |prefix: &str| {
        k += 1;
        format!("{prefix}{}.{}", names.get(k % names.len().max(1)).cloned().unwrap_or_default(), k)
    };
    for &(kind, a, b) in choices {
        let v = values[a as usize % values.len()];
        let Some(ty) = g.value_type(v).cloned() else { continue };
        let result = match (kind % 11, ty.rank()) {
            (0, 4) => {
                let c = ty.shape[1];
                let groups = if c % 2 == 0 && b % 3 == 0 { 2 } else { 1 };
                let kernel = 1 + (b as usize % 3);
                let mut conv = Conv2d::new(kernel, 1 + (a as usize % 2), (b as usize / 3) % kernel);
                conv.groups = groups;
                conv.bias = b % 2 == 0;
                conv.pad[3] = 0;
                let out_c = 2 * groups;
                let w = g.add_param(name("w"), TensorType::f32([out_c, c / groups, kernel, kernel]));
                let mut ops = vec![v, w];
                if conv.bias {
                    ops.push(g.add_param(name("b"), TensorType::f32([out_c])));
                }
                g.add(conv, &ops)
            }
            (1, _) => g.add(Relu {}, &[v]),
            (2, 4) => {
                let c = ty.shape[1];
                let ps: Vec<Value> = (0..4).map(|_| g.add_param(name("bn"), TensorType::f32([c]))).collect();
                g.add(BatchNorm { eps: [1e-5, 0.001, 0.1][b as usize % 3], momentum: 0.1, training: b % 4 == 0 }, &[v, ps[0], ps[1], ps[2], ps[3]])
            }
            (3, 4) => g.add(MaxPool { kernel: [2, 2], stride: [2, 1], pad: [b as usize % 2, 0, 0, 1], ceil_mode: b % 2 == 0 }, &[v]),
            (4, 4) => g.add(AvgPool { kernel: [3, 3], stride: [1, 2], pad: [1; 4], ceil_mode: a % 2 == 0, count_include_pad: b % 2 == 0 }, &[v]),
            (5, _) => g.add(Add {}, &[v, v]),
            (6, _) => g.add(Concat { axis: b as usize % ty.rank() }, &[v, v]),
            (7, 4) => g.add(Lrn { size: 1 + b as usize % 5, alpha: 1e-4, beta: 0.75, k: 3.4028235e38 }, &[v]),
            (8, _) => g.add(Flatten { axis: b as usize % (ty.rank() + 1) }, &[v]),
            (9, _) => g.add(Dropout { p: 0.4 }, &[v]),
            (10, r) if r >= 1 => g.add(Slice { axis: 0, start: 0, end: ty.shape[0], step: 1 + b as usize % 2 }, &[v]),
            _ => g.add(Softmax { axis: 0 }, &[v]),
        };
        if let Ok(out) = result {
            values.push(out);
        }
    }
    let outs = values.iter().rev().take(1 + choices.len() % 3).copied().collect();
    g.set_outputs(outs);
    g
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop_oneof!["[a-z_]{1,6}", "[a-z]{1,3}\\.[0-9]", "[ -~]{1,8}", "\\PC{1,4}"], 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn text_round_trips(choices in prop::collection::vec(any::<(u8, u8, u8)>(), 0..24), names in names()) {
        let g = build(&choices, &names);
        verify(&g).unwrap();
        let text = text::print(&g);
        let back = text::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        verify(&back).unwrap();
        prop_assert_eq!(text::print(&back), text);
    }

    #[test]
    fn json_round_trips(choices in prop::collection::vec(any::<(u8, u8, u8)>(), 0..24), names in names()) {
        let g = build(&choices, &names);
        let json = json::to_json(&g);
        let back = json::from_json(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        verify(&back).unwrap();
        prop_assert_eq!(text::print(&back), text::print(&g));
        prop_assert_eq!(json::to_json(&back), json);
    }

    #[test]
    fn dumps_are_well_formed(choices in prop::collection::vec(any::<(u8, u8, u8)>(), 0..24), names in names()) {
        let g = build(&choices, &names);
        let dot = dot::to_dot(&g);
        let closed = dot.ends_with("}\n");
        prop_assert!(dot.starts_with("digraph") && closed);
        for id in g.node_ids().filter(|&id| g.op(id).param_name().is_none()) {
            let needle = format!("n{} [label=", id.index());
            prop_assert!(dot.contains(&needle));
        }
        let svg = svg::to_svg(&g).unwrap();
        prop_assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        let drawn = g.node_ids().filter(|&id| g.op(id).param_name().is_none()).count();
        prop_assert_eq!(svg.matches("<rect").count(), drawn);
    }
}

#[test]
fn hostile_json_gives_errors_not_panics() {
    let g = build(&[(0, 0, 0), (1, 1, 1), (2, 1, 0)], &["a".into()]);
    let good = json::to_json(&g);
    for end in 0..good.trim_end().len() {
        assert!(json::from_json(&good[..end]).is_err());
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(json::from_json(&deep).is_err());
    let bad_ref = good.replacen("\"operands\": [\n        [\n          0,", "\"operands\": [\n        [\n          99,", 1);
    if bad_ref != good {
        let e = json::from_json(&bad_ref).unwrap_err().to_string();
        assert!(e.contains("99"), "{e}");
    }
    let e = json::from_json(&good.replace("\"kiln-ir\"", "\"other\"")).unwrap_err().to_string();
    assert!(e.contains("format"), "{e}");
}

#[test]
fn dot_clusters_follow_parameter_prefixes() {
    assert_eq!(dot::blocks_of_param("layer3.1.conv2.weight"), ["layer3", "layer3.1"]);
    assert_eq!(dot::blocks_of_param("inception_3a_1x1.weight"), ["inception_3a"]);
    assert_eq!(dot::blocks_of_param("Mixed_6b.branch1x1.conv.weight"), ["Mixed_6b", "Mixed_6b.branch1x1"]);
    assert!(dot::blocks_of_param("conv1.weight").is_empty());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/inception_3a.kir");
    let g = text::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dot = dot::to_dot(&g);
    assert!(dot.contains("subgraph \"cluster_inception_3a\""), "{dot}");
    assert!(dot.contains("@inception_3a_1x1.weight") && dot.contains("MACs"));
}

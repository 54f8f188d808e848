//! Helpers shared by the format tests: the committed reference files, random
//! graphs (valid ones, built with shape inference, and unverified ones with
//! random attributes), and an XML well-formedness check for the SVG.
#![allow(dead_code)]

use kiln_ir::ops::*;
use kiln_ir::*;
use std::path::PathBuf;

/// A file of the workspace's `tests/data`.
pub fn data(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the reference blocks are committed in tests/data)",
            p.display()
        )
    })
}

/// The text without its comment lines (the canonical form has none).
pub fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// Names that need quoting, escapes or care: spaces, quotes, backslashes,
/// control characters, non-ASCII, characters of the syntax.
pub const AWKWARD: &[&str] = &[
    "x",
    "layer3.1.conv2.weight",
    "a b",
    "quote\"d",
    "back\\slash",
    "new\nline",
    "tab\tbed",
    "cr\rlf",
    "名前 ✓",
    "\u{1}ctl\u{7f}",
    "@at",
    "%7",
    "{brace}",
    "// not a comment",
    "=",
    ",",
    "",
    "x.y:z/w-1",
    "é",
];

/// A name: one of `AWKWARD`, maybe with a random suffix.
pub fn awkward(rng: &mut Rng) -> String {
    let base = rng.pick(AWKWARD).to_string();
    if rng.coin() {
        base
    } else {
        format!("{base}{}", rng.below(100))
    }
}

/// Floats that stress the printer: tiny, huge, subnormal, negative zero,
/// values with no short decimal form.
pub const FLOATS: &[f32] = &[
    0.0,
    -0.0,
    1e-5,
    0.1,
    0.75,
    1.0,
    2.5,
    3.4028235e38,
    -3.4028235e38,
    1e-45,
    1.1754944e-38,
    123456.79,
    0.3,
    16777216.0,
    1e16,
];

pub fn float(rng: &mut Rng) -> f32 {
    if rng.coin() {
        *rng.pick(FLOATS)
    } else {
        loop {
            let f = f32::from_bits(rng.next() as u32);
            if f.is_finite() {
                return f;
            }
        }
    }
}

/// One op of every kind, with the attributes it has. `every_op_has_a_template`
/// checks that this covers `Op::KINDS`, so a new op is tested here too.
pub fn templates() -> Vec<Op> {
    vec![
        Input { name: "x".into() }.into(),
        Param { name: "w".into() }.into(),
        Conv2d::new(3, 1, 1).into(),
        BatchNorm::inference(1e-5).into(),
        Relu {}.into(),
        MaxPool {
            kernel: [2, 2],
            stride: [2, 2],
            pad: [0; 4],
            ceil_mode: false,
        }
        .into(),
        AvgPool {
            kernel: [3, 3],
            stride: [1, 1],
            pad: [1; 4],
            ceil_mode: false,
            count_include_pad: true,
        }
        .into(),
        GlobalAvgPool {}.into(),
        Lrn {
            size: 5,
            alpha: 1e-4,
            beta: 0.75,
            k: 1.0,
        }
        .into(),
        Concat { axis: 1 }.into(),
        Add {}.into(),
        Dense { bias: true }.into(),
        Flatten { axis: 1 }.into(),
        Reshape {
            shape: vec![1, 2, 3],
        }
        .into(),
        Pad {
            pads: vec![0, 0, 1, 1, 0, 0, 1, 1],
            value: 0.0,
        }
        .into(),
        Slice {
            axis: 1,
            start: 0,
            end: 4,
            step: 2,
        }
        .into(),
        Dropout { p: 0.5 }.into(),
        Softmax { axis: 1 }.into(),
        SoftmaxCrossEntropy {
            label_smoothing: 0.1,
        }
        .into(),
    ]
}

/// `v` with every leaf replaced by a random value of the same JSON type.
fn randomize(v: &serde_json::Value, rng: &mut Rng) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Bool(_) => J::Bool(rng.coin()),
        J::Number(n) if n.is_u64() => {
            J::from(*rng.pick(&[0u64, 1, 2, 3, 7, 255, (1 << 31) - 1, 1 << 32, u64::MAX]))
        }
        J::Number(_) => J::from(float(rng)),
        J::String(_) => J::String(awkward(rng)),
        J::Array(items) => J::Array(items.iter().map(|i| randomize(i, rng)).collect()),
        J::Object(m) => J::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), randomize(v, rng)))
                .collect(),
        ),
        J::Null => J::Null,
    }
}

/// `op` with random attributes of the right types (not necessarily valid ones).
pub fn random_attributes(op: &Op, rng: &mut Rng) -> Op {
    let mut attrs = serde_json::to_value(op).expect("an op serializes");
    attrs
        .as_object_mut()
        .expect("an op is a record")
        .shift_remove("op");
    Op::from_attributes(op.kind(), randomize(&attrs, rng))
        .expect("a known kind")
        .expect("same field types")
}

/// A random type of rank 0 to 4 within the element limit.
pub fn random_type(rng: &mut Rng) -> TensorType {
    let mut shape = Vec::new();
    for _ in 0..rng.below(5) {
        let d = *rng.pick(&[1usize, 2, 3, 7, 64, 1000]);
        if shape.iter().product::<usize>() * d <= kiln_ir::types::MAX_ELEMENTS as usize {
            shape.push(d);
        }
    }
    TensorType::f32(shape)
}

/// A random graph that the verifier would mostly refuse but the formats must
/// carry exactly: random ops with random attributes, random operands (params
/// shared between users), one to three outputs per node, awkward names.
pub fn random_unverified_graph(seed: u64, nodes: usize) -> Graph {
    let mut rng = Rng(seed | 1);
    let mut g = Graph::new(awkward(&mut rng));
    let templates = templates();
    let mut values: Vec<Value> = vec![g.add_input(awkward(&mut rng), random_type(&mut rng))];
    let (mut inputs, mut params) = (
        vec![g.op(values[0].node).input_name().unwrap().to_string()],
        Vec::new(),
    );
    for k in 0..nodes {
        let op = random_attributes(rng.pick(&templates), &mut rng);
        match op {
            Op::Input(_) | Op::Param(_) => {
                let taken = if matches!(op, Op::Input(_)) {
                    &mut inputs
                } else {
                    &mut params
                };
                let mut name = awkward(&mut rng);
                if taken.contains(&name) {
                    name = format!("{name}#{k}");
                }
                taken.push(name.clone());
                let op = if matches!(op, Op::Input(_)) {
                    Op::Input(Input { name })
                } else {
                    Op::Param(Param { name })
                };
                let id = g.add_node_unchecked(op, &[], vec![random_type(&mut rng)]);
                values.push(id.into());
            }
            op => {
                let operands: Vec<Value> = (0..rng.below(5)).map(|_| *rng.pick(&values)).collect();
                let outputs = (0..1 + rng.below(3))
                    .map(|_| random_type(&mut rng))
                    .collect();
                let id = g.add_node_unchecked(op, &operands, outputs);
                let n = g.node(id).unwrap().outputs.len() as u32;
                values.extend((0..n).map(|port| Value { node: id, port }));
            }
        }
    }
    let outs = (0..1 + rng.below(3)).map(|_| *rng.pick(&values)).collect();
    g.set_outputs(outs);
    g
}

/// A random valid graph, built with shape inference from a list of choices:
/// convs (grouped, biased, padded), BN, pools, concat, add, LRN, flatten,
/// dropout, slice and softmax over an NCHW input, with awkward names.
pub fn random_valid_graph(choices: &[(u8, u8, u8)], names: &[String]) -> Graph {
    let mut g = Graph::new(names.first().cloned().unwrap_or_default());
    let x = g.add_input("in \"put\"", TensorType::f32([2, 4, 9, 7]));
    let mut values = vec![x];
    let mut k = 0usize;
    let mut name = |prefix: &str| {
        k += 1;
        format!(
            "{prefix}{}.{}",
            names
                .get(k % names.len().max(1))
                .cloned()
                .unwrap_or_default(),
            k
        )
    };
    for &(kind, a, b) in choices {
        let v = values[a as usize % values.len()];
        let Some(ty) = g.value_type(v).cloned() else {
            continue;
        };
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
                let w = g.add_param(
                    name("w"),
                    TensorType::f32([out_c, c / groups, kernel, kernel]),
                );
                let mut ops = vec![v, w];
                if conv.bias {
                    ops.push(g.add_param(name("b"), TensorType::f32([out_c])));
                }
                g.add(conv, &ops)
            }
            (1, _) => g.add(Relu {}, &[v]),
            (2, 4) => {
                let c = ty.shape[1];
                let ps: Vec<Value> = (0..4)
                    .map(|_| g.add_param(name("bn"), TensorType::f32([c])))
                    .collect();
                let bn = BatchNorm {
                    eps: [1e-5, 0.001, 0.1][b as usize % 3],
                    momentum: 0.1,
                    training: b % 4 == 0,
                };
                g.add(bn, &[v, ps[0], ps[1], ps[2], ps[3]])
            }
            (3, 4) => g.add(
                MaxPool {
                    kernel: [2, 2],
                    stride: [2, 1],
                    pad: [b as usize % 2, 0, 0, 1],
                    ceil_mode: b % 2 == 0,
                },
                &[v],
            ),
            (4, 4) => g.add(
                AvgPool {
                    kernel: [3, 3],
                    stride: [1, 2],
                    pad: [1; 4],
                    ceil_mode: a % 2 == 0,
                    count_include_pad: b % 2 == 0,
                },
                &[v],
            ),
            (5, _) => g.add(Add {}, &[v, v]),
            (6, _) => g.add(
                Concat {
                    axis: b as usize % ty.rank(),
                },
                &[v, v],
            ),
            (7, 4) => g.add(
                Lrn {
                    size: 1 + b as usize % 5,
                    alpha: 1e-4,
                    beta: 0.75,
                    k: 3.4028235e38,
                },
                &[v],
            ),
            (8, _) => g.add(
                Flatten {
                    axis: b as usize % (ty.rank() + 1),
                },
                &[v],
            ),
            (9, _) => g.add(Dropout { p: 0.4 }, &[v]),
            (10, r) if r >= 1 => g.add(
                Slice {
                    axis: 0,
                    start: 0,
                    end: ty.shape[0],
                    step: 1 + b as usize % 2,
                },
                &[v],
            ),
            _ => g.add(Softmax { axis: 0 }, &[v]),
        };
        if let Ok(out) = result {
            values.push(out);
        }
    }
    let outs = values
        .iter()
        .rev()
        .take(1 + choices.len() % 3)
        .copied()
        .collect();
    g.set_outputs(outs);
    g
}

/// Checks that `doc` is well-formed XML as far as an SVG writer can get it
/// wrong: tags balance and nest, attribute values are quoted, text has no raw
/// `<` or `&` outside entities. Returns the element names in document order.
pub fn xml_elements(doc: &str) -> Result<Vec<String>, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut rest = doc;
    while let Some(open) = rest.find(['<', '&']) {
        let (text, tail) = rest.split_at(open);
        if text.contains('>') {
            return Err(format!(
                "a raw '>' in text before {:?}",
                &tail[..tail.len().min(40)]
            ));
        }
        if tail.starts_with('&') {
            let end = tail.find(';').ok_or("an unterminated entity")?;
            if !["&amp;", "&lt;", "&gt;", "&quot;"].contains(&&tail[..=end]) {
                return Err(format!("unknown entity {}", &tail[..=end]));
            }
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail.find('>').ok_or("an unterminated tag")?;
        let tag = &tail[1..end];
        rest = &tail[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
        {
            return Err(format!("bad element name in <{tag}>"));
        }
        if tag.matches('"').count() % 2 != 0 || tag.contains('<') {
            return Err(format!("bad attributes in <{tag}>"));
        }
        names.push(name.clone());
        if !self_closing {
            stack.push(name);
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements {stack:?}"));
    }
    if rest.trim() != "" {
        return Err("text after the root element".into());
    }
    Ok(names)
}

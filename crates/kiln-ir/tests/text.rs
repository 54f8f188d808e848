//! The text format: canonical files round-trip, errors say line:column.

use kiln_ir::text::{parse, print};
use kiln_ir::verify;

fn data(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_reference_blocks_round_trip() {
    for f in ["inception_3a.kir", "resnet_bottleneck.kir"] {
        let text = data(f);
        let g = parse(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        verify(&g).unwrap();
        let printed = print(&g);
        // The files carry a leading comment line, which is not part of the graph.
        let body: String = text.lines().filter(|l| !l.starts_with("//")).map(|l| format!("{l}\n")).collect();
        assert_eq!(printed, body, "{f}");
        assert_eq!(print(&parse(&printed).unwrap()), printed);
    }
}

fn error(text: &str) -> String {
    parse(text).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn errors_say_line_column_and_what_was_expected() {
    let head = "graph \"g\"\n%0 = input \"x\" : f32[1,2]\n";
    let cases: &[(&str, &str)] = &[
        ("%1 = relu(%0 : f32[1,2]\noutput %1\n", "3:14: expected ',' or ')'"),
        ("%1 = relux(%0) : f32[1,2]\noutput %1\n", "3:6: unknown op 'relux'"),
        ("%2 = relu(%0) : f32[1,2]\noutput %2\n", "3:2: expected %1"),
        ("%1 = relu(%7) : f32[1,2]\noutput %1\n", "3:11: %7 is not defined"),
        ("%1 = relu(@w) : f32[1,2]\noutput %1\n", "3:11: parameter @w is not declared"),
        ("%1 = softmax(%0) {axis=true} : f32[1,2]\noutput %1\n", "3:19: softmax attribute axis"),
        ("%1 = softmax(%0) {axis=1, bogus=2} : f32[1,2]\noutput %1\n", "3:27: softmax attribute bogus: unknown field `bogus`"),
        ("%1 = softmax(%0) : f32[1,2]\noutput %1\n", "missing field `axis`"),
        ("%1 = relu(%0) : f32[1,2\noutput %1\n", "3:24: expected ',' or ']'"),
        ("%1 = relu(%0) : f32[4294967296]\noutput %1\n", "expected a dimension of at most 2147483647, found 4294967296"),
        ("%1 = relu(%0) : f32[65536,65536]\noutput %1\n", "at most 2147483647 elements"),
        ("%1 = relu(%0) : f64[1,2]\noutput %1\n", "expected a type"),
        ("%1 = relu(%0) : f32[1,2]\n", "expected an 'output %N, ...' line"),
        ("%1 = relu(%0) : f32[1,2]\noutput %1\n%2 = relu(%1) : f32[1,2]\n", "nothing may follow"),
    ];
    for (tail, expected) in cases {
        let e = error(&format!("{head}{tail}"));
        assert!(e.contains(expected), "for {tail:?}: got {e:?}, expected {expected:?}");
    }
    assert!(error("").contains("graph"));
    assert!(error("%0 = input \"x\" : f32[1]\n").contains("1:1: expected 'graph"));
}

#[test]
fn conv_attribute_errors_name_the_path() {
    let text = "graph \"g\"\n%0 = input \"x\" : f32[1,1,3,3]\n@w = param : f32[1,1,1,1]\n\
        %1 = conv2d(%0, @w) {kernel=[1,1], stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1, bias=false, epilogue={residual=false, relu=1}} : f32[1,1,3,3]\noutput %1\n";
    let e = error(text);
    assert!(e.starts_with("4:") && e.contains("epilogue.relu") && e.contains("boolean"), "{e}");
}

#[test]
fn every_truncation_and_many_mutations_give_errors_not_panics() {
    let text = data("resnet_bottleneck.kir");
    for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
        let _ = parse(&text[..end]);
    }
    let bytes = text.as_bytes();
    let mut state = 0x2545f4914f6cdd1du64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut b = bytes.to_vec();
        let at = state as usize % b.len();
        b[at] = b"%@{}[](),:=\"\\-.e0123456789 \nxq"[(state >> 40) as usize % 30];
        if let Ok(s) = std::str::from_utf8(&b) {
            if let Ok(g) = parse(s) {
                let _ = verify(&g);
                let _ = print(&g);
            }
        }
    }
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("graph \"g\"\n%0 = input \"x\" : f32[1]\n%1 = relu(%0) {{a={}{}}} : f32[1]\noutput %1\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(error(&deep).contains("levels of nested"));
}

#[test]
fn quoted_names_and_strings_round_trip() {
    let text = "graph \"we\\\"ird\\n\"\n%0 = input \"in put\" : f32[2]\n@\"w eight\" = param : f32[2]\n%1 = add(%0, @\"w eight\") : f32[2]\noutput %1, %0\n";
    let g = parse(text).unwrap();
    verify(&g).unwrap();
    assert_eq!(print(&g), text);
}

//! The interpreter's conv (loops interchanged so rows run innermost, planes in
//! parallel) gives bit for bit the result of the definition written as seven
//! nested loops, on random shapes and attributes; and the fused epilogue gives
//! bit for bit conv → add → relu.

mod common;

use common::{assert_bits_eq, eval, random};
use kiln_ir::ops::{Add, Conv2d, Epilogue, Relu};
use kiln_ir::Tensor;
use proptest::prelude::*;

/// The definition: for every output, the f64 sum over (ci, ky, kx) in order of
/// the taps that land inside the input, plus the bias, rounded once.
fn naive_conv(op: &Conv2d, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let [n, c, h, wd] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let [o, cg, kh, kw] = [w.shape[0], w.shape[1], w.shape[2], w.shape[3]];
    let og = o / op.groups;
    let oh = op.output_size(0, h).unwrap();
    let ow = op.output_size(1, wd).unwrap();
    let mut out = Vec::new();
    for b in 0..n {
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0f64;
                    for ci in 0..cg {
                        let ch = (oc / og) * cg + ci;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * op.stride[0] + ky * op.dilation[0]) as i64
                                    - op.pad[0] as i64;
                                let ix = (ox * op.stride[1] + kx * op.dilation[1]) as i64
                                    - op.pad[1] as i64;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                    continue;
                                }
                                let xv =
                                    x.data[((b * c + ch) * h + iy as usize) * wd + ix as usize];
                                let wv = w.data[((oc * cg + ci) * kh + ky) * kw + kx];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out.push((acc + bias.map_or(0.0, |b| b.data[oc] as f64)) as f32);
                }
            }
        }
    }
    Tensor::new(vec![n, o, oh, ow], out).unwrap()
}

/// A random conv that the verifier accepts: the op, the input shape, the
/// number of output channels and a seed for the operands.
fn conv_case() -> impl Strategy<Value = (Conv2d, [usize; 4], usize, u64)> {
    (
        (1usize..3, 1usize..4, 1usize..3, 1usize..3), // batch, groups, in and out channels per group
        (1usize..4, 1usize..4),                       // kernel
        (1usize..4, 1usize..4),                       // stride
        (1usize..3, 1usize..3),                       // dilation
        (0usize..3, 0usize..3, 0usize..3, 0usize..3), // pad: top, left, bottom, right
        (1usize..9, 1usize..9),                       // input height, width
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter_map(
            "pads below the kernel extent and a kernel that fits",
            |((n, g, cg, og), k, s, d, p, hw, bias, seed)| {
                let op = Conv2d {
                    kernel: [k.0, k.1],
                    stride: [s.0, s.1],
                    pad: [p.0, p.1, p.2, p.3],
                    dilation: [d.0, d.1],
                    groups: g,
                    bias,
                    epilogue: Epilogue::default(),
                };
                let extent = [d.0 * (k.0 - 1) + 1, d.1 * (k.1 - 1) + 1];
                let pads_ok =
                    p.0 < extent[0] && p.2 < extent[0] && p.1 < extent[1] && p.3 < extent[1];
                let fits = op.output_size(0, hw.0).is_some() && op.output_size(1, hw.1).is_some();
                (pads_ok && fits).then_some((op, [n, g * cg, hw.0, hw.1], g * og, seed))
            },
        )
}

fn operands(op: &Conv2d, xs: [usize; 4], o: usize, seed: u64) -> (Tensor, Tensor, Option<Tensor>) {
    let x = random(&xs, seed);
    let w = random(
        &[o, xs[1] / op.groups, op.kernel[0], op.kernel[1]],
        seed ^ 1,
    );
    let b = op.bias.then(|| random(&[o], seed ^ 2));
    (x, w, b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn conv_equals_the_definition_bit_for_bit((op, xs, o, seed) in conv_case()) {
        let (x, w, b) = operands(&op, xs, o, seed);
        let mut args = vec![&x, &w];
        args.extend(b.as_ref());
        let found = eval(op.clone(), &args);
        assert_bits_eq(&found, &naive_conv(&op, &x, &w, b.as_ref()));
    }

    #[test]
    fn fused_epilogue_equals_conv_add_relu_bit_for_bit((op, xs, o, seed) in conv_case()) {
        let (x, w, b) = operands(&op, xs, o, seed);
        let mut args = vec![&x, &w];
        args.extend(b.as_ref());
        let plain = eval(op.clone(), &args);
        let r = random(&plain.shape, seed ^ 3);
        let unfused = eval(Relu {}, &[&eval(Add {}, &[&plain, &r])]);
        let fused_op = Conv2d { epilogue: Epilogue { residual: true, relu: true }, ..op };
        args.push(&r);
        assert_bits_eq(&eval(fused_op, &args), &unfused);
    }
}

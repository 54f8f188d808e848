//! Hand-computed values for every op, and the edge cases of PyTorch's
//! semantics: ceil-mode windows, count_include_pad, LRN at the channel edges,
//! label smoothing, groups, dilation, asymmetric padding, the fused epilogue.

mod common;

use common::{close, eval, iota, t};
use kiln_interp::eval_op;
use kiln_ir::ops::*;
use kiln_ir::Tensor;

fn conv(k: usize, s: usize, p: usize) -> Conv2d {
    Conv2d::new(k, s, p)
}

#[test]
fn conv_3x3_with_padding() {
    // x = 1..9 in a 3x3 plane, an all-ones 3x3 kernel, pad 1: each output is
    // the sum of the input's 3x3 neighbourhood.
    let y = eval(
        conv(3, 1, 1),
        &[&iota(&[1, 1, 3, 3]), &Tensor::filled(&[1, 1, 3, 3], 1.0)],
    );
    close(
        &y,
        &[1, 1, 3, 3],
        &[12., 21., 16., 27., 45., 33., 24., 39., 28.],
    );
}

#[test]
fn conv_is_cross_correlation_not_convolution() {
    // A kernel with a single 1 at the top-left picks x[i-1][j-1] (pad 1), not x[i+1][j+1].
    let mut k = Tensor::zeros(&[1, 1, 3, 3]);
    k.data[0] = 1.0;
    let y = eval(conv(3, 1, 1), &[&iota(&[1, 1, 3, 3]), &k]);
    close(&y, &[1, 1, 3, 3], &[0., 0., 0., 0., 1., 2., 0., 4., 5.]);
}

#[test]
fn conv_stride_dilation_asymmetric_padding_and_bias() {
    let mut c = conv(2, 2, 0);
    c.dilation = [2, 1];
    c.pad = [0, 1, 1, 0]; // top 0, left 1, bottom 1, right 0
    c.bias = true;
    // x: 1x1x4x3 = 1..12; padded to 5x4 (a zero row below, a zero column left).
    // Kernel taps rows {r, r+2} and columns {q, q+1}, all weights 1, bias 0.5.
    let y = eval(
        c,
        &[
            &iota(&[1, 1, 4, 3]),
            &Tensor::filled(&[1, 1, 2, 2], 1.0),
            &t(&[1], &[0.5]),
        ],
    );
    // Output rows r = 0, 2 (rows 0+2 and 2+4(pad)); columns q = 0, 2 of the padded width 4.
    // r=0,q=0: padded cols {0,1} = {pad, x col 0}: x[0][0] + x[2][0] = 1 + 7 = 8.
    // r=0,q=2: cols {2,3} = x cols {1,2}: 2+3 + 8+9 = 22.
    // r=2,q=0: rows {2, 4=pad}: x[2][0] = 7. r=2,q=2: 8 + 9 = 17.
    close(&y, &[1, 1, 2, 2], &[8.5, 22.5, 7.5, 17.5]);
}

#[test]
fn grouped_conv_keeps_groups_apart() {
    let mut c = conv(1, 1, 0);
    c.groups = 2;
    // Two input channels, two output channels, weight [2, 1, 1, 1] = [2, 3].
    let x = t(&[1, 2, 1, 2], &[1., 2., 10., 20.]);
    let y = eval(c, &[&x, &t(&[2, 1, 1, 1], &[2., 3.])]);
    close(&y, &[1, 2, 1, 2], &[2., 4., 30., 60.]);
}

#[test]
fn fused_epilogue_equals_the_unfused_ops_bit_for_bit() {
    let x = t(&[1, 2, 2, 2], &[0.3, -1.7, 2.2, 0.9, -0.4, 1.1, -2.5, 0.6]);
    let w = t(&[2, 2, 1, 1], &[0.7, -1.3, 0.25, 0.9]);
    let b = t(&[2], &[0.1, -0.2]);
    let r = t(&[1, 2, 2, 2], &[-0.5, 0.5, 1.5, -3.0, 0.2, -0.1, 0.05, 2.0]);
    let mut plain = conv(1, 1, 0);
    plain.bias = true;
    let unfused = eval(
        Relu {},
        &[&eval(Add {}, &[&eval(plain.clone(), &[&x, &w, &b]), &r])],
    );
    let mut fused = plain;
    fused.epilogue = Epilogue {
        residual: true,
        relu: true,
    };
    let y = eval(fused, &[&x, &w, &b, &r]);
    assert_eq!(
        y.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        unfused.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert!(y.data.contains(&0.0), "the relu clipped something");
}

#[test]
fn batch_norm_inference_and_training() {
    let x = t(&[2, 1, 1, 2], &[1., 3., 5., 7.]);
    let (g, b) = (t(&[1], &[2.0]), t(&[1], &[0.5]));
    let (m, v) = (t(&[1], &[1.0]), t(&[1], &[4.0]));
    let y = eval(BatchNorm::inference(0.0001), &[&x, &g, &b, &m, &v]);
    let s = 2.0 / (4.0f32 + 1e-4).sqrt();
    close(
        &y,
        &[2, 1, 1, 2],
        &[0.5, 2.0 * s + 0.5, 4.0 * s + 0.5, 6.0 * s + 0.5],
    );
    // Training mode: batch mean 4, biased variance 5.
    let train = BatchNorm {
        eps: 1e-4,
        momentum: 0.1,
        training: true,
    };
    let y = eval(train, &[&x, &g, &b, &m, &v]);
    let s = 2.0 / (5.0f32 + 1e-4).sqrt();
    close(
        &y,
        &[2, 1, 1, 2],
        &[-3.0 * s + 0.5, -s + 0.5, s + 0.5, 3.0 * s + 0.5],
    );
}

#[test]
fn relu_add_dropout() {
    let x = t(&[4], &[-1., 0., 2., -0.5]);
    close(&eval(Relu {}, &[&x]), &[4], &[0., 0., 2., 0.]);
    close(&eval(Add {}, &[&x, &x]), &[4], &[-2., 0., 4., -1.]);
    close(&eval(Dropout { p: 0.5 }, &[&x]), &[4], &[-1., 0., 2., -0.5]);
}

fn max_pool(k: usize, s: usize, p: usize, ceil: bool) -> MaxPool {
    MaxPool {
        kernel: [k; 2],
        stride: [s; 2],
        pad: [p; 4],
        ceil_mode: ceil,
    }
}

fn avg_pool(k: usize, s: usize, p: usize, ceil: bool, include: bool) -> AvgPool {
    AvgPool {
        kernel: [k; 2],
        stride: [s; 2],
        pad: [p; 4],
        ceil_mode: ceil,
        count_include_pad: include,
    }
}

#[test]
fn max_pool_floor_and_ceil() {
    let x = iota(&[1, 1, 3, 3]);
    close(&eval(max_pool(2, 2, 0, false), &[&x]), &[1, 1, 1, 1], &[5.]);
    // Ceil mode adds the partial windows on the right and bottom.
    close(
        &eval(max_pool(2, 2, 0, true), &[&x]),
        &[1, 1, 2, 2],
        &[5., 6., 8., 9.],
    );
    // Padding is -inf: with all-negative input, a padded window still gives an input value.
    let neg = t(&[1, 1, 2, 2], &[-4., -3., -2., -1.]);
    close(
        &eval(max_pool(2, 1, 1, false), &[&neg]),
        &[1, 1, 3, 3],
        &[-4., -3., -3., -2., -1., -1., -2., -1., -1.],
    );
}

#[test]
fn ceil_mode_drops_a_window_that_starts_in_the_padding() {
    // Input 4, kernel 2, stride 2, pad 1, ceil: windows would start at -1, 1, 3, 5;
    // the one at 5 starts beyond the input + begin padding, so 3 outputs.
    let x = iota(&[1, 1, 1, 4]);
    let op = MaxPool {
        kernel: [1, 2],
        stride: [1, 2],
        pad: [0, 1, 0, 1],
        ceil_mode: true,
    };
    close(&eval(op, &[&x]), &[1, 1, 1, 3], &[1., 3., 4.]);
}

#[test]
fn avg_pool_count_include_pad_both_ways() {
    let x = iota(&[1, 1, 2, 2]);
    // 3x3 windows, stride 1, pad 1 over a 2x2 input: every window covers the
    // whole input (sum 10) and 9 padded positions, or 4 real ones.
    close(
        &eval(avg_pool(3, 1, 1, false, true), &[&x]),
        &[1, 1, 2, 2],
        &[10. / 9.; 4],
    );
    close(
        &eval(avg_pool(3, 1, 1, false, false), &[&x]),
        &[1, 1, 2, 2],
        &[2.5; 4],
    );
}

#[test]
fn avg_pool_ceil_overhang_is_not_counted_even_with_count_include_pad() {
    // Input 1x3, kernel 2, stride 2, no padding, ceil: windows [0,2) and [2,4);
    // the second overhangs the input by one and that position is not counted.
    let x = t(&[1, 1, 1, 3], &[1., 2., 6.]);
    let op = AvgPool {
        kernel: [1, 2],
        stride: [1, 2],
        pad: [0; 4],
        ceil_mode: true,
        count_include_pad: true,
    };
    close(&eval(op, &[&x]), &[1, 1, 1, 2], &[1.5, 6.]);
}

#[test]
fn global_avg_pool_means_each_plane() {
    let x = iota(&[1, 2, 2, 2]);
    close(&eval(GlobalAvgPool {}, &[&x]), &[1, 2, 1, 1], &[2.5, 6.5]);
}

#[test]
fn lrn_windows_clip_at_the_channel_edges() {
    // size 3, alpha 3 (alpha/size = 1), beta 1, k 1: y_c = x_c / (1 + sum of x^2 over c-1..c+1).
    let x = t(&[1, 3, 1, 1], &[1., 2., 3.]);
    let y = eval(
        Lrn {
            size: 3,
            alpha: 3.0,
            beta: 1.0,
            k: 1.0,
        },
        &[&x],
    );
    close(&y, &[1, 3, 1, 1], &[1. / 6., 2. / 15., 3. / 14.]);
    // size 2: window c - 1 .. c (size/2 = 1 before, (size-1)/2 = 0 after).
    let y = eval(
        Lrn {
            size: 2,
            alpha: 2.0,
            beta: 1.0,
            k: 1.0,
        },
        &[&x],
    );
    close(&y, &[1, 3, 1, 1], &[1. / 2., 2. / 6., 3. / 14.]);
}

#[test]
fn concat_on_channels_and_on_width() {
    let a = iota(&[1, 1, 1, 2]);
    let b = t(&[1, 2, 1, 2], &[5., 6., 7., 8.]);
    close(
        &eval(Concat { axis: 1 }, &[&a, &b]),
        &[1, 3, 1, 2],
        &[1., 2., 5., 6., 7., 8.],
    );
    close(
        &eval(Concat { axis: 3 }, &[&a, &a]),
        &[1, 1, 1, 4],
        &[1., 2., 1., 2.],
    );
}

#[test]
fn dense_with_bias() {
    let x = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let w = t(&[2, 3], &[1., 0., -1., 0.5, 0.5, 0.5]);
    let y = eval(Dense { bias: true }, &[&x, &w, &t(&[2], &[10., 20.])]);
    close(&y, &[2, 2], &[8., 23., 8., 27.5]);
}

#[test]
fn flatten_reshape_pad_slice() {
    let x = iota(&[1, 2, 1, 3]);
    close(
        &eval(Flatten { axis: 1 }, &[&x]),
        &[1, 6],
        &[1., 2., 3., 4., 5., 6.],
    );
    close(
        &eval(Reshape { shape: vec![3, 2] }, &[&x]),
        &[3, 2],
        &[1., 2., 3., 4., 5., 6.],
    );
    let p = eval(
        Pad {
            pads: vec![0, 1, 0, 0, 0, 0, 0, 1],
            value: -1.0,
        },
        &[&x],
    );
    close(
        &p,
        &[1, 3, 1, 4],
        &[-1., -1., -1., -1., 1., 2., 3., -1., 4., 5., 6., -1.],
    );
    let s = eval(
        Slice {
            axis: 3,
            start: 0,
            end: 3,
            step: 2,
        },
        &[&x],
    );
    close(&s, &[1, 2, 1, 2], &[1., 3., 4., 6.]);
}

#[test]
fn softmax_is_stable_for_large_logits() {
    let x = t(&[1, 3], &[1000., 1001., 1002.]);
    let y = eval(Softmax { axis: 1 }, &[&x]);
    let e = [(-2f64).exp(), (-1f64).exp(), 1.0];
    let s: f64 = e.iter().sum();
    close(
        &y,
        &[1, 3],
        &[(e[0] / s) as f32, (e[1] / s) as f32, (e[2] / s) as f32],
    );
}

#[test]
fn cross_entropy_with_label_smoothing_matches_the_formula() {
    // torch.nn.CrossEntropyLoss(label_smoothing=eps): per row,
    // (1 - eps) * -log p[label] + eps * mean over classes of -log p[c].
    let logits = t(&[2, 3], &[1., 2., 3., 0., 0., 0.]);
    let labels = t(&[2], &[2., 0.]);
    let eps = 0.1f64;
    let row = |z: [f64; 3], label: usize| {
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        let nll: Vec<f64> = z.iter().map(|v| lse - v).collect();
        (1.0 - eps) * nll[label] + eps * nll.iter().sum::<f64>() / 3.0
    };
    let expected = (row([1., 2., 3.], 2) + row([0., 0., 0.], 0)) / 2.0;
    let y = eval(
        SoftmaxCrossEntropy {
            label_smoothing: 0.1,
        },
        &[&logits, &labels],
    );
    close(&y, &[], &[expected as f32]);
}

#[test]
fn a_bad_label_is_an_error_naming_the_row() {
    let logits = Tensor::zeros(&[2, 3]);
    for bad in [3.0, -1.0, 0.5, f32::NAN] {
        let labels = t(&[2], &[0., bad]);
        let e = eval_op(
            &SoftmaxCrossEntropy {
                label_smoothing: 0.0,
            }
            .into(),
            &[&logits, &labels],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!("label {bad} of row 1")) && e.contains("[0, 3)"),
            "{e}"
        );
    }
}

#[test]
fn conv_batches_and_output_channels() {
    // Kernel 0 = [[1, 2], [3, 4]]; kernel 1 picks the bottom-right tap. The
    // second image is the first negated.
    let x = t(
        &[2, 1, 3, 3],
        &[
            1., 2., 3., 4., 5., 6., 7., 8., 9., -1., -2., -3., -4., -5., -6., -7., -8., -9.,
        ],
    );
    let w = t(&[2, 1, 2, 2], &[1., 2., 3., 4., 0., 0., 0., 1.]);
    let y = eval(conv(2, 1, 0), &[&x, &w]);
    // y00 = 1*1 + 2*2 + 4*3 + 5*4 = 37, y01 = 2 + 6 + 15 + 24 = 47, y10 = 67, y11 = 77.
    let expected = [
        37., 47., 67., 77., 5., 6., 8., 9., -37., -47., -67., -77., -5., -6., -8., -9.,
    ];
    close(&y, &[2, 2, 2, 2], &expected);
}

#[test]
fn conv_dilation_and_stride_on_both_axes() {
    // x[i][j] = 5i + j + 1 on 5x5; 2x2 kernel [[1, 10], [100, 1000]] dilated by 2
    // (taps 2 apart), stride 2: y[r][q] = x[2r][2q] + 10 x[2r][2q+2] + 100 x[2r+2][2q] + 1000 x[2r+2][2q+2].
    let mut c = conv(2, 2, 0);
    c.dilation = [2, 2];
    let y = eval(
        c,
        &[
            &iota(&[1, 1, 5, 5]),
            &t(&[1, 1, 2, 2], &[1., 10., 100., 1000.]),
        ],
    );
    // r=0,q=0: 1 + 30 + 1100 + 13000.
    close(&y, &[1, 1, 2, 2], &[14131., 16353., 25241., 27463.]);
}

#[test]
fn grouped_conv_with_several_channels_per_group() {
    // 4 input channels [1, 2, 3, 4], groups 2, 4 outputs: outputs 0-1 read
    // channels 0-1, outputs 2-3 read channels 2-3.
    let mut c = conv(1, 1, 0);
    c.groups = 2;
    let w = t(&[4, 2, 1, 1], &[1., 10., 100., 1000., 2., 20., 3., 30.]);
    let y = eval(c, &[&t(&[1, 4, 1, 1], &[1., 2., 3., 4.]), &w]);
    // 1 + 20, 100 + 2000, 2*3 + 20*4, 3*3 + 30*4.
    close(&y, &[1, 4, 1, 1], &[21., 2100., 86., 129.]);
}

#[test]
fn partial_epilogues_equal_the_unfused_ops_bit_for_bit() {
    let x = common::random(&[2, 4, 7, 6], 1);
    let w = common::random(&[6, 2, 3, 3], 2);
    let b = common::random(&[6], 3);
    let mut plain = Conv2d {
        kernel: [3, 3],
        stride: [2, 1],
        pad: [1, 0, 2, 1],
        dilation: [1, 2],
        groups: 2,
        bias: true,
        epilogue: Epilogue::default(),
    };
    let base = eval(plain.clone(), &[&x, &w, &b]);
    let r = common::random(&base.shape, 4);
    plain.epilogue = Epilogue {
        residual: true,
        relu: false,
    };
    common::assert_bits_eq(
        &eval(plain.clone(), &[&x, &w, &b, &r]),
        &eval(Add {}, &[&base, &r]),
    );
    plain.epilogue = Epilogue {
        residual: false,
        relu: true,
    };
    common::assert_bits_eq(
        &eval(plain.clone(), &[&x, &w, &b]),
        &eval(Relu {}, &[&base]),
    );
    plain.epilogue = Epilogue {
        residual: true,
        relu: true,
    };
    let unfused = eval(Relu {}, &[&eval(Add {}, &[&base, &r])]);
    common::assert_bits_eq(&eval(plain, &[&x, &w, &b, &r]), &unfused);
}

#[test]
fn avg_pool_ceil_overhang_with_padding_both_ways() {
    // Width 6, kernel 3, stride 2, pad 1 each side, ceil: windows start at -1, 1, 3, 5.
    // The last covers 5 (input), 6 (end padding) and 7 (beyond the padding).
    let x = t(&[1, 1, 1, 6], &[1., 2., 3., 4., 5., 6.]);
    let op = |include| AvgPool {
        kernel: [1, 3],
        stride: [1, 2],
        pad: [0, 1, 0, 1],
        ceil_mode: true,
        count_include_pad: include,
    };
    // Counting padding: (0+1+2)/3, (2+3+4)/3, (4+5+6)/3, (6+0)/2: the overhang is not counted.
    close(&eval(op(true), &[&x]), &[1, 1, 1, 4], &[1., 3., 5., 3.]);
    // Not counting it: (1+2)/2, 3, 5, 6/1.
    close(&eval(op(false), &[&x]), &[1, 1, 1, 4], &[1.5, 3., 5., 6.]);
}

#[test]
fn max_pool_ceil_mode_partial_windows_on_both_axes() {
    // 5x5, kernel 2, stride 2, ceil: rows {0,1}, {2,3}, {4}; the same for columns.
    let y = eval(max_pool(2, 2, 0, true), &[&iota(&[1, 1, 5, 5])]);
    close(
        &y,
        &[1, 1, 3, 3],
        &[7., 9., 10., 17., 19., 20., 22., 24., 25.],
    );
}

#[test]
fn nan_propagates_through_relu_and_max_pool() {
    let x = t(&[1, 1, 2, 2], &[f32::NAN, -1., 2., -0.0]);
    let r = eval(Relu {}, &[&x]);
    assert!(r.data[0].is_nan());
    assert_eq!(r.data[1..], [0., 2., 0.]);
    assert!(eval(max_pool(2, 2, 0, false), &[&x]).data[0].is_nan());
}

#[test]
fn softmax_along_the_first_axis() {
    // Columns [0, 0] and [1, 3]: 1/2, 1/2 and 1/(1+e^2), e^2/(1+e^2).
    let y = eval(Softmax { axis: 0 }, &[&t(&[2, 2], &[0., 1., 0., 3.])]);
    let e2 = 2f64.exp();
    close(
        &y,
        &[2, 2],
        &[
            0.5,
            (1.0 / (1.0 + e2)) as f32,
            0.5,
            (e2 / (1.0 + e2)) as f32,
        ],
    );
}

#[test]
fn cross_entropy_known_values() {
    // logits [1, 2, 3], label 2: -log p = log(e + e^2 + e^3) - 3 = 0.40760596.
    // Smoothing adds eps * (mean over classes of -log p - (-log p[2])) = eps * (3 - mean(x)) = eps.
    let logits = t(&[1, 3], &[1., 2., 3.]);
    let labels = t(&[1], &[2.]);
    let ce = |eps| {
        eval(
            SoftmaxCrossEntropy {
                label_smoothing: eps,
            },
            &[&logits, &labels],
        )
    };
    close(&ce(0.0), &[], &[0.407_605_96]);
    close(&ce(0.1), &[], &[0.507_605_96]);
    // eps = 1: only the uniform target remains, lse - mean(x) = 3.40760596 - 2.
    close(&ce(1.0), &[], &[1.407_606]);
}

#[test]
fn batch_norm_on_dense_features() {
    // [N, C] = [2, 2]: channel 0 holds 1, 3 (mean 2, variance 1), channel 1 holds 0, 0.
    let x = t(&[2, 2], &[1., 0., 3., 0.]);
    let ones = Tensor::filled(&[2], 1.0);
    let zeros = Tensor::zeros(&[2]);
    let y = eval(
        BatchNorm {
            eps: 1e-5,
            momentum: 0.1,
            training: true,
        },
        &[&x, &ones, &zeros, &zeros, &ones],
    );
    let s = 1.0 / (1.0f32 + 1e-5).sqrt();
    close(&y, &[2, 2], &[-s, 0., s, 0.]);
}

#[test]
fn lrn_windows_are_per_spatial_position() {
    // Rank 3 ([N, C, L]); position 0 holds channels [1, 2], position 1 holds [3, 0].
    // size 2 (window c-1..c), alpha 2 (alpha/size = 1), beta 0.5, k 1.
    let x = t(&[1, 2, 2], &[1., 3., 2., 0.]);
    let y = eval(
        Lrn {
            size: 2,
            alpha: 2.0,
            beta: 0.5,
            k: 1.0,
        },
        &[&x],
    );
    close(
        &y,
        &[1, 2, 2],
        &[1. / 2f32.sqrt(), 3. / 10f32.sqrt(), 2. / 6f32.sqrt(), 0.],
    );
}

#[test]
fn concat_of_three_on_the_first_axis_and_slices_that_start_inside() {
    let (a, b) = (iota(&[1, 2]), t(&[2, 2], &[5., 6., 7., 8.]));
    close(
        &eval(Concat { axis: 0 }, &[&a, &b, &a]),
        &[4, 2],
        &[1., 2., 5., 6., 7., 8., 1., 2.],
    );
    let x = iota(&[2, 5]);
    let s = eval(
        Slice {
            axis: 1,
            start: 1,
            end: 5,
            step: 3,
        },
        &[&x],
    );
    close(&s, &[2, 2], &[2., 5., 7., 10.]);
}

#[test]
fn flatten_at_the_ends_and_pad_on_both_sides() {
    let x = iota(&[2, 3]);
    close(
        &eval(Flatten { axis: 0 }, &[&x]),
        &[1, 6],
        &[1., 2., 3., 4., 5., 6.],
    );
    close(
        &eval(Flatten { axis: 2 }, &[&x]),
        &[6, 1],
        &[1., 2., 3., 4., 5., 6.],
    );
    let p = eval(
        Pad {
            pads: vec![1, 0, 0, 2],
            value: 0.5,
        },
        &[&x],
    );
    close(
        &p,
        &[3, 5],
        &[
            0.5, 0.5, 0.5, 0.5, 0.5, 1., 2., 3., 0.5, 0.5, 4., 5., 6., 0.5, 0.5,
        ],
    );
}

//! Normalisations: BatchNorm (inference and training forward) and LRN.

use crate::layout::split_axis;
use kiln_ir::ops::{BatchNorm, Lrn};
use kiln_ir::Tensor;

/// Per-channel mean and biased variance of `x: [N, C, ...]` over every axis
/// but 1, in f64 (two passes: the mean, then the squared deviations).
pub(crate) fn batch_statistics(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let (n, c, inner) = split_axis(&x.shape, 1);
    let count = (n * inner) as f64;
    let channel =
        |ch: usize| (0..n).flat_map(move |b| x.data[(b * c + ch) * inner..][..inner].iter());
    let mean: Vec<f64> = (0..c)
        .map(|ch| channel(ch).map(|&v| v as f64).sum::<f64>() / count)
        .collect();
    let var = (0..c)
        .map(|ch| {
            channel(ch)
                .map(|&v| (v as f64 - mean[ch]).powi(2))
                .sum::<f64>()
                / count
        })
        .collect();
    (mean, var)
}

/// `y = (x - mean) / sqrt(var + eps) * weight + bias` per channel, in f64,
/// rounded once. Inference (`training = false`) uses the running statistics
/// (operands 3 and 4); training uses the batch's biased statistics, as
/// PyTorch's forward does. Only the forward output: updating the running
/// statistics is the training graph's job.
pub(crate) fn batch_norm(op: &BatchNorm, args: &[&Tensor]) -> Tensor {
    let x = args[0];
    let (weight, bias) = (&args[1].data, &args[2].data);
    let (mean, var) = if op.training {
        batch_statistics(x)
    } else {
        let widen = |t: &Tensor| t.data.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        (widen(args[3]), widen(args[4]))
    };
    let (_, c, inner) = split_axis(&x.shape, 1);
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / inner) % c;
            let normalised = (v as f64 - mean[ch]) / (var[ch] + op.eps as f64).sqrt();
            (normalised * weight[ch] as f64 + bias[ch] as f64) as f32
        })
        .collect();
    Tensor {
        shape: x.shape.clone(),
        data,
    }
}

/// `torch.nn.LocalResponseNorm`: `y = x / (k + alpha / size * s) ^ beta` where
/// `s` sums `x^2` over the channels `c - size/2 ..= c + (size-1)/2` that exist
/// (channels beyond the edges count as zero), in f64.
pub(crate) fn lrn(op: &Lrn, x: &Tensor) -> Tensor {
    let (n, c, inner) = split_axis(&x.shape, 1);
    let before = op.size / 2;
    let after = (op.size - 1) / 2;
    let mut out = vec![0f32; x.data.len()];
    for b in 0..n {
        for ch in 0..c {
            let window = ch.saturating_sub(before)..(ch + after + 1).min(c);
            for i in 0..inner {
                let at = |k: usize| (b * c + k) * inner + i;
                let s: f64 = window.clone().map(|k| (x.data[at(k)] as f64).powi(2)).sum();
                let denom =
                    (op.k as f64 + op.alpha as f64 / op.size as f64 * s).powf(op.beta as f64);
                out[at(ch)] = (x.data[at(ch)] as f64 / denom) as f32;
            }
        }
    }
    Tensor {
        shape: x.shape.clone(),
        data: out,
    }
}

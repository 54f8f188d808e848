//! Losses.

use kiln_ir::ops::SoftmaxCrossEntropy;
use kiln_ir::Tensor;

/// A label that is not a class index: row, value, number of classes.
#[derive(Debug)]
pub(crate) struct BadLabel {
    pub row: usize,
    pub value: f32,
    pub classes: usize,
}

/// The class index a label stands for, if it is an integer in `[0, classes)`.
pub(crate) fn class_index(label: f32, classes: usize) -> Option<usize> {
    (label.fract() == 0.0 && label >= 0.0 && (label as f64) < classes as f64)
        .then_some(label as usize)
}

/// `torch.nn.CrossEntropyLoss(label_smoothing = ε)`, mean reduction: for row
/// `n` with label `y`, `loss_n = -(1 - ε) * logp[y] - ε / C * sum_c logp[c]`,
/// where `logp = x - max - ln(sum exp(x - max))`; the result is the mean of
/// `loss_n`, all in f64, rounded once to an `f32[]` scalar.
pub(crate) fn softmax_cross_entropy(
    op: &SoftmaxCrossEntropy,
    logits: &Tensor,
    labels: &Tensor,
) -> Result<Tensor, BadLabel> {
    let (n, classes) = (logits.shape[0], logits.shape[1]);
    let eps = op.label_smoothing as f64;
    let mut total = 0f64;
    for (row, (x, &label)) in logits
        .data
        .chunks(classes)
        .zip(&labels.data)
        .enumerate()
        .take(n)
    {
        let y = class_index(label, classes).ok_or(BadLabel {
            row,
            value: label,
            classes,
        })?;
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        let logp = |v: f32| v as f64 - lse;
        let sum_logp: f64 = x.iter().map(|&v| logp(v)).sum();
        total += -(1.0 - eps) * logp(x[y]) - eps / classes as f64 * sum_logp;
    }
    Ok(Tensor::scalar((total / n as f64) as f32))
}

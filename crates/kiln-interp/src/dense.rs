//! Fully connected layer.

use kiln_ir::ops::Dense;
use kiln_ir::Tensor;

/// `y[n, m] = sum over k of x[n, k] * w[m, k] (+ bias[m])`, the sum and the
/// bias in f64 (k ascending, then the bias), rounded once: `nn.Linear`.
pub(crate) fn dense(op: &Dense, args: &[&Tensor]) -> Tensor {
    let (x, w) = (args[0], args[1]);
    let (n, k) = (x.shape[0], x.shape[1]);
    let m = w.shape[0];
    let bias = op.bias.then(|| &args[2].data);
    let mut out = Vec::with_capacity(n * m);
    for row in x.data.chunks(k).take(n) {
        for (j, wrow) in w.data.chunks(k).take(m).enumerate() {
            let sum: f64 = row
                .iter()
                .zip(wrow)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            out.push((sum + bias.map_or(0.0, |b| b[j] as f64)) as f32);
        }
    }
    Tensor {
        shape: vec![n, m],
        data: out,
    }
}

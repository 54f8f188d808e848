//! The fused epilogue of a GEMM: `C = relu(C + bias + residual)`, applied to
//! each tile right after its last K block is stored, while it is still in L1
//! (oneDNN's post-ops, fuse-residual's conv epilogue).

use crate::error::JitError;

/// A bias broadcast along rows or columns of C.
#[derive(Clone, Copy, Debug, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    /// `bias[i]` added to row `i` (a conv's output channel when C is `channels x pixels`).
    PerRow(&'a [f32]),
    /// `bias[j]` added to column `j` (a dense layer's feature when C is `batch x features`).
    PerCol(&'a [f32]),
}

/// What to apply to C when a tile is stored, in order: bias, residual, ReLU.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    /// `(r, ldr)`: `r[i * ldr + j]` added to `C[i][j]` (a residual shortcut).
    pub residual: Option<(&'a [f32], usize)>,
    pub relu: bool,
}

impl Epilogue<'_> {
    pub fn is_identity(&self) -> bool {
        matches!(self.bias, Bias::None) && self.residual.is_none() && !self.relu
    }

    /// Checks every operand against an `m x n` C, so that [`Epilogue::apply`] cannot index out of range.
    pub fn check(&self, m: usize, n: usize) -> Result<(), JitError> {
        let bad = |s: String| Err(JitError::InvalidArgument(s));
        match self.bias {
            Bias::PerRow(b) if b.len() < m => {
                return bad(format!(
                    "per-row bias has {} values, C has {m} rows",
                    b.len()
                ))
            }
            Bias::PerCol(b) if b.len() < n => {
                return bad(format!(
                    "per-column bias has {} values, C has {n} columns",
                    b.len()
                ))
            }
            _ => {}
        }
        if let Some((r, ld)) = self.residual {
            if m > 0 && n > 0 {
                if ld < n {
                    return bad(format!("residual leading dimension {ld} < {n} columns"));
                }
                let need = (m - 1).checked_mul(ld).and_then(|x| x.checked_add(n));
                if need.is_none_or(|need| r.len() < need) {
                    return bad(format!(
                        "residual has {} floats, a {m}x{n} C with ld {ld} needs more",
                        r.len()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies the epilogue to the `rows x cols` window of C at `(i0, j0)`;
    /// `c` starts at that window's first element and has row stride `ldc`.
    /// Operands were checked by [`Epilogue::check`] for the whole C.
    pub(crate) fn apply(
        &self,
        c: &mut [f32],
        ldc: usize,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
    ) {
        if self.is_identity() {
            return;
        }
        for r in 0..rows {
            let row = &mut c[r * ldc..r * ldc + cols];
            let i = i0 + r;
            match self.bias {
                Bias::None => {}
                Bias::PerRow(b) => row.iter_mut().for_each(|x| *x += b[i]),
                Bias::PerCol(b) => row
                    .iter_mut()
                    .zip(&b[j0..j0 + cols])
                    .for_each(|(x, b)| *x += b),
            }
            if let Some((res, ld)) = self.residual {
                let s = i * ld + j0;
                row.iter_mut()
                    .zip(&res[s..s + cols])
                    .for_each(|(x, y)| *x += y);
            }
            if self.relu {
                // NaN passes through, as in the interpreter (and PyTorch).
                row.iter_mut()
                    .for_each(|x| *x = if *x > 0.0 || x.is_nan() { *x } else { 0.0 });
            }
        }
    }
}

//! Packing: copies a block of a strided matrix into the `k`-major panels the
//! tiles read (A: `mr` rows a panel, B: `nr` columns a panel), zero-padding
//! the last panel so edge tiles run the full kernel on zeros.

use crate::error::JitError;

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
/// Built only through [`MatRef::new`], which checks that every element is inside `data`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A `rows x cols` view with row stride `rs` and column stride `cs`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Result<MatRef<'a>, JitError> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(rs)
                .and_then(|x| (cols - 1).checked_mul(cs).and_then(|y| x.checked_add(y)))
                .ok_or_else(|| {
                    JitError::InvalidArgument(format!(
                        "a {rows}x{cols} matrix with strides ({rs}, {cs}) overflows"
                    ))
                })?;
            if last >= data.len() {
                return Err(JitError::InvalidArgument(format!(
                    "a {rows}x{cols} matrix with strides ({rs}, {cs}) needs {} floats, the slice has {}",
                    last + 1,
                    data.len()
                )));
            }
        }
        Ok(MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A row-major `rows x cols` view with leading dimension `ld >= cols`.
    pub fn row_major(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        ld: usize,
    ) -> Result<MatRef<'a>, JitError> {
        if ld < cols {
            return Err(JitError::InvalidArgument(format!(
                "leading dimension {ld} < {cols} columns"
            )));
        }
        MatRef::new(data, rows, cols, ld, 1)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The `rows x cols` block at `(i0, j0)`, clipped to this view.
    pub fn block(&self, i0: usize, j0: usize, rows: usize, cols: usize) -> MatRef<'a> {
        let rows = rows.min(self.rows.saturating_sub(i0));
        let cols = cols.min(self.cols.saturating_sub(j0));
        let data = if rows > 0 && cols > 0 {
            &self.data[i0 * self.rs + j0 * self.cs..]
        } else {
            &[]
        };
        // Inside the checked parent view, so every element of the block is inside `data`.
        MatRef {
            data,
            rows,
            cols,
            rs: self.rs,
            cs: self.cs,
        }
    }

    #[inline]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// Floats [`pack_a`] writes for an `m x k` block and panel height `mr`.
pub fn packed_a_len(mr: usize, m: usize, k: usize) -> usize {
    m.div_ceil(mr) * mr * k
}

/// Floats [`pack_b`] writes for a `k x n` block and panel width `nr`.
pub fn packed_b_len(nr: usize, k: usize, n: usize) -> usize {
    n.div_ceil(nr) * nr * k
}

fn short(what: &str, need: usize, have: usize) -> JitError {
    JitError::InvalidArgument(format!(
        "{what} buffer holds {have} floats, packing needs {need}"
    ))
}

/// Packs `a` (`m x k`) into `ceil(m / mr)` panels: panel `i` starts at
/// `i * k * mr` and holds element `(i * mr + r, p)` at `p * mr + r`; rows past `m` are zero.
pub fn pack_a(mr: usize, a: MatRef<'_>, out: &mut [f32]) -> Result<(), JitError> {
    let (m, k) = (a.rows, a.cols);
    if mr == 0 {
        return Err(JitError::InvalidArgument("panel height 0".into()));
    }
    let need = packed_a_len(mr, m, k);
    if out.len() < need {
        return Err(short("A", need, out.len()));
    }
    if need == 0 {
        return Ok(());
    }
    for (i, panel) in out[..need].chunks_exact_mut(k * mr).enumerate() {
        let rows = mr.min(m - i * mr);
        for r in 0..mr {
            if r < rows {
                let row = i * mr + r;
                for p in 0..k {
                    panel[p * mr + r] = a.at(row, p);
                }
            } else {
                (0..k).for_each(|p| panel[p * mr + r] = 0.0);
            }
        }
    }
    Ok(())
}

/// Packs `b` (`k x n`) into `ceil(n / nr)` panels: panel `j` starts at
/// `j * k * nr` and holds element `(p, j * nr + t)` at `p * nr + t`; columns past `n` are zero.
pub fn pack_b(nr: usize, b: MatRef<'_>, out: &mut [f32]) -> Result<(), JitError> {
    let (k, n) = (b.rows, b.cols);
    if nr == 0 {
        return Err(JitError::InvalidArgument("panel width 0".into()));
    }
    let need = packed_b_len(nr, k, n);
    if out.len() < need {
        return Err(short("B", need, out.len()));
    }
    if need == 0 {
        return Ok(());
    }
    for (j, panel) in out[..need].chunks_exact_mut(k * nr).enumerate() {
        let cols = nr.min(n - j * nr);
        for (p, dst) in panel.chunks_exact_mut(nr).enumerate() {
            if b.cs == 1 {
                // Unit column stride: one contiguous copy of the row's slice.
                let s = p * b.rs + j * nr;
                dst[..cols].copy_from_slice(&b.data[s..s + cols]);
            } else {
                (0..cols).for_each(|t| dst[t] = b.at(p, j * nr + t));
            }
            dst[cols..].fill(0.0);
        }
    }
    Ok(())
}

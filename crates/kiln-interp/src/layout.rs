//! Index arithmetic shared by the kernels: row-major dimensions, axis splits
//! and the windows of convolutions and pools.

use std::ops::Range;

/// The four dimensions of an NCHW tensor (the verifier guarantees rank 4).
pub(crate) fn dims4(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}

/// Splits a row-major shape around `axis`: (product of the dimensions before
/// it, its length, product of the dimensions after it). Element
/// `(outer, i, inner)` is at `(outer * len + i) * inner_len + inner`.
pub(crate) fn split_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// The outputs `o` in `0..out_len` whose input position `o * stride + offset`
/// lies inside `0..in_len`: the rows (or columns) where one kernel tap of a
/// convolution reads real data rather than padding.
pub(crate) fn valid_outputs(
    out_len: usize,
    in_len: usize,
    stride: usize,
    offset: i64,
) -> Range<usize> {
    let stride = stride as i64;
    // o * stride + offset >= 0  <=>  o >= ceil(-offset / stride)
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + stride - 1) / stride
    };
    // o * stride + offset <= in_len - 1  <=>  o <= floor((in_len - 1 - offset) / stride)
    let top = in_len as i64 - 1 - offset;
    let hi = if top < 0 { 0 } else { top / stride + 1 };
    let lo = (lo as usize).min(out_len);
    let hi = (hi as usize).min(out_len).max(lo);
    lo..hi
}

/// One pooling window along one axis, as PyTorch computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// Input positions inside the tensor that the window covers.
    pub lo: usize,
    pub hi: usize,
    /// Positions the window covers inside the padded input, padding included
    /// but not the overhang of a ceil-mode window beyond the end padding:
    /// the per-axis divisor of `count_include_pad` average pooling.
    pub padded_len: usize,
}

/// The window of output `o`: it starts at `o * stride - pad_begin` and spans
/// `kernel` positions, clipped to the padded input `[-pad_begin, size + pad_end)`
/// for `padded_len` and to the input `[0, size)` for `lo..hi`.
pub(crate) fn pool_window(
    o: usize,
    size: usize,
    kernel: usize,
    stride: usize,
    pad_begin: usize,
    pad_end: usize,
) -> Window {
    let start = (o * stride) as i64 - pad_begin as i64;
    let end_padded = (start + kernel as i64).min((size + pad_end) as i64);
    let lo = start.max(0);
    let hi = end_padded.min(size as i64);
    Window {
        lo: lo as usize,
        hi: hi.max(lo) as usize,
        padded_len: (end_padded - start) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form agrees with checking every output position.
    #[test]
    fn valid_outputs_matches_brute_force() {
        for out_len in 1..7 {
            for in_len in 1..7 {
                for stride in 1..4 {
                    for offset in -5i64..5 {
                        let brute: Vec<usize> = (0..out_len)
                            .filter(|&o| {
                                (0..in_len as i64).contains(&(o as i64 * stride as i64 + offset))
                            })
                            .collect();
                        let r: Vec<usize> =
                            valid_outputs(out_len, in_len, stride, offset).collect();
                        assert_eq!(
                            r, brute,
                            "out {out_len} in {in_len} stride {stride} offset {offset}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pool_window_clips_padding_and_overhang() {
        // size 5, kernel 3, stride 2, pad 1 each side: windows start at -1, 1, 3, 5.
        assert_eq!(
            pool_window(0, 5, 3, 2, 1, 1),
            Window {
                lo: 0,
                hi: 2,
                padded_len: 3
            }
        );
        assert_eq!(
            pool_window(1, 5, 3, 2, 1, 1),
            Window {
                lo: 1,
                hi: 4,
                padded_len: 3
            }
        );
        // Starts at 5 (the end padding), covers 5..8, clipped to the padded end 6.
        assert_eq!(
            pool_window(3, 5, 3, 2, 1, 1),
            Window {
                lo: 5,
                hi: 5,
                padded_len: 1
            }
        );
    }
}

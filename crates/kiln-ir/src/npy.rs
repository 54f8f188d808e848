//! NumPy `.npy` files (format versions 1.0 to 3.0), the exchange format of
//! inputs and outputs. Reads little-endian C-order `f4`, `f8`, `i8`, `i4`,
//! `u1` and `b1` arrays into f32 tensors (integer labels become exact f32
//! class indices up to 2^24); writes `f4`.

use crate::tensor::Tensor;
use crate::types::MAX_ELEMENTS;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NpyError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: not a .npy file: {message}")]
    Header { origin: String, message: String },
    #[error("{origin}: unsupported array: {message}")]
    Unsupported { origin: String, message: String },
    #[error("{origin}: the data is {found} bytes, the header promises {expected}")]
    Truncated {
        origin: String,
        expected: u64,
        found: u64,
    },
}

const MAGIC: &[u8] = b"\x93NUMPY";
/// numpy itself refuses headers longer than this by default.
const MAX_HEADER: usize = 1 << 16;

pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor, NpyError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_npy(&bytes, &path.display().to_string())
}

pub fn write_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<(), NpyError> {
    let path = path.as_ref();
    std::fs::write(path, encode_npy(t)).map_err(|source| NpyError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Encodes a tensor as a version 1.0 `<f4` file.
pub fn encode_npy(t: &Tensor) -> Vec<u8> {
    let shape = match t.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", t.shape[0]),
        _ => format!(
            "({})",
            t.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that the data starts on a 64-byte boundary, ending in a newline.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * t.data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &t.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[derive(Clone, Copy)]
enum Elem {
    F4,
    F8,
    I8,
    I4,
    U1,
    B1,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::F4 | Elem::I4 => 4,
            Elem::F8 | Elem::I8 => 8,
            Elem::U1 | Elem::B1 => 1,
        }
    }
}

/// Parses `.npy` bytes; `origin` names the source in errors.
pub fn parse_npy(bytes: &[u8], origin: &str) -> Result<Tensor, NpyError> {
    let header_err = |message: &str| NpyError::Header {
        origin: origin.into(),
        message: message.into(),
    };
    let unsupported = |message: String| NpyError::Unsupported {
        origin: origin.into(),
        message,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(header_err("missing the \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(header_err("truncated header length"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(unsupported(format!("format version {v}.{}", bytes[7]))),
    };
    if header_len > MAX_HEADER {
        return Err(header_err("header longer than 64 KiB"));
    }
    let end = start + header_len;
    if bytes.len() < end {
        return Err(header_err("truncated header"));
    }
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| header_err("header is not text"))?;
    let descr =
        dict_value(header, "descr").ok_or_else(|| header_err("no 'descr' in the header"))?;
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| header_err("no 'fortran_order' in the header"))?;
    let shape_text =
        dict_value(header, "shape").ok_or_else(|| header_err("no 'shape' in the header"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let elem = match descr {
        "<f4" => Elem::F4,
        "<f8" => Elem::F8,
        "<i8" => Elem::I8,
        "<i4" => Elem::I4,
        "|u1" | "<u1" => Elem::U1,
        "|b1" => Elem::B1,
        d if d.starts_with('>') => return Err(unsupported(format!("big-endian dtype {d}"))),
        d => {
            return Err(unsupported(format!(
                "dtype {d} (f4, f8, i8, i4, u1, b1 are read)"
            )))
        }
    };
    match fortran {
        "False" => {}
        "True" => {
            return Err(unsupported(
                "Fortran order (save with np.ascontiguousarray)".into(),
            ))
        }
        _ => return Err(header_err("'fortran_order' is neither True nor False")),
    }
    let shape =
        parse_shape(shape_text).ok_or_else(|| header_err("'shape' is not a tuple of integers"))?;
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            unsupported(format!(
                "shape {shape:?} has more than {MAX_ELEMENTS} elements"
            ))
        })?;
    let data = &bytes[end..];
    let expected = count * elem.size() as u64;
    if data.len() as u64 != expected {
        return Err(NpyError::Truncated {
            origin: origin.into(),
            expected,
            found: data.len() as u64,
        });
    }
    let values: Vec<f32> = match elem {
        Elem::F4 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect(),
        Elem::F8 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Elem::I8 => data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Elem::I4 => data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as f32)
            .collect(),
        Elem::U1 | Elem::B1 => data.iter().map(|&b| b as f32).collect(),
    };
    Ok(Tensor {
        shape,
        data: values,
    })
}

/// The text of `key`'s value in a Python dict literal such as numpy writes.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_shape_and_bits() {
        for shape in [vec![], vec![3], vec![2, 3, 4]] {
            let n: usize = shape.iter().product();
            let t = Tensor::new(shape, (0..n).map(|i| i as f32 * 0.5 - 1.0).collect()).unwrap();
            let bytes = encode_npy(&t);
            assert_eq!((bytes.len() - 4 * n) % 64, 0, "data aligned to 64 bytes");
            assert_eq!(parse_npy(&bytes, "t").unwrap(), t);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let t = Tensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let bytes = encode_npy(&t);
        for len in 0..bytes.len() {
            assert!(parse_npy(&bytes[..len], "t").is_err(), "truncated at {len}");
        }
    }

    #[test]
    fn absurd_shape_is_refused_before_allocating() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }\n";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        let err = parse_npy(&bytes, "big.npy").unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
    }

    #[test]
    fn other_dtypes_and_orders() {
        let header = |d: &str, f: &str| {
            format!("{{'descr': '{d}', 'fortran_order': {f}, 'shape': (2,), }}\n")
        };
        let file = |h: String, data: &[u8]| {
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[1, 0]);
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(data);
            b
        };
        let labels: Vec<u8> = [3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            parse_npy(&file(header("<i8", "False"), &labels), "l")
                .unwrap()
                .data,
            vec![3.0, 7.0]
        );
        let err = parse_npy(&file(header(">f4", "False"), &[0; 8]), "b")
            .unwrap_err()
            .to_string();
        assert!(err.contains("big-endian"), "{err}");
        let err = parse_npy(&file(header("<f4", "True"), &[0; 8]), "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Fortran"), "{err}");
        let err = parse_npy(&file(header("<c8", "False"), &[0; 16]), "c")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dtype"), "{err}");
    }
}

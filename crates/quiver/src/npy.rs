//! Reading and writing NumPy `.npy` matrices: float32 (`<f4`, also `<f8` converted) for vectors,
//! int64 (`<i8`) for result ids. Written by hand because the format is a 10-line header and we
//! want every malformed file to get an error that says what is wrong, never a panic.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// A row-major matrix read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// The values, row by row.
    pub data: Vec<f32>,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(format!("{}: not a usable .npy matrix: {reason}", path.display()))
}

/// Finds `'key': value` in the header dict and returns the raw value text.
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    if let Some(inner) = rest.strip_prefix('(') {
        return Some(&inner[..inner.find(')')?]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// Parses a `.npy` image into a matrix. A 1-D array is one row.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Matrix> {
    let (rows, cols, descr, body) = parse_raw(path, bytes)?;
    let width = match descr {
        "<f4" | "=f4" | "f4" => 4,
        "<f8" | "=f8" | "f8" => 8,
        other => return Err(bad(path, format!("dtype {other} is not float32 or float64 (little-endian)"))),
    };
    check_len(path, rows, cols, width, body)?;
    let data: Vec<f32> = if width == 4 {
        body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    Ok(Matrix { rows, cols, data })
}

/// A row-major integer matrix (result ids, ground truth).
#[derive(Clone, Debug, PartialEq)]
pub struct IntMatrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// The values, row by row.
    pub data: Vec<i64>,
}

/// Reads an int32 or int64 `.npy` file.
pub fn read_i64(path: &Path) -> Result<IntMatrix> {
    let bytes = std::fs::read(path).map_err(|e| Error::InvalidRequest(format!("cannot read {}: {e}", path.display())))?;
    let (rows, cols, descr, body) = parse_raw(path, &bytes)?;
    let width = match descr {
        "<i4" | "=i4" | "i4" => 4,
        "<i8" | "=i8" | "i8" => 8,
        other => return Err(bad(path, format!("dtype {other} is not int32 or int64 (little-endian)"))),
    };
    check_len(path, rows, cols, width, body)?;
    let data = if width == 4 {
        body.chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    };
    Ok(IntMatrix { rows, cols, data })
}

fn check_len(path: &Path, rows: usize, cols: usize, width: usize, body: &[u8]) -> Result<()> {
    let need = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| bad(path, "shape overflows"))?;
    if body.len() != need {
        return Err(bad(
            path,
            format!("shape ({rows}, {cols}) needs {need} data bytes, file has {}", body.len()),
        ));
    }
    Ok(())
}

/// The header of a `.npy` image: rows, columns, dtype text and the data bytes.
fn parse_raw<'a>(path: &Path, bytes: &'a [u8]) -> Result<(usize, usize, &'a str, &'a [u8])> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(path, "missing the \\x93NUMPY magic"));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad(path, "truncated header"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(path, format!("unsupported format version {v}"))),
    };
    let header_end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad(path, "truncated header"))?;
    let header = std::str::from_utf8(&bytes[start..header_end]).map_err(|_| bad(path, "header is not text"))?;
    let descr = header_field(header, "descr")
        .ok_or_else(|| bad(path, "header has no descr"))?
        .trim_matches(|c| c == '\'' || c == '"');
    if header_field(header, "fortran_order").is_some_and(|v| v == "True") {
        return Err(bad(
            path,
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let shape_text = header_field(header, "shape").ok_or_else(|| bad(path, "header has no shape"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(path, format!("bad shape ({shape_text})"))))
        .collect::<Result<_>>()?;
    let (rows, cols) = match shape.as_slice() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        _ => return Err(bad(path, format!("expected a 1-D or 2-D array, got shape ({shape_text})"))),
    };
    rows.checked_mul(cols).ok_or_else(|| bad(path, "shape overflows"))?;
    Ok((rows, cols, descr, &bytes[header_end..]))
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<Matrix> {
    let bytes = std::fs::read(path).map_err(|e| Error::InvalidRequest(format!("cannot read {}: {e}", path.display())))?;
    parse(path, &bytes)
}

fn header(descr: &str, rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Pad so that the data starts on a 64-byte boundary, ending the header with a newline.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let text = format!("{dict}{}\n", " ".repeat(pad));
    let mut out = Vec::with_capacity(10 + text.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Encodes a float32 matrix as `.npy`.
pub fn encode_f32(rows: usize, cols: usize, data: &[f32]) -> Vec<u8> {
    assert_eq!(rows * cols, data.len());
    let mut out = header("<f4", rows, cols);
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Encodes an int64 matrix as `.npy`.
pub fn encode_i64(rows: usize, cols: usize, data: &[i64]) -> Vec<u8> {
    assert_eq!(rows * cols, data.len());
    let mut out = header("<i8", rows, cols);
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Writes bytes to `path`.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::InvalidRequest(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| Error::InvalidRequest(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed_files() {
        let p = Path::new("x.npy");
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        let img = encode_f32(3, 4, &data);
        assert_eq!(img[..10 + u16::from_le_bytes([img[8], img[9]]) as usize].len() % 64, 0);
        assert_eq!(
            parse(p, &img).unwrap(),
            Matrix {
                rows: 3,
                cols: 4,
                data: data.clone()
            }
        );
        for n in 0..img.len() {
            assert!(parse(p, &img[..n]).is_err(), "truncated at {n}");
        }
        let ints = encode_i64(1, 2, &[1, 2]);
        assert!(parse(p, &ints).unwrap_err().to_string().contains("dtype"));
        assert!(parse(p, b"hello world, not npy").is_err());
    }
}

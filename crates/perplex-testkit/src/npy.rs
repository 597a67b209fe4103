//! NumPy arrays as the reference figures store them: `.npy` files holding a
//! 1-D, C-order, little-endian array of `<f4`, `<f8` or `<i4` (format
//! versions 1 to 3), and `.npz` archives of such files. Values come back as
//! f64, which holds every f32 and i32 exactly. Panics, naming the file, on
//! anything else.

use std::io::Read;
use std::path::Path;

/// The values of a `.npy` buffer, and its element type (`<f4`, `<f8`, `<i4`).
fn parse(bytes: &[u8]) -> Result<(&'static str, Vec<f64>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (len as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-UTF-8 header")?;
    if !header.contains("'fortran_order': False") {
        return Err(format!("not C order: {header}"));
    }
    let field = |key: &str, end: char| {
        header
            .split(key)
            .nth(1)
            .and_then(|rest| rest.split(end).next())
            .ok_or(format!("no {key} in {header}"))
    };
    let (descr, size): (&'static str, usize) = match field("'descr': '", '\'')? {
        "<f4" => ("<f4", 4),
        "<f8" => ("<f8", 8),
        "<i4" => ("<i4", 4),
        other => return Err(format!("unsupported dtype {other}")),
    };
    let shape = field("'shape': (", ')')?;
    let dims: Vec<&str> = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let [len] = dims[..] else {
        return Err(format!("not 1-D: shape ({shape})"));
    };
    let len: usize = len.parse().map_err(|_| format!("bad shape ({shape})"))?;
    let data = &bytes[start + header_len..];
    if data.len() != len * size {
        return Err(format!(
            "{} data bytes for {len} elements of {descr}",
            data.len()
        ));
    }
    let values = match descr {
        "<f4" => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        _ => data
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
    };
    Ok((descr, values))
}

/// The values of a `.npy` byte buffer.
pub fn parse_npy(bytes: &[u8]) -> Vec<f64> {
    parse(bytes)
        .unwrap_or_else(|e| panic!(".npy buffer: {e}"))
        .1
}

/// The values of the `.npy` file `path`.
pub fn read_npy(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .1
}

/// The token ids of the `<i4` `.npy` file `path`.
pub fn read_npy_ids(path: &Path) -> Vec<u32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (descr, values) = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(descr, "<i4", "{}: ids must be <i4", path.display());
    values
        .into_iter()
        .map(|v| u32::try_from(v as i32).unwrap_or_else(|_| panic!("{}: id {v}", path.display())))
        .collect()
}

/// The values of the array `name` (stored as `name.npy`) of the `.npz` archive `path`.
pub fn read_npz(path: &Path, name: &str) -> Vec<f64> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive =
        zip::ZipArchive::new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut entry = archive
        .by_name(&format!("{name}.npy"))
        .unwrap_or_else(|e| panic!("{}: array {name}: {e}", path.display()));
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("{}: array {name}: {e}", path.display()));
    parse(&bytes)
        .unwrap_or_else(|e| panic!("{}: array {name}: {e}", path.display()))
        .1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` buffer of `descr` with `shape` and raw `data`.
    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn reads_each_element_type_exactly() {
        let f4: Vec<u8> = [1.5f32, -0.1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(parse_npy(&npy("<f4", "2,", &f4)), [1.5, f64::from(-0.1f32)]);
        let f8: Vec<u8> = [0.1f64].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(&npy("<f8", "1,", &f8)), [0.1]);
        let i4: Vec<u8> = [7i32, 49_151]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(parse_npy(&npy("<i4", "2,", &i4)), [7.0, 49_151.0]);
    }

    #[test]
    fn refuses_other_shapes_types_and_lengths() {
        let four = [0u8; 4];
        for (descr, shape, data) in [
            ("<f4", "1, 1", &four[..]),
            ("<i8", "1,", &four[..]),
            ("<f4", "2,", &four[..]),
        ] {
            assert!(
                parse(&npy(descr, shape, data)).is_err(),
                "{descr} ({shape})"
            );
        }
        assert!(parse(b"PK\x03\x04 not npy").is_err());
    }
}

//! The array datatypes (Int8Array … DateTimeArray, 22–34), unpacked from a metric's
//! `bytes_value` as the spec's "Array Types" section packs them.

use crate::value::{DataType, Val};

/// The elements of an array metric. A length that is not a whole number of elements, a
/// BooleanArray whose count does not match its bytes, or a StringArray that is not
/// NUL-terminated UTF-8 is an error: those are damaged payloads, not short arrays.
pub fn unpack(t: DataType, bytes: &[u8]) -> Result<Val, String> {
    let items = match t {
        DataType::BOOLEAN_ARRAY => booleans(bytes)?,
        DataType::STRING_ARRAY => strings(bytes)?,
        _ => {
            let (width, read) = fixed(t);
            if !bytes.len().is_multiple_of(width) {
                let len = bytes.len();
                return Err(format!(
                    "{} of {len} bytes: not whole {width}-byte elements",
                    t.name()
                ));
            }
            bytes.chunks_exact(width).map(read).collect()
        }
    };
    Ok(Val::Arr(items))
}

/// Element width and reader of the fixed-width array types.
fn fixed(t: DataType) -> (usize, fn(&[u8]) -> Val) {
    fn le<const N: usize>(b: &[u8]) -> [u8; N] {
        b.try_into().expect("chunks_exact hands out whole elements")
    }
    match t.code() {
        22 => (1, |b| Val::I64(i64::from(b[0] as i8))),
        23 => (2, |b| Val::I64(i64::from(i16::from_le_bytes(le(b))))),
        24 => (4, |b| Val::I64(i64::from(i32::from_le_bytes(le(b))))),
        25 => (8, |b| Val::I64(i64::from_le_bytes(le(b)))),
        26 => (1, |b| Val::U64(u64::from(b[0]))),
        27 => (2, |b| Val::U64(u64::from(u16::from_le_bytes(le(b))))),
        28 => (4, |b| Val::U64(u64::from(u32::from_le_bytes(le(b))))),
        29 => (8, |b| Val::U64(u64::from_le_bytes(le(b)))),
        30 => (4, |b| Val::F32(f32::from_le_bytes(le(b)))),
        31 => (8, |b| Val::F64(f64::from_le_bytes(le(b)))),
        // DateTimeArray: milliseconds since the epoch, signed (Tahu writes Java longs).
        34 => (8, |b| Val::I64(i64::from_le_bytes(le(b)))),
        _ => unreachable!("{} is not a fixed-width array type", t.name()),
    }
}

/// A 4-byte little-endian count, then the values, eight to a byte, the first in the most
/// significant bit; the bits after the last value are padding.
fn booleans(bytes: &[u8]) -> Result<Vec<Val>, String> {
    let (count, bits) = match bytes.split_first_chunk::<4>() {
        Some((count, bits)) => (u32::from_le_bytes(*count) as usize, bits),
        None => {
            return Err(format!(
                "BooleanArray of {} bytes has no count",
                bytes.len()
            ))
        }
    };
    if bits.len() != count.div_ceil(8) {
        let n = bits.len();
        return Err(format!("BooleanArray of {count} values in {n} bytes"));
    }
    let value = |i: usize| Val::Bool(bits[i / 8] & (0x80 >> (i % 8)) != 0);
    Ok((0..count).map(value).collect())
}

/// NUL-terminated UTF-8 strings, one after the other; no bytes is no strings.
fn strings(bytes: &[u8]) -> Result<Vec<Val>, String> {
    let Some((&last, body)) = bytes.split_last() else {
        return Ok(Vec::new());
    };
    if last != 0 {
        return Err("StringArray does not end with a NUL".into());
    }
    body.split(|&b| b == 0)
        .map(|s| match std::str::from_utf8(s) {
            Ok(s) => Ok(Val::Str(s.to_owned())),
            Err(e) => Err(format!("StringArray element is not UTF-8: {e}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpacked(code: u32, bytes: &[u8]) -> String {
        let t = DataType::from_code(code).unwrap();
        match unpack(t, bytes) {
            Ok(v) => serde_json::to_string(&v).unwrap(),
            Err(e) => format!("error: {e}"),
        }
    }

    /// The spec's worked examples ("Array Types"), where they are little-endian as the
    /// text says. Left out: its Int8Array example (−23 is 0xE9, not the 0xEF printed),
    /// FloatArray and DoubleArray (printed big-endian) and DateTimeArray (truncated).
    #[test]
    fn the_specs_examples() {
        let cases: [(u32, &[u8], &str); 8] = [
            (23, &[0xD0, 0x8A, 0x30, 0x75], "[-30000,30000]"),
            (
                24,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFA, 0xAF, 0xCB, 0x12],
                "[-1,315338746]",
            ),
            (
                25,
                &[
                    0xCE, 0x06, 0x72, 0xAC, 0x18, 0x9C, 0xBA, 0xC4, 0xC4, 0xBA, 0x9C, 0x18, 0xAC,
                    0x72, 0x06, 0xCE,
                ],
                "[-4270929666821191986,-3601064768563266876]",
            ),
            (26, &[0x17, 0xFA], "[23,250]"),
            (27, &[0x1E, 0x00, 0x88, 0xCC], "[30,52360]"),
            (
                28,
                &[0x34, 0, 0, 0, 0x49, 0xFB, 0x55, 0xC4],
                "[52,3293969225]",
            ),
            (
                29,
                &[
                    0x34, 0, 0, 0, 0, 0, 0, 0, 0xD9, 0x9E, 0x02, 0xD1, 0xB2, 0x76, 0x37, 0xE4,
                ],
                "[52,16444743074749521625]",
            ),
            (33, b"ABC\0hello\0", r#"["ABC","hello"]"#),
        ];
        for (code, bytes, json) in cases {
            assert_eq!(unpacked(code, bytes), json, "datatype {code}");
        }
        // "[0x0C, 0x00, 0x00, 0x00, 0x34, 0xDX]", X being padding.
        assert_eq!(
            unpacked(32, &[0x0C, 0, 0, 0, 0x34, 0xD5]),
            "[false,false,true,true,false,true,false,false,true,true,false,true]"
        );
    }

    #[test]
    fn damaged_arrays_are_errors() {
        assert_eq!(
            unpacked(24, &[1, 2, 3, 4, 5]),
            "error: Int32Array of 5 bytes: not whole 4-byte elements"
        );
        assert_eq!(
            unpacked(32, &[1, 0]),
            "error: BooleanArray of 2 bytes has no count"
        );
        assert_eq!(
            unpacked(32, &[9, 0, 0, 0, 0xFF]),
            "error: BooleanArray of 9 values in 1 bytes"
        );
        assert_eq!(
            unpacked(33, b"abc"),
            "error: StringArray does not end with a NUL"
        );
        assert!(unpacked(33, b"\xff\0").starts_with("error: StringArray element is not UTF-8"));
    }

    #[test]
    fn empty_arrays() {
        assert_eq!(unpacked(33, b""), "[]");
        assert_eq!(unpacked(33, b"\0"), r#"[""]"#);
        assert_eq!(unpacked(32, &[0, 0, 0, 0]), "[]");
        assert_eq!(unpacked(31, &[]), "[]");
    }
}

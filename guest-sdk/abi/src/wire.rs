//! Bounds-checked little-endian reading and writing shared by the document modules.

use core::fmt;

use crate::ABSENT;

/// Why a document could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The document ended before `field` was complete.
    Truncated { field: &'static str },
    /// The document has bytes after its last field.
    TrailingBytes { extra: usize },
    /// A slice points outside linear memory.
    OutOfBounds {
        field: &'static str,
        ptr: u32,
        len: u32,
        memory: usize,
    },
    /// A field holds a value the format does not allow.
    Invalid { field: &'static str },
    /// A count exceeds the ABI limit.
    TooMany {
        field: &'static str,
        count: u32,
        max: u32,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { field } => write!(f, "document ends inside `{field}`"),
            WireError::TrailingBytes { extra } => write!(f, "{extra} unexpected bytes after the document"),
            WireError::OutOfBounds { field, ptr, len, memory } => write!(
                f,
                "`{field}` points outside linear memory (ptr {ptr}, len {len}, memory size {memory})"
            ),
            WireError::Invalid { field } => write!(f, "`{field}` has an invalid value"),
            WireError::TooMany { field, count, max } => write!(f, "`{field}` is {count}, the limit is {max}"),
        }
    }
}

impl core::error::Error for WireError {}

/// Reads fields front to back from a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated { field });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A `u32` length followed by that many bytes.
    pub(crate) fn len_prefixed(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u32(field)?;
        if len == ABSENT {
            return Err(WireError::Invalid { field });
        }
        self.bytes(len as usize, field)
    }

    /// Like [`Reader::len_prefixed`], where a length of [`ABSENT`] means `None`.
    pub(crate) fn opt_len_prefixed(
        &mut self,
        field: &'static str,
    ) -> Result<Option<&'a [u8]>, WireError> {
        let len = self.u32(field)?;
        if len == ABSENT {
            return Ok(None);
        }
        self.bytes(len as usize, field).map(Some)
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                extra: self.buf.len(),
            })
        }
    }
}

/// Writes fields front to back into a slice that the caller sized exactly.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }

    pub(crate) fn len_prefixed(&mut self, bytes: &[u8]) {
        self.u32(len_u32(bytes));
        self.put(bytes);
    }

    pub(crate) fn opt_len_prefixed(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => self.len_prefixed(b),
            None => self.u32(ABSENT),
        }
    }

    pub(crate) fn written(&self) -> usize {
        self.pos
    }
}

/// Length of a field as the `u32` the format stores. Fields are bounded far below 4 GiB
/// by MQTT itself (256 MiB packets), so the conversion cannot truncate in practice.
pub(crate) fn len_u32(bytes: &[u8]) -> u32 {
    debug_assert!(bytes.len() < ABSENT as usize);
    bytes.len() as u32
}

/// Returns `memory[ptr..ptr + len]`, or an error naming `field`.
pub(crate) fn slice<'m>(
    memory: &'m [u8],
    ptr: u32,
    len: u32,
    field: &'static str,
) -> Result<&'m [u8], WireError> {
    let start = ptr as usize;
    match start.checked_add(len as usize) {
        Some(end) if end <= memory.len() => Ok(&memory[start..end]),
        _ => Err(WireError::OutOfBounds {
            field,
            ptr,
            len,
            memory: memory.len(),
        }),
    }
}

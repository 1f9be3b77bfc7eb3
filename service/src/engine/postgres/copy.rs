//! The binary COPY format: an incremental parser of `COPY … TO STDOUT (FORMAT binary)`
//! that hands each tuple's fields to its caller as byte ranges.
//!
//! Must not: decode values (that is `decode.rs`), or copy a tuple that lies whole in one
//! message.

use bytes::{Buf, BytesMut};

use crate::engine::Result;

/// Incremental parser of the binary COPY format: header, then tuples of
/// (i16 field count, then per field an i32 length, -1 for NULL, and the bytes).
#[derive(Default)]
pub(super) struct CopyParser {
    buf: BytesMut,
    header_done: bool,
}

const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyParser {
    /// Feeds one message of the COPY stream and hands every complete tuple to `each`,
    /// with its fields' ranges in it (`None` for NULL). PostgreSQL sends a tuple per
    /// message, so tuples are parsed straight from the message, copying nothing, unless
    /// a tuple spans messages.
    pub(super) fn feed(
        &mut self,
        chunk: &[u8],
        fields: &mut Vec<Option<(usize, usize)>>,
        mut each: impl FnMut(&[u8], &[Option<(usize, usize)>]) -> Result<()>,
    ) -> std::result::Result<Result<()>, String> {
        let mut data = chunk;
        if !self.header_done || !self.buf.is_empty() {
            self.buf.extend_from_slice(chunk);
            if !self.header_done {
                if self.buf.len() < 19 {
                    return Ok(Ok(()));
                }
                if &self.buf[..11] != COPY_SIGNATURE {
                    return Err("not a binary COPY stream".into());
                }
                let ext = u32::from_be_bytes(self.buf[15..19].try_into().unwrap()) as usize;
                if self.buf.len() < 19 + ext {
                    return Ok(Ok(()));
                }
                self.buf.advance(19 + ext);
                self.header_done = true;
            }
            let buffered = std::mem::take(&mut self.buf).freeze();
            let mut off = 0;
            while let Some(len) = parse_tuple(&buffered[off..], fields)? {
                if let Err(e) = each(&buffered[off..off + len], fields) {
                    return Ok(Err(e));
                }
                off += len;
            }
            self.buf.extend_from_slice(&buffered[off..]);
            return Ok(Ok(()));
        }
        while let Some(len) = parse_tuple(data, fields)? {
            if let Err(e) = each(&data[..len], fields) {
                return Ok(Err(e));
            }
            data = &data[len..];
        }
        self.buf.extend_from_slice(data);
        Ok(Ok(()))
    }
}

/// The length of the complete tuple at the start of `data`, if there is one (the
/// trailer, a field count of -1, counts as none), with its fields' ranges in `fields`.
fn parse_tuple(
    data: &[u8],
    fields: &mut Vec<Option<(usize, usize)>>,
) -> std::result::Result<Option<usize>, String> {
    if data.len() < 2 {
        return Ok(None);
    }
    let nfields = i16::from_be_bytes([data[0], data[1]]);
    if nfields < 0 {
        return Ok(None);
    }
    fields.clear();
    let mut pos = 2;
    for _ in 0..nfields {
        if data.len() < pos + 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes(data[pos..pos + 4].try_into().unwrap());
        pos += 4;
        if len < -1 {
            return Err(format!("negative field length {len}"));
        }
        if len < 0 {
            fields.push(None);
        } else {
            fields.push(Some((pos, pos + len as usize)));
            pos += len as usize;
        }
    }
    if data.len() < pos {
        return Ok(None);
    }
    Ok(Some(pos))
}

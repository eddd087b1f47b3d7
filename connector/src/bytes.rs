//! Bytes the engine reads and writes a piece at a time, so that a message of
//! hundreds of megabytes is never held whole: the document comes from a
//! [`Source`] (a file the host holds, or a slice in tests), the message goes
//! to a [`Sink`] (a blob the host keeps, or a `Vec`). The engine still does
//! no IO of its own: the caller's source and sink do.

use base64::Engine;

use crate::error::Error;

/// How much the engine reads and hands on at a time: small enough to stay in
/// the CPU's cache between the digest and the cipher, large enough that each
/// piece's calls into the host cost nothing next to the work on it.
pub const PIECE: usize = 256 * 1024;

/// Bytes that can be read from any offset, more than once.
pub trait Source {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// Whether there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `buf.len()` bytes from `offset`; fewer only at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Error>;

    /// All the bytes, where they are in memory already, so that a reader
    /// that needs them whole borrows them rather than copies.
    fn as_slice(&self) -> Option<&[u8]> {
        None
    }
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(<[u8]>::len(self));
        let n = buf.len().min(<[u8]>::len(self) - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }

    fn as_slice(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl Source for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        self.as_slice().read_at(offset, buf)
    }

    fn as_slice(&self) -> Option<&[u8]> {
        Some(self)
    }
}

/// Where the engine writes bytes, in order.
pub trait Sink {
    /// Appends `data`.
    fn write(&mut self, data: &[u8]) -> Result<(), Error>;
}

impl Sink for Vec<u8> {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.extend_from_slice(data);
        Ok(())
    }
}

/// Bytes the engine writes once and then reads back: a decrypted or
/// decompressed entity, a document on its way to delivery. The caller
/// decides where they are held (a `Vec` natively, a host blob in the
/// component), so that a layer of a gigabyte is bounded by storage, not memory.
pub trait Spool: Source + Sink {
    /// The bytes, in memory.
    fn into_vec(self: Box<Self>) -> Result<Vec<u8>, Error>;
}

impl Spool for Vec<u8> {
    fn into_vec(self: Box<Self>) -> Result<Vec<u8>, Error> {
        Ok(*self)
    }
}

/// Where the engine gets its spools, and how large a layer it may hold in
/// memory rather than read where it lies.
pub trait Spools {
    /// A new, empty spool for about `expected` bytes (0 when not known):
    /// a hint, so that one in memory is allocated once.
    fn spool(&self, expected: u64) -> Result<Box<dyn Spool>, Error>;

    /// The largest layer held in memory whole; larger ones are read from
    /// their spool a piece at a time.
    fn hold_limit(&self) -> u64;
}

/// Spools in memory: everything is held, as nothing bounds memory natively.
/// `hold_limit` below the layers' sizes makes the engine read them a piece
/// at a time all the same, as it does in the component (for tests).
pub struct InMemory {
    /// See [`Spools::hold_limit`].
    pub hold_limit: u64,
}

impl Default for InMemory {
    fn default() -> Self {
        InMemory {
            hold_limit: u64::MAX,
        }
    }
}

impl Spools for InMemory {
    fn spool(&self, expected: u64) -> Result<Box<dyn Spool>, Error> {
        let held = usize::try_from(expected.min(self.hold_limit)).unwrap_or(0);
        Ok(Box::new(Vec::with_capacity(held)))
    }

    fn hold_limit(&self) -> u64 {
        self.hold_limit
    }
}

/// A range of another source, read where it lies.
pub struct Window<'a> {
    inner: &'a dyn Source,
    start: u64,
    len: u64,
}

impl<'a> Window<'a> {
    /// `range` of `inner`, cut to its end.
    pub fn new(inner: &'a dyn Source, range: std::ops::Range<u64>) -> Self {
        let start = range.start.min(inner.len());
        let end = range.end.clamp(start, inner.len());
        Window {
            inner,
            start,
            len: end - start,
        }
    }
}

impl Source for Window<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        if offset >= self.len {
            return Ok(0);
        }
        let want = usize::try_from(self.len - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.inner.read_at(self.start + offset, &mut buf[..want])
    }

    fn as_slice(&self) -> Option<&[u8]> {
        let whole = self.inner.as_slice()?;
        let start = usize::try_from(self.start).ok()?;
        let end = usize::try_from(self.start + self.len).ok()?;
        whole.get(start..end)
    }
}

/// Copies all of `source` into `sink`, a piece at a time.
pub fn copy(source: &dyn Source, sink: &mut dyn Sink) -> Result<(), Error> {
    for_each_piece(source, |piece| sink.write(piece))
}

/// Calls `each` with every piece of `source`, in order, at most [`PIECE`]
/// bytes at a time.
pub fn for_each_piece(
    source: &dyn Source,
    mut each: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let len = source.len();
    let mut buf = vec![0u8; PIECE.min(usize::try_from(len).unwrap_or(PIECE))];
    let mut offset = 0u64;
    while offset < len {
        let n = source.read_at(offset, &mut buf)?;
        if n == 0 {
            return Err(Error::Storage(format!(
                "the document ended at {offset} of its {len} bytes"
            )));
        }
        each(&buf[..n])?;
        offset += n as u64;
    }
    Ok(())
}

/// All of `source` in memory, for the steps that need it whole: borrowed
/// where it is there already, read otherwise.
pub fn whole(source: &dyn Source) -> Result<std::borrow::Cow<'_, [u8]>, Error> {
    match source.as_slice() {
        Some(bytes) => Ok(std::borrow::Cow::Borrowed(bytes)),
        None => read_all(source).map(std::borrow::Cow::Owned),
    }
}

/// Reads all of `source` into memory, for the steps that need it whole.
pub fn read_all(source: &dyn Source) -> Result<Vec<u8>, Error> {
    let len = usize::try_from(source.len())
        .map_err(|_| Error::Storage("the data is too large to hold in memory".into()))?;
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| Error::Storage(format!("{len} bytes cannot be held in memory here")))?;
    for_each_piece(source, |piece| {
        out.extend_from_slice(piece);
        Ok(())
    })?;
    Ok(out)
}

/// Bytes made of several pieces end to end: a header block in memory
/// followed by the document in the host's blob, say.
#[derive(Default)]
pub struct Chain<'a> {
    parts: Vec<Part<'a>>,
}

enum Part<'a> {
    Owned(Vec<u8>),
    Borrowed(&'a dyn Source),
    Boxed(Box<dyn Source + 'a>),
}

impl<'a> Chain<'a> {
    /// An empty chain.
    pub fn new() -> Self {
        Chain { parts: Vec::new() }
    }

    /// Appends bytes held here.
    pub fn push(&mut self, bytes: Vec<u8>) {
        self.parts.push(Part::Owned(bytes));
    }

    /// Appends a source read where it is.
    pub fn push_source(&mut self, source: &'a dyn Source) {
        self.parts.push(Part::Borrowed(source));
    }

    /// Appends a source the chain keeps (a spool).
    pub fn push_boxed(&mut self, source: Box<dyn Source + 'a>) {
        self.parts.push(Part::Boxed(source));
    }

    fn part_source<'p>(part: &'p Part<'a>) -> &'p dyn Source {
        match part {
            Part::Owned(bytes) => bytes,
            Part::Borrowed(source) => *source,
            Part::Boxed(source) => source.as_ref(),
        }
    }

    /// Writes every piece to `sink`.
    pub fn write_to(&self, sink: &mut dyn Sink) -> Result<(), Error> {
        for part in &self.parts {
            for_each_piece(Self::part_source(part), |piece| sink.write(piece))?;
        }
        Ok(())
    }
}

impl Source for Chain<'_> {
    fn len(&self) -> u64 {
        self.parts.iter().map(|p| Self::part_source(p).len()).sum()
    }

    fn read_at(&self, mut offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let mut filled = 0;
        for part in &self.parts {
            let source = Self::part_source(part);
            let len = source.len();
            if offset >= len {
                offset -= len;
                continue;
            }
            while filled < buf.len() && offset < len {
                let n = source.read_at(offset, &mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
                offset += n as u64;
            }
            if filled == buf.len() {
                break;
            }
            offset = 0;
        }
        Ok(filled)
    }
}

/// Base64 in lines of 76 characters, each CRLF-terminated (RFC 2045 §6.8),
/// written to the inner sink as the bytes come.
pub struct Base64Lines<'s> {
    inner: &'s mut dyn Sink,
    /// Bytes short of a whole line (57 bytes encode to one 76-character line).
    pending: Vec<u8>,
}

const LINE_BYTES: usize = 57;

impl<'s> Base64Lines<'s> {
    /// Encodes into `inner`.
    pub fn new(inner: &'s mut dyn Sink) -> Self {
        Base64Lines {
            inner,
            pending: Vec::with_capacity(LINE_BYTES),
        }
    }

    fn write_lines(&mut self, whole: &[u8]) -> Result<(), Error> {
        let mut out = String::with_capacity(whole.len().div_ceil(LINE_BYTES) * 78);
        for line in whole.chunks(LINE_BYTES) {
            base64::engine::general_purpose::STANDARD.encode_string(line, &mut out);
            out.push_str("\r\n");
        }
        self.inner.write(out.as_bytes())
    }

    /// Writes the last, shorter line.
    pub fn finish(mut self) -> Result<(), Error> {
        let rest = std::mem::take(&mut self.pending);
        if rest.is_empty() {
            return Ok(());
        }
        self.write_lines(&rest)
    }
}

impl Sink for Base64Lines<'_> {
    fn write(&mut self, mut data: &[u8]) -> Result<(), Error> {
        if !self.pending.is_empty() {
            let take = (LINE_BYTES - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < LINE_BYTES {
                return Ok(());
            }
            let line = std::mem::take(&mut self.pending);
            self.write_lines(&line)?;
        }
        let whole = data.len() / LINE_BYTES * LINE_BYTES;
        if whole > 0 {
            self.write_lines(&data[..whole])?;
        }
        self.pending.extend_from_slice(&data[whole..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_reads_across_its_parts_from_any_offset() {
        let middle = b"0123456789".to_vec();
        let mut chain = Chain::new();
        chain.push(b"head:".to_vec());
        chain.push_source(&middle);
        chain.push(b":tail".to_vec());
        let whole = b"head:0123456789:tail";
        assert_eq!(Source::len(&chain), whole.len() as u64);
        for offset in 0..whole.len() {
            for size in 1..8 {
                let mut buf = vec![0u8; size];
                let n = chain.read_at(offset as u64, &mut buf).unwrap();
                let expected = &whole[offset..(offset + size).min(whole.len())];
                assert_eq!(&buf[..n], expected, "offset {offset} size {size}");
            }
        }
        assert_eq!(read_all(&chain).unwrap(), whole);
    }

    #[test]
    fn base64_written_in_odd_pieces_equals_base64_of_the_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let expected = crate::mime::encode_base64_lines(&data);
        for piece in [1, 7, 56, 57, 58, 200, 1000] {
            let mut out = Vec::new();
            let mut lines = Base64Lines::new(&mut out);
            for chunk in data.chunks(piece) {
                lines.write(chunk).unwrap();
            }
            lines.finish().unwrap();
            assert_eq!(out, expected, "pieces of {piece}");
        }
    }
}

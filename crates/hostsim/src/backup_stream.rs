//! The Win32 backup stream, decoded strictly: what `BackupWrite` consumes and the legacy
//! import folder's files hold (after their 4 attribute bytes).
//!
//! Written from Microsoft's `WIN32_STREAM_ID`, `BackupWrite`, `SECURITY_DESCRIPTOR`,
//! `FILE_FULL_EA_INFORMATION` and `REPARSE_DATA_BUFFER` references, not from pane's encoder,
//! so the two can disagree. A stream is a sequence of records, each a 20-byte header
//! (`dwStreamId`, `dwStreamAttributes`, `Size`, `dwStreamNameSize`), the stream name in
//! UTF-16, then `Size` bytes. Data records are passed on in pieces as they arrive; metadata
//! records (security, EAs, reparse data) are collected whole, bounded, and checked.
//!
//! Stricter than Windows where Windows is silent: an unknown stream id or attribute bit, a
//! name on a record that has none, a second record of one kind, and data for a directory
//! are refused. pane never writes those; a stream that has them is a defect to find here.

use std::fmt;

pub const BACKUP_DATA: u32 = 1;
pub const BACKUP_EA_DATA: u32 = 2;
pub const BACKUP_SECURITY_DATA: u32 = 3;
pub const BACKUP_ALTERNATE_DATA: u32 = 4;
pub const BACKUP_LINK: u32 = 5;
pub const BACKUP_PROPERTY_DATA: u32 = 6;
pub const BACKUP_OBJECT_ID: u32 = 7;
pub const BACKUP_REPARSE_DATA: u32 = 8;
pub const BACKUP_SPARSE_BLOCK: u32 = 9;
pub const BACKUP_TXFS_DATA: u32 = 10;
pub const BACKUP_GHOSTED_FILE_EXTENTS: u32 = 11;

/// `STREAM_MODIFIED_WHEN_READ | STREAM_CONTAINS_SECURITY | STREAM_CONTAINS_PROPERTIES |
/// STREAM_SPARSE_ATTRIBUTE | STREAM_CONTAINS_GHOSTED_FILE_EXTENTS`: every documented bit.
const KNOWN_ATTRIBUTES: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10;

const HEADER_LEN: usize = 20;
/// A stream name is `:` + an NTFS name (255 characters at most) + `:$DATA`.
const MAX_NAME_BYTES: u32 = 2 * (1 + 255 + 6);
/// Security descriptors and EA lists are at most 64 KiB; a reparse buffer 16 KiB
/// (`MAXIMUM_REPARSE_DATA_BUFFER_SIZE`).
const MAX_SECURITY: u64 = 64 << 10;
const MAX_EA: u64 = 64 << 10;
const MAX_REPARSE: u64 = 16 << 10;

/// `IO_REPARSE_TAG_MOUNT_POINT` and `IO_REPARSE_TAG_SYMLINK`.
const TAG_MOUNT_POINT: u32 = 0xA000_0003;
const TAG_SYMLINK: u32 = 0xA000_000C;

/// Why a stream was refused: a message naming the record, for the caller's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError(pub String);

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StreamError {}

fn refuse<T>(why: impl Into<String>) -> Result<T, StreamError> {
    Err(StreamError(why.into()))
}

/// What the decoder found, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes of the unnamed data stream.
    Data(&'a [u8]),
    /// A named stream begins (`:name:$DATA`); its bytes follow as [`Piece::StreamData`].
    AlternateStream {
        name: String,
        size: u64,
    },
    StreamData(&'a [u8]),
    /// A whole, checked self-relative security descriptor.
    Security(Vec<u8>),
    /// A whole, checked `FILE_FULL_EA_INFORMATION` list.
    ExtendedAttributes(Vec<u8>),
    /// A whole, checked reparse buffer.
    Reparse(Vec<u8>),
}

#[derive(Debug)]
enum State {
    /// Collecting a header (and then its name).
    Header,
    /// Passing on `left` bytes of a data or alternate-data record.
    Passing { id: u32, left: u64 },
    /// Collecting a metadata record of `size` bytes.
    Collecting { id: u32, size: usize },
}

/// An incremental decoder: feed it the stream in chunks of any size.
#[derive(Debug)]
pub struct Decoder {
    directory: bool,
    state: State,
    buffer: Vec<u8>,
    seen: Vec<u32>,
    alternate_names: Vec<String>,
    records: usize,
    /// Set by the first refusal: a refused stream stays refused, whatever follows.
    failed: bool,
}

impl Decoder {
    /// A decoder for one file's stream; `directory` refuses unnamed data.
    pub fn new(directory: bool) -> Self {
        Self {
            directory,
            state: State::Header,
            buffer: Vec::new(),
            seen: Vec::new(),
            alternate_names: Vec::new(),
            records: 0,
            failed: false,
        }
    }

    /// Decodes `bytes`, handing each piece to `sink` as it completes.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        sink: &mut dyn FnMut(Piece<'_>) -> Result<(), StreamError>,
    ) -> Result<(), StreamError> {
        if self.failed {
            return refuse("the stream was refused already");
        }
        let result = self.decode(bytes, sink);
        self.failed = result.is_err();
        result
    }

    fn decode(
        &mut self,
        mut bytes: &[u8],
        sink: &mut dyn FnMut(Piece<'_>) -> Result<(), StreamError>,
    ) -> Result<(), StreamError> {
        while !bytes.is_empty() {
            match self.state {
                State::Header => {
                    let want = self.header_len_wanted();
                    let take = (want - self.buffer.len()).min(bytes.len());
                    self.buffer.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.buffer.len() == want {
                        self.header_complete(sink)?;
                    }
                }
                State::Passing { id, left } => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let (now, rest) = bytes.split_at(take);
                    bytes = rest;
                    if id == BACKUP_DATA {
                        sink(Piece::Data(now))?;
                    } else {
                        sink(Piece::StreamData(now))?;
                    }
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::Header
                    } else {
                        State::Passing { id, left }
                    };
                }
                State::Collecting { id, size } => {
                    let take = (size - self.buffer.len()).min(bytes.len());
                    self.buffer.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.buffer.len() == size {
                        let body = std::mem::take(&mut self.buffer);
                        self.state = State::Header;
                        sink(checked_metadata(id, body)?)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: refused if it stopped inside a record.
    pub fn finish(&self) -> Result<(), StreamError> {
        if self.failed {
            return refuse("the stream was refused");
        }
        match self.state {
            State::Header if self.buffer.is_empty() => Ok(()),
            State::Header => refuse(format!(
                "the stream ends inside the header of record {}",
                self.records + 1
            )),
            State::Passing { left, .. } => refuse(format!(
                "the stream ends {left} bytes before the end of record {}",
                self.records
            )),
            State::Collecting { size, .. } => refuse(format!(
                "the stream ends {} bytes before the end of record {}",
                size - self.buffer.len(),
                self.records
            )),
        }
    }

    /// 20 header bytes, then (once the header is in) its name's bytes.
    fn header_len_wanted(&self) -> usize {
        if self.buffer.len() < HEADER_LEN {
            return HEADER_LEN;
        }
        HEADER_LEN + u32_at(&self.buffer, 16) as usize
    }

    fn header_complete(
        &mut self,
        sink: &mut dyn FnMut(Piece<'_>) -> Result<(), StreamError>,
    ) -> Result<(), StreamError> {
        let id = u32_at(&self.buffer, 0);
        let attributes = u32_at(&self.buffer, 4);
        let size = u64::from(u32_at(&self.buffer, 8)) | (u64::from(u32_at(&self.buffer, 12)) << 32);
        let name_bytes = u32_at(&self.buffer, 16);
        if self.buffer.len() == HEADER_LEN && name_bytes > 0 {
            // The name's bytes are wanted next; validate their count before collecting.
            if name_bytes > MAX_NAME_BYTES || !name_bytes.is_multiple_of(2) {
                return refuse(format!(
                    "record {}: a stream name of {name_bytes} bytes (UTF-16, at most {MAX_NAME_BYTES})",
                    self.records + 1
                ));
            }
            return Ok(());
        }
        self.records += 1;
        let record = self.records;
        if !(BACKUP_DATA..=BACKUP_GHOSTED_FILE_EXTENTS).contains(&id) {
            return refuse(format!("record {record}: unknown stream id {id}"));
        }
        if attributes & !KNOWN_ATTRIBUTES != 0 {
            return refuse(format!(
                "record {record}: unknown stream attributes {attributes:#x}"
            ));
        }
        let name = name_from(&self.buffer[HEADER_LEN..])
            .map_err(|why| StreamError(format!("record {record}: {why}")))?;
        self.buffer.clear();
        if id == BACKUP_ALTERNATE_DATA {
            check_stream_name(&name)
                .map_err(|why| StreamError(format!("record {record}: {why}")))?;
            let lower = name.to_lowercase();
            if self.alternate_names.contains(&lower) {
                return refuse(format!("record {record}: stream {name} appears twice"));
            }
            self.alternate_names.push(lower);
            sink(Piece::AlternateStream { name, size })?;
            self.pass_or_header(id, size);
            return Ok(());
        }
        if !name.is_empty() {
            return refuse(format!(
                "record {record}: a {} record has no name, not {name:?}",
                kind(id)
            ));
        }
        if self.seen.contains(&id) {
            return refuse(format!("record {record}: a second {} record", kind(id)));
        }
        self.seen.push(id);
        match id {
            BACKUP_DATA if self.directory => refuse(format!(
                "record {record}: a directory has no unnamed data stream"
            )),
            BACKUP_DATA => {
                self.pass_or_header(id, size);
                Ok(())
            }
            BACKUP_SECURITY_DATA | BACKUP_EA_DATA | BACKUP_REPARSE_DATA => {
                let limit = match id {
                    BACKUP_SECURITY_DATA => MAX_SECURITY,
                    BACKUP_EA_DATA => MAX_EA,
                    _ => MAX_REPARSE,
                };
                if size == 0 || size > limit {
                    return refuse(format!(
                        "record {record}: a {} record of {size} bytes (1 to {limit})",
                        kind(id)
                    ));
                }
                self.state = State::Collecting {
                    id,
                    size: usize::try_from(size).unwrap_or(usize::MAX),
                };
                Ok(())
            }
            other => refuse(format!(
                "record {record}: a {} record, which no layer import writes",
                kind(other)
            )),
        }
    }

    fn pass_or_header(&mut self, id: u32, size: u64) {
        self.state = if size == 0 {
            State::Header
        } else {
            State::Passing { id, left: size }
        };
    }
}

fn kind(id: u32) -> &'static str {
    match id {
        BACKUP_DATA => "BACKUP_DATA",
        BACKUP_EA_DATA => "BACKUP_EA_DATA",
        BACKUP_SECURITY_DATA => "BACKUP_SECURITY_DATA",
        BACKUP_ALTERNATE_DATA => "BACKUP_ALTERNATE_DATA",
        BACKUP_LINK => "BACKUP_LINK",
        BACKUP_PROPERTY_DATA => "BACKUP_PROPERTY_DATA",
        BACKUP_OBJECT_ID => "BACKUP_OBJECT_ID",
        BACKUP_REPARSE_DATA => "BACKUP_REPARSE_DATA",
        BACKUP_SPARSE_BLOCK => "BACKUP_SPARSE_BLOCK",
        BACKUP_TXFS_DATA => "BACKUP_TXFS_DATA",
        _ => "BACKUP_GHOSTED_FILE_EXTENTS",
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    bytes
        .get(at..at + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn name_from(bytes: &[u8]) -> Result<String, String> {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| "a stream name that is not UTF-16".to_owned())
}

/// `:name:$DATA`, with an NTFS stream name: not empty, none of `\ / : NUL`.
fn check_stream_name(name: &str) -> Result<(), String> {
    let Some(inner) = name
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(":$DATA"))
    else {
        return Err(format!(
            "stream name {name:?} is not of the form :name:$DATA"
        ));
    };
    if inner.is_empty() || inner.contains(['\\', '/', ':', '\0']) {
        return Err(format!(
            "stream name {name:?} is not a valid NTFS stream name"
        ));
    }
    Ok(())
}

fn checked_metadata(id: u32, body: Vec<u8>) -> Result<Piece<'static>, StreamError> {
    let checked = match id {
        BACKUP_SECURITY_DATA => check_security_descriptor(&body).map(|()| Piece::Security(body)),
        BACKUP_EA_DATA => {
            check_extended_attributes(&body).map(|()| Piece::ExtendedAttributes(body))
        }
        _ => check_reparse(&body).map(|()| Piece::Reparse(body)),
    };
    checked.map_err(|why| StreamError(format!("{} record: {why}", kind(id))))
}

/// A self-relative `SECURITY_DESCRIPTOR`: revision 1, `SE_SELF_RELATIVE`, and every offset
/// pointing at a valid SID or ACL inside the record.
pub fn check_security_descriptor(sd: &[u8]) -> Result<(), String> {
    const SE_DACL_PRESENT: u16 = 0x0004;
    const SE_SACL_PRESENT: u16 = 0x0010;
    const SE_SELF_RELATIVE: u16 = 0x8000;
    if sd.len() < HEADER_LEN {
        return Err(format!("{} bytes, less than a descriptor header", sd.len()));
    }
    if sd[0] != 1 {
        return Err(format!("revision {}, not 1", sd[0]));
    }
    let control = u16_at(sd, 2);
    if control & SE_SELF_RELATIVE == 0 {
        return Err("not self-relative (SE_SELF_RELATIVE is not set)".into());
    }
    let offset = |at: usize| u32_at(sd, at) as usize;
    for (what, at) in [("owner", 4), ("group", 8)] {
        if offset(at) != 0 {
            check_sid(sd, offset(at)).map_err(|why| format!("the {what} SID {why}"))?;
        }
    }
    for (what, at, flag) in [("SACL", 12, SE_SACL_PRESENT), ("DACL", 16, SE_DACL_PRESENT)] {
        match (offset(at), control & flag != 0) {
            (0, _) => {}
            (_, false) => return Err(format!("a {what} offset without its PRESENT flag")),
            (start, true) => check_acl(sd, start).map_err(|why| format!("the {what} {why}"))?,
        }
    }
    Ok(())
}

fn check_sid(bytes: &[u8], start: usize) -> Result<usize, String> {
    let header = bytes
        .get(start..start + 8)
        .ok_or_else(|| format!("at {start} lies outside the descriptor"))?;
    let count = usize::from(header[1]);
    if header[0] != 1 || count > 15 {
        return Err(format!(
            "at {start} has revision {} and {count} subauthorities (1 and at most 15)",
            header[0]
        ));
    }
    let len = 8 + 4 * count;
    if start + len > bytes.len() {
        return Err(format!("at {start} runs past the descriptor"));
    }
    Ok(len)
}

fn check_acl(sd: &[u8], start: usize) -> Result<(), String> {
    let header = sd
        .get(start..start + 8)
        .ok_or_else(|| format!("at {start} lies outside the descriptor"))?;
    let revision = header[0];
    let size = usize::from(u16_at(header, 2));
    let count = usize::from(u16_at(header, 4));
    if !matches!(revision, 2 | 4) {
        return Err(format!("at {start} has revision {revision} (2 or 4)"));
    }
    if size < 8 || start + size > sd.len() {
        return Err(format!(
            "at {start} claims {size} bytes, past the descriptor"
        ));
    }
    let acl = &sd[start..start + size];
    let mut at = 8;
    for ace in 0..count {
        let ace_size = usize::from(u16_at(acl, at + 2));
        if ace_size < 8 || !ace_size.is_multiple_of(4) || at + ace_size > acl.len() {
            return Err(format!(
                "at {start}: ACE {ace} of {count} has size {ace_size}, outside the ACL"
            ));
        }
        // ACCESS_ALLOWED/DENIED/AUDIT/ALARM (types 0-3): header, mask, then a SID.
        if acl[at] <= 3 {
            let sid = check_sid(acl, at + 8)
                .map_err(|why| format!("at {start}: ACE {ace}'s SID {why}"))?;
            if 8 + sid > ace_size {
                return Err(format!("at {start}: ACE {ace}'s SID runs past the ACE"));
            }
        }
        at += ace_size;
    }
    Ok(())
}

/// A `FILE_FULL_EA_INFORMATION` list: each entry's name NUL-terminated, `NextEntryOffset`
/// 4-aligned and past the entry, the last entry's `NextEntryOffset` 0.
pub fn check_extended_attributes(list: &[u8]) -> Result<(), String> {
    let mut at = 0;
    for entry in 1.. {
        let header = list
            .get(at..at + 8)
            .ok_or_else(|| format!("entry {entry} at {at} runs past the list"))?;
        let next = u32_at(header, 0) as usize;
        let name_len = usize::from(header[5]);
        let value_len = usize::from(u16_at(header, 6));
        let len = 8 + name_len + 1 + value_len;
        if name_len == 0 {
            return Err(format!("entry {entry} has an empty name"));
        }
        let end = at + len;
        if end > list.len() {
            return Err(format!("entry {entry} runs past the list"));
        }
        if list[at + 8 + name_len] != 0 {
            return Err(format!("entry {entry}'s name is not NUL-terminated"));
        }
        if list[at + 8..at + 8 + name_len]
            .iter()
            .any(|b| !b.is_ascii() || *b == 0)
        {
            return Err(format!("entry {entry}'s name is not ASCII"));
        }
        if next == 0 {
            return if end == list.len() {
                Ok(())
            } else {
                Err(format!("{} bytes follow the last entry", list.len() - end))
            };
        }
        if !next.is_multiple_of(4) || next < len {
            return Err(format!(
                "entry {entry}'s NextEntryOffset {next} is not 4-aligned past its {len} bytes"
            ));
        }
        at += next;
    }
    Ok(())
}

/// A `REPARSE_DATA_BUFFER` (or, for a non-Microsoft tag, `REPARSE_GUID_DATA_BUFFER`) whose
/// `ReparseDataLength` is the rest of the record; for links, names inside the path buffer.
pub fn check_reparse(buffer: &[u8]) -> Result<(), String> {
    if buffer.len() < 8 {
        return Err(format!(
            "{} bytes, less than a reparse header",
            buffer.len()
        ));
    }
    let tag = u32_at(buffer, 0);
    let length = usize::from(u16_at(buffer, 4));
    let header = if tag & 0x8000_0000 == 0 { 24 } else { 8 };
    if header + length != buffer.len() {
        return Err(format!(
            "tag {tag:#x}: ReparseDataLength {length} does not fill the {} bytes after its header",
            buffer.len().saturating_sub(header)
        ));
    }
    let path_buffer = match tag {
        TAG_SYMLINK => 20,
        TAG_MOUNT_POINT => 16,
        _ => return Ok(()),
    };
    if buffer.len() < path_buffer {
        return Err(format!("tag {tag:#x}: too short for its name offsets"));
    }
    let names = &buffer[path_buffer..];
    for (what, at) in [("substitute", 8), ("print", 12)] {
        let offset = usize::from(u16_at(buffer, at));
        let len = usize::from(u16_at(buffer, at + 2));
        if !offset.is_multiple_of(2) || !len.is_multiple_of(2) || offset + len > names.len() {
            return Err(format!(
                "tag {tag:#x}: the {what} name ({offset}, {len}) lies outside the path buffer"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: u32, size: u64, name: &str) -> Vec<u8> {
        let name: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut out = Vec::new();
        out.extend(id.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend(u32::try_from(name.len()).unwrap().to_le_bytes());
        out.extend(name);
        out
    }

    /// `O:BAG:SYD:(A;;FA;;;BA)`, laid out by hand from the `SECURITY_DESCRIPTOR` reference.
    fn descriptor() -> Vec<u8> {
        let sid_ba = [1u8, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0];
        let sid_sy = [1u8, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
        let mut ace = vec![0u8, 0, 24, 0];
        ace.extend(0x001F_01FFu32.to_le_bytes());
        ace.extend(sid_ba);
        let mut acl = vec![2u8, 0, 32, 0, 1, 0, 0, 0];
        acl.extend(&ace);
        let owner = 20u32;
        let group = owner + 16;
        let dacl = group + 12;
        let mut sd = vec![1u8, 0];
        sd.extend((0x8000u16 | 0x0004).to_le_bytes());
        for offset in [owner, group, 0, dacl] {
            sd.extend(offset.to_le_bytes());
        }
        sd.extend(sid_ba);
        sd.extend(sid_sy);
        sd.extend(acl);
        sd
    }

    fn decode(stream: &[u8], directory: bool, chunk: usize) -> Result<Vec<String>, StreamError> {
        let mut decoder = Decoder::new(directory);
        let mut seen = Vec::new();
        for piece in stream.chunks(chunk) {
            decoder.feed(piece, &mut |p| {
                seen.push(match p {
                    Piece::Data(d) => format!("data {}", d.len()),
                    Piece::AlternateStream { name, size } => format!("stream {name} {size}"),
                    Piece::StreamData(d) => format!("stream-data {}", d.len()),
                    Piece::Security(sd) => format!("security {}", sd.len()),
                    Piece::ExtendedAttributes(ea) => format!("ea {}", ea.len()),
                    Piece::Reparse(r) => format!("reparse {}", r.len()),
                });
                Ok(())
            })?;
        }
        decoder.finish()?;
        Ok(seen)
    }

    #[test]
    fn records_decode_alike_whatever_the_chunking() {
        let sd = descriptor();
        let mut stream = header(BACKUP_SECURITY_DATA, sd.len() as u64, "");
        stream.extend(&sd);
        stream.extend(header(BACKUP_DATA, 5, ""));
        stream.extend(b"hello");
        stream.extend(header(BACKUP_ALTERNATE_DATA, 2, ":zone:$DATA"));
        stream.extend(b"z!");
        let whole = decode(&stream, false, stream.len()).unwrap();
        assert_eq!(
            whole,
            [
                "security 80",
                "data 5",
                "stream :zone:$DATA 2",
                "stream-data 2"
            ]
        );
        let bytewise = decode(&stream, false, 1).unwrap();
        assert_eq!(bytewise.iter().filter(|s| s.starts_with("data")).count(), 5);
        assert!(bytewise.contains(&"security 80".to_owned()));
    }

    #[test]
    fn malformed_streams_are_refused_with_the_record() {
        let cut = {
            let mut s = header(BACKUP_DATA, 10, "");
            s.extend(b"short");
            s
        };
        assert!(
            decode(&cut, false, 4)
                .unwrap_err()
                .0
                .contains("5 bytes before the end of record 1")
        );
        assert!(
            decode(&header(BACKUP_DATA, 0, "")[..7], false, 3)
                .unwrap_err()
                .0
                .contains("inside the header")
        );
        assert!(
            decode(&header(42, 0, ""), false, 64)
                .unwrap_err()
                .0
                .contains("unknown stream id 42")
        );
        assert!(
            decode(&header(BACKUP_DATA, 0, ":x:$DATA"), false, 64)
                .unwrap_err()
                .0
                .contains("has no name")
        );
        assert!(
            decode(&header(BACKUP_ALTERNATE_DATA, 0, "x"), false, 64)
                .unwrap_err()
                .0
                .contains(":name:$DATA")
        );
        assert!(
            decode(&header(BACKUP_DATA, 0, ""), true, 64)
                .unwrap_err()
                .0
                .contains("directory")
        );
        let mut twice = header(BACKUP_DATA, 0, "");
        twice.extend(header(BACKUP_DATA, 0, ""));
        assert!(
            decode(&twice, false, 64)
                .unwrap_err()
                .0
                .contains("second BACKUP_DATA")
        );
        assert!(
            decode(&header(BACKUP_LINK, 0, ""), false, 64)
                .unwrap_err()
                .0
                .contains("BACKUP_LINK")
        );
        let mut attributes = header(BACKUP_DATA, 0, "");
        attributes[4] = 0x40;
        assert!(
            decode(&attributes, false, 64)
                .unwrap_err()
                .0
                .contains("attributes 0x40")
        );
        let mut odd = header(BACKUP_ALTERNATE_DATA, 0, ":x:$DATA");
        odd[16] = 3;
        assert!(
            decode(&odd, false, 64)
                .unwrap_err()
                .0
                .contains("stream name of 3 bytes")
        );
        let mut decoder = Decoder::new(false);
        assert!(decoder.feed(&odd, &mut |_| Ok(())).is_err());
        let again = decoder.feed(&header(BACKUP_DATA, 0, ""), &mut |_| Ok(()));
        assert!(again.unwrap_err().0.contains("refused already"));
    }

    #[test]
    fn security_descriptors_are_checked_field_by_field() {
        let good = descriptor();
        check_security_descriptor(&good).unwrap();
        let mut absolute = good.clone();
        absolute[3] = 0;
        assert!(
            check_security_descriptor(&absolute)
                .unwrap_err()
                .contains("self-relative")
        );
        let mut no_flag = good.clone();
        no_flag[2] = 0;
        assert!(
            check_security_descriptor(&no_flag)
                .unwrap_err()
                .contains("PRESENT")
        );
        let mut outside = good.clone();
        outside[16] = 200;
        assert!(
            check_security_descriptor(&outside)
                .unwrap_err()
                .contains("DACL")
        );
        let mut big_ace = good.clone();
        big_ace[48 + 8 + 2] = 100;
        assert!(
            check_security_descriptor(&big_ace)
                .unwrap_err()
                .contains("ACE 0")
        );
        let mut sid = good;
        sid[20 + 1] = 16;
        assert!(
            check_security_descriptor(&sid)
                .unwrap_err()
                .contains("owner SID")
        );
    }

    #[test]
    fn ea_lists_and_reparse_buffers_are_checked() {
        // One EA "A" = "xy": 8 + 1 + 1 + 2 bytes.
        let ea = [0, 0, 0, 0, 0, 1, 2, 0, b'A', 0, b'x', b'y'];
        check_extended_attributes(&ea).unwrap();
        let mut unterminated = ea;
        unterminated[9] = b'B';
        assert!(
            check_extended_attributes(&unterminated)
                .unwrap_err()
                .contains("NUL")
        );
        assert!(
            check_extended_attributes(&ea[..10])
                .unwrap_err()
                .contains("past the list")
        );
        let mut misaligned = ea.to_vec();
        misaligned[0] = 13;
        misaligned.extend([0; 13]);
        assert!(
            check_extended_attributes(&misaligned)
                .unwrap_err()
                .contains("4-aligned")
        );

        // A symlink to "t": substitute (0, 2), print (2, 2), flags, then "tt".
        let mut link = TAG_SYMLINK.to_le_bytes().to_vec();
        link.extend(16u16.to_le_bytes());
        link.extend([0, 0]);
        for v in [0u16, 2, 2, 2] {
            link.extend(v.to_le_bytes());
        }
        link.extend(1u32.to_le_bytes());
        link.extend([b't', 0, b't', 0]);
        check_reparse(&link).unwrap();
        let mut wrong_length = link.clone();
        wrong_length[4] = 15;
        assert!(
            check_reparse(&wrong_length)
                .unwrap_err()
                .contains("ReparseDataLength")
        );
        let mut outside = link;
        outside[14] = 9;
        assert!(check_reparse(&outside).unwrap_err().contains("print name"));
    }
}

//! The Win32 backup stream (`BackupRead`/`BackupWrite`) and the structures carried in it.
//!
//! A backup stream is a sequence of records, each a `WIN32_STREAM_ID` header (stream id,
//! attributes, size, name length in bytes) followed by the UTF-16 name and `size` bytes of
//! data. Importing a layer turns each tar entry into such a stream, in the order Windows'
//! own writers use: security descriptor, extended attributes, reparse data, file data, then
//! one record per alternate data stream. Everything here is plain bytes, so it is built and
//! tested on any host.

use std::collections::BTreeMap;
use std::io::{self, Read};

use base64::Engine as _;

/// `BACKUP_DATA`: the file's unnamed data stream.
pub const STREAM_DATA: u32 = 1;
/// `BACKUP_EA_DATA`: `FILE_FULL_EA_INFORMATION` entries.
pub const STREAM_EA_DATA: u32 = 2;
/// `BACKUP_SECURITY_DATA`: a self-relative security descriptor.
pub const STREAM_SECURITY: u32 = 3;
/// `BACKUP_ALTERNATE_DATA`: a named data stream (`:name:$DATA`).
pub const STREAM_ALTERNATE_DATA: u32 = 4;
/// `BACKUP_REPARSE_DATA`: a `REPARSE_DATA_BUFFER`.
pub const STREAM_REPARSE: u32 = 8;
/// `BACKUP_SPARSE_BLOCK`: its size includes an 8-byte offset before the data.
pub const STREAM_SPARSE_BLOCK: u32 = 9;

/// `WIN32_STREAM_ID` without the name: id, attributes, size (u64), name size (u32).
pub const STREAM_HEADER_LEN: usize = 20;

const IO_REPARSE_TAG_MOUNT_POINT: u32 = 0xA000_0003;
const IO_REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
const SYMLINK_FLAG_RELATIVE: u32 = 1;

/// Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: i64 = 11_644_473_600;

/// `FILE_BASIC_INFO`: times in FILETIME units (100 ns since 1601) and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BasicInfo {
    pub creation_time: i64,
    pub last_access_time: i64,
    pub last_write_time: i64,
    pub change_time: i64,
    pub attributes: u32,
}

/// A PAX time (`seconds[.fraction]`, possibly negative) as a FILETIME; `None` when it does
/// not parse or falls outside what a FILETIME holds.
pub fn filetime_from_pax(text: &str) -> Option<i64> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let negative = seconds.starts_with('-');
    let seconds: i64 = seconds.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Seven digits of fraction are 100 ns units; the rest is below FILETIME's precision.
    let mut ticks_text: String = fraction.chars().take(7).collect();
    while ticks_text.len() < 7 {
        ticks_text.push('0');
    }
    let ticks: i64 = ticks_text.parse().ok()?;
    let ticks = if negative { -ticks } else { ticks };
    seconds
        .checked_add(FILETIME_UNIX_OFFSET)?
        .checked_mul(10_000_000)?
        .checked_add(ticks)
}

/// The PAX form of a FILETIME, with the full 100 ns precision.
pub fn pax_from_filetime(filetime: i64) -> String {
    let unix_ticks = filetime - FILETIME_UNIX_OFFSET * 10_000_000;
    let seconds = unix_ticks.div_euclid(10_000_000);
    let ticks = unix_ticks.rem_euclid(10_000_000);
    if ticks == 0 {
        seconds.to_string()
    } else if seconds < 0 {
        // PAX puts the sign on the whole value: -1.5 is 1.5 s before the epoch.
        let whole = -(unix_ticks);
        format!("-{}.{:07}", whole / 10_000_000, whole % 10_000_000)
    } else {
        format!("{seconds}.{ticks:07}")
    }
}

/// Writes one record header; `name` is only for alternate data streams.
pub fn stream_header(id: u32, size: u64, name: &str) -> Vec<u8> {
    let name: Vec<u16> = name.encode_utf16().collect();
    let mut out = Vec::with_capacity(STREAM_HEADER_LEN + name.len() * 2);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    let name_bytes = u32::try_from(name.len() * 2).unwrap_or(u32::MAX);
    out.extend_from_slice(&name_bytes.to_le_bytes());
    for unit in name {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// A whole record (header and data) for metadata streams held in memory.
pub fn stream_record(id: u32, data: &[u8]) -> Vec<u8> {
    let mut out = stream_header(id, data.len() as u64, "");
    out.extend_from_slice(data);
    out
}

/// Extended attributes as one `FILE_FULL_EA_INFORMATION` chain (entries 4-byte aligned,
/// the last with a zero next-entry offset). Values are the base64 text of the PAX records.
pub fn encode_extended_attributes(eas: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let count = eas.len();
    for (index, (name, value)) in eas.iter().enumerate() {
        let value = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| format!("extended attribute {name:?} is not base64"))?;
        let name_len = u8::try_from(name.len())
            .map_err(|_| format!("extended attribute name {name:?} is longer than 255 bytes"))?;
        let value_len = u16::try_from(value.len())
            .map_err(|_| format!("extended attribute {name:?} is larger than 65535 bytes"))?;
        let entry_len = 8 + name.len() + 1 + value.len();
        let padded = entry_len.next_multiple_of(4);
        let next = if index + 1 == count { 0 } else { padded };
        out.extend_from_slice(&u32::try_from(next).unwrap_or(0).to_le_bytes());
        out.push(0); // flags: persisted EAs carry none
        out.push(name_len);
        out.extend_from_slice(&value_len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(&value);
        if next != 0 {
            out.resize(out.len() + (padded - entry_len), 0);
        }
    }
    Ok(out)
}

/// The inverse of [`encode_extended_attributes`], values back in base64.
pub fn decode_extended_attributes(mut bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut eas = BTreeMap::new();
    let bad = || "a malformed extended attribute buffer".to_owned();
    while !bytes.is_empty() {
        let header = bytes.get(..8).ok_or_else(bad)?;
        let next = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let name_len = header[5] as usize;
        let value_len = u16::from_le_bytes([header[6], header[7]]) as usize;
        let name = bytes.get(8..8 + name_len).ok_or_else(bad)?;
        let value_start = 8 + name_len + 1;
        let value = bytes
            .get(value_start..value_start + value_len)
            .ok_or_else(bad)?;
        eas.insert(
            String::from_utf8(name.to_vec()).map_err(|_| bad())?,
            base64::engine::general_purpose::STANDARD.encode(value),
        );
        if next == 0 {
            break;
        }
        bytes = bytes.get(next..).ok_or_else(bad)?;
    }
    Ok(eas)
}

/// A `REPARSE_DATA_BUFFER` for a symbolic link or (with `junction`) a mount point. The
/// substitute name is the NT form of the target (`\??\C:\…`), the print name the target as
/// written; a target without a drive or UNC prefix is a relative symlink.
pub fn encode_reparse_point(target: &str, junction: bool) -> Vec<u8> {
    let target = target.replace('/', "\\");
    let (substitute, relative) = if let Some(rest) = target.strip_prefix(r"\\?\") {
        (format!(r"\??\{rest}"), false)
    } else if let Some(rest) = target.strip_prefix(r"\\") {
        (format!(r"\??\UNC\{rest}"), false)
    } else if target.as_bytes().get(1) == Some(&b':') && target.as_bytes()[0].is_ascii_alphabetic()
    {
        (format!(r"\??\{target}"), false)
    } else {
        (target.clone(), true)
    };
    // Both names are NUL-terminated in the buffer although their lengths exclude the NUL.
    let substitute: Vec<u16> = substitute.encode_utf16().chain([0]).collect();
    let print: Vec<u16> = target.encode_utf16().chain([0]).collect();
    let names_len = (substitute.len() + print.len()) * 2;
    let header_tail = if junction { 8 } else { 12 };
    let data_len = u16::try_from(header_tail + names_len).unwrap_or(u16::MAX);
    let tag = if junction {
        IO_REPARSE_TAG_MOUNT_POINT
    } else {
        IO_REPARSE_TAG_SYMLINK
    };
    let as_u16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(8 + usize::from(data_len));
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // substitute name offset
    out.extend_from_slice(&as_u16((substitute.len() - 1) * 2).to_le_bytes());
    out.extend_from_slice(&as_u16(substitute.len() * 2).to_le_bytes()); // print name offset
    out.extend_from_slice(&as_u16((print.len() - 1) * 2).to_le_bytes());
    if !junction {
        let flags = if relative { SYMLINK_FLAG_RELATIVE } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
    }
    for unit in substitute.iter().chain(&print) {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// The target (print name) and junction flag of a symlink or mount-point reparse buffer.
pub fn decode_reparse_point(bytes: &[u8]) -> Result<(String, bool), String> {
    let bad = || "a malformed reparse buffer".to_owned();
    let u16_at = |at: usize| -> Result<usize, String> {
        let b = bytes.get(at..at + 2).ok_or_else(bad)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let tag = u32::from_le_bytes(
        bytes
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let junction = match tag {
        IO_REPARSE_TAG_MOUNT_POINT => true,
        IO_REPARSE_TAG_SYMLINK => false,
        other => {
            return Err(format!(
                "reparse tag 0x{other:08X} is neither a symlink nor a junction"
            ));
        }
    };
    let names_start = if junction { 16 } else { 20 };
    let print_offset = u16_at(12)?;
    let print_len = u16_at(14)?;
    let print = bytes
        .get(names_start + print_offset..names_start + print_offset + print_len)
        .ok_or_else(bad)?;
    let units: Vec<u16> = print
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Ok((String::from_utf16(&units).map_err(|_| bad())?, junction))
}

/// One record of a backup stream being read: its header fields. The data follows in the
/// reader and must be consumed (or skipped) before the next [`next_record`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub id: u32,
    pub attributes: u32,
    pub size: u64,
    pub name: String,
}

/// Reads the next record header, `None` at a clean end of stream.
pub fn next_record(input: &mut impl Read) -> io::Result<Option<StreamRecord>> {
    let mut header = [0u8; STREAM_HEADER_LEN];
    let mut filled = 0;
    while filled < header.len() {
        match input.read(&mut header[filled..])? {
            0 if filled == 0 => return Ok(None),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a backup stream header is cut short",
                ));
            }
            n => filled += n,
        }
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let size = u64::from_le_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14],
        header[15],
    ]);
    let name_size = word(16) as usize;
    if !name_size.is_multiple_of(2) || name_size > 64 << 10 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a backup stream name of impossible length",
        ));
    }
    let mut name = vec![0u8; name_size];
    input.read_exact(&mut name)?;
    let units: Vec<u16> = name
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Ok(Some(StreamRecord {
        id: word(0),
        attributes: word(4),
        size,
        name: String::from_utf16_lossy(&units),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_headers_are_win32_stream_ids() {
        let header = stream_header(STREAM_ALTERNATE_DATA, 5, ":z:$DATA");
        assert_eq!(&header[..4], &4u32.to_le_bytes());
        assert_eq!(&header[8..16], &5u64.to_le_bytes());
        assert_eq!(&header[16..20], &16u32.to_le_bytes());
        assert_eq!(header.len(), STREAM_HEADER_LEN + 16);
        let mut cursor = io::Cursor::new(header);
        let record = next_record(&mut cursor).unwrap().unwrap();
        assert_eq!(record.name, ":z:$DATA");
        assert_eq!(record.size, 5);
        assert!(next_record(&mut cursor).unwrap().is_none());
        let mut short = io::Cursor::new(vec![1, 0, 0]);
        assert!(next_record(&mut short).is_err());
    }

    #[test]
    fn symlink_reparse_buffers_follow_the_documented_layout() {
        // An absolute symlink: tag, data length, offsets, flags 0, "\??\C:\a", "C:\a".
        let buffer = encode_reparse_point("C:/a", false);
        assert_eq!(&buffer[..4], &0xA000_000Cu32.to_le_bytes());
        let substitute: Vec<u8> = r"\??\C:\a"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            u16::from_le_bytes([buffer[10], buffer[11]]) as usize,
            substitute.len()
        );
        assert_eq!(&buffer[16..20], &0u32.to_le_bytes());
        assert_eq!(&buffer[20..20 + substitute.len()], &substitute[..]);
        let data_len = u16::from_le_bytes([buffer[4], buffer[5]]) as usize;
        assert_eq!(buffer.len(), 8 + data_len);
        assert_eq!(
            decode_reparse_point(&buffer).unwrap(),
            (r"C:\a".to_owned(), false)
        );

        let relative = encode_reparse_point("../lib/x.dll", false);
        assert_eq!(&relative[16..20], &1u32.to_le_bytes());
        assert_eq!(
            decode_reparse_point(&relative).unwrap(),
            (r"..\lib\x.dll".to_owned(), false)
        );
        let junction = encode_reparse_point(r"C:\ProgramData", true);
        assert_eq!(&junction[..4], &0xA000_0003u32.to_le_bytes());
        assert_eq!(
            decode_reparse_point(&junction).unwrap(),
            (r"C:\ProgramData".to_owned(), true)
        );
        assert!(decode_reparse_point(&[1, 2, 3]).is_err());
    }

    #[test]
    fn extended_attributes_round_trip_and_are_aligned() {
        let mut eas = BTreeMap::new();
        eas.insert("A".to_owned(), "AQID".to_owned()); // [1, 2, 3]
        eas.insert("LONGER".to_owned(), String::new());
        let bytes = encode_extended_attributes(&eas).unwrap();
        // First entry: 8 + 1 + 1 + 3 = 13 bytes, padded to 16.
        assert_eq!(&bytes[..4], &16u32.to_le_bytes());
        assert_eq!(bytes.len(), 16 + 8 + 6 + 1);
        assert_eq!(decode_extended_attributes(&bytes).unwrap(), eas);
        let mut bad = BTreeMap::new();
        bad.insert("x".to_owned(), "not base64!".to_owned());
        assert!(encode_extended_attributes(&bad).is_err());
        assert!(decode_extended_attributes(&[0, 0, 0]).is_err());
    }

    #[test]
    fn pax_times_convert_to_filetimes_and_back() {
        assert_eq!(
            filetime_from_pax("0"),
            Some(FILETIME_UNIX_OFFSET * 10_000_000)
        );
        let t = filetime_from_pax("1700000000.1234567").unwrap();
        assert_eq!(t % 10_000_000, 1_234_567);
        assert_eq!(pax_from_filetime(t), "1700000000.1234567");
        // Digits below 100 ns are dropped, not rounded into the seconds.
        assert_eq!(
            filetime_from_pax("1.999999999"),
            filetime_from_pax("1.9999999")
        );
        assert_eq!(
            pax_from_filetime(filetime_from_pax("-1.5").unwrap()),
            "-1.5000000"
        );
        assert_eq!(filetime_from_pax("12x"), None);
        assert_eq!(filetime_from_pax("1.2e3"), None);
        assert_eq!(filetime_from_pax("99999999999999999"), None);
    }
}

//! The streaming layer reader: decompresses, hashes (the diff ID), parses and validates
//! every entry before the caller sees it. Nothing is buffered but one entry's PAX records.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::entry::{EntryKind, LayerEntry};
use crate::error::LayerError;

/// The largest PAX or GNU long-name record accepted. A security descriptor is at most 64 KiB;
/// anything bigger is hostile.
pub const MAX_EXTENSION_SIZE: u64 = 256 << 10;
const WHITEOUT_PREFIX: &str = ".wh.";
const EA_PREFIX: &str = "MSWINDOWS.xattr.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What reading a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// sha256 of the uncompressed tar stream: the layer's diff ID.
    pub diff_id: String,
    pub uncompressed_bytes: u64,
    pub entries: usize,
}

impl LayerSummary {
    /// The layer is the one the image config names (`expected` diff ID).
    pub fn verify(&self, expected: &str) -> Result<(), LayerError> {
        if self.diff_id == expected {
            Ok(())
        } else {
            Err(LayerError::DiffId {
                expected: expected.to_owned(),
                actual: self.diff_id.clone(),
            })
        }
    }
}

/// Reads Windows layers. The visitor gets each validated entry and, for files, its data.
#[derive(Debug, Default)]
pub struct LayerReader;

/// Counts and hashes the uncompressed stream as the tar parser pulls it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Chooses the codec from the stream's magic bytes (media types lie more often than magic).
fn decompress<'a, R: Read + 'a>(input: R) -> Result<Box<dyn Read + 'a>, LayerError> {
    let mut buffered = BufReader::with_capacity(256 << 10, input);
    let head = buffered
        .fill_buf()
        .map_err(|e| LayerError::Stream(e.to_string()))?;
    Ok(match head {
        [0x1f, 0x8b, ..] => Box::new(BufReader::with_capacity(
            256 << 10,
            flate2::bufread::MultiGzDecoder::new(buffered),
        )),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
            ruzstd::decoding::StreamingDecoder::new(buffered)
                .map_err(|e| LayerError::Stream(format!("zstd: {e}")))?,
        ),
        _ => Box::new(buffered),
    })
}

/// PAX records and GNU long names that apply to the next entry.
#[derive(Default)]
struct Pending {
    pax: HashMap<String, String>,
    long_name: Option<String>,
    long_link: Option<String>,
}

impl LayerReader {
    /// Reads a whole layer (tar, gzip or zstd), calling `visit` for every entry in order.
    pub fn read<R: Read>(
        &self,
        input: R,
        mut visit: impl FnMut(&LayerEntry, &mut dyn Read) -> Result<(), LayerError>,
    ) -> Result<LayerSummary, LayerError> {
        let hashing = Hashing {
            inner: decompress(input)?,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut archive = tar::Archive::new(hashing);
        let mut pending = Pending::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut files: HashSet<String> = HashSet::new();
        let mut count = 0;
        let entries = archive
            .entries()
            .map_err(|e| LayerError::Stream(e.to_string()))?
            .raw(true);
        for entry in entries {
            let mut entry = entry.map_err(|e| LayerError::Stream(e.to_string()))?;
            let header_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            match kind {
                EntryType::XHeader => {
                    let text = read_extension(&mut entry, &header_path)?;
                    pending.pax.extend(parse_pax(&text, &header_path)?);
                    continue;
                }
                EntryType::XGlobalHeader => {
                    // Windows layer writers never emit global records; they would change
                    // every later entry, so refuse rather than guess.
                    return Err(LayerError::entry(
                        &header_path,
                        "global PAX headers are not supported in Windows layers",
                    ));
                }
                EntryType::GNULongName => {
                    pending.long_name = Some(trim_nul(&read_extension(&mut entry, &header_path)?));
                    continue;
                }
                EntryType::GNULongLink => {
                    pending.long_link = Some(trim_nul(&read_extension(&mut entry, &header_path)?));
                    continue;
                }
                _ => {}
            }
            let current = std::mem::take(&mut pending);
            let (path, kind) = classify(&entry, header_path, &current, &seen, &files)?;
            if !seen.insert(path.to_lowercase()) {
                return Err(LayerError::entry(
                    &path,
                    "appears twice in the layer (Windows paths ignore case)",
                ));
            }
            if matches!(kind, EntryKind::File { .. } | EntryKind::HardLink { .. }) {
                files.insert(path.to_lowercase());
            }
            let mut layer_entry = LayerEntry::new(path, kind);
            apply_metadata(&mut layer_entry, &current.pax, entry.header().mtime().ok())?;
            count += 1;
            visit(&layer_entry, &mut entry)?;
        }
        let mut hashing = archive.into_inner();
        // The hash covers the whole stream, end-of-archive blocks and padding included.
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| LayerError::Stream(e.to_string()))?;
        let digest = hashing.hasher.finalize();
        Ok(LayerSummary {
            diff_id: format!("sha256:{}", hex(&digest)),
            uncompressed_bytes: hashing.bytes,
            entries: count,
        })
    }
}

/// Works out what a (non-extension) tar entry is, from its header and pending records.
fn classify<R: Read>(
    entry: &tar::Entry<'_, R>,
    header_path: String,
    current: &Pending,
    seen: &HashSet<String>,
    files: &HashSet<String>,
) -> Result<(String, EntryKind), LayerError> {
    let raw_path = current
        .pax
        .get("path")
        .cloned()
        .or_else(|| current.long_name.clone())
        .unwrap_or(header_path);
    let path = validate_path(&raw_path).map_err(|problem| LayerError::entry(&raw_path, problem))?;
    let size = entry
        .header()
        .size()
        .map_err(|e| LayerError::entry(&path, e.to_string()))?;
    if let Some(pax_size) = current.pax.get("size")
        && pax_size.parse::<u64>().ok() != Some(size)
    {
        return Err(LayerError::entry(
            &path,
            "a PAX size override (files over 8 GiB) is not supported",
        ));
    }
    let link = || {
        current
            .pax
            .get("linkpath")
            .cloned()
            .or_else(|| current.long_link.clone())
            .or_else(|| {
                entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            })
            .ok_or_else(|| LayerError::entry(&path, "a link without a target"))
    };
    let name = path.rsplit('/').next().unwrap_or_default().to_owned();
    let kind = entry.header().entry_type();
    Ok(match kind {
        EntryType::Directory => (path, EntryKind::Directory),
        EntryType::Regular | EntryType::Continuous if name == OPAQUE_WHITEOUT => {
            return Err(LayerError::entry(
                &path,
                "opaque-directory whiteouts are not used by Windows layers",
            ));
        }
        EntryType::Regular | EntryType::Continuous if name.starts_with(WHITEOUT_PREFIX) => {
            let parent = &path[..path.len() - name.len()];
            let target = format!("{parent}{}", &name[WHITEOUT_PREFIX.len()..]);
            (
                validate_path(&target).map_err(|p| LayerError::entry(&path, p))?,
                EntryKind::Whiteout,
            )
        }
        EntryType::Regular | EntryType::Continuous => (path, EntryKind::File { size }),
        EntryType::Link => {
            let target = validate_path(&link()?)
                .map_err(|p| LayerError::entry(&path, format!("hard link target {p}")))?;
            let root_of = |p: &str| {
                if p.starts_with("Files/") {
                    Some("Files")
                } else if p.starts_with("UtilityVM/Files/") {
                    Some("UtilityVM/Files")
                } else {
                    None
                }
            };
            if root_of(&path).is_none() || root_of(&path) != root_of(&target) {
                return Err(LayerError::entry(
                    &path,
                    format!("hard link to {target:?} in another layer root"),
                ));
            }
            // A target no earlier entry has is a parent layer's file (Windows layers link
            // across layers); the importer resolves it and refuses it if no parent has it.
            if seen.contains(&target.to_lowercase()) && !files.contains(&target.to_lowercase()) {
                return Err(LayerError::entry(
                    &path,
                    format!("hard link to {target:?}, which is not a file"),
                ));
            }
            (path, EntryKind::HardLink { target })
        }
        EntryType::Symlink => {
            let target = link()?;
            check_symlink(&path, &target).map_err(|p| LayerError::entry(&path, p))?;
            let junction = current
                .pax
                .get("MSWINDOWS.mountpoint")
                .is_some_and(|v| v == "1");
            (path, EntryKind::SymbolicLink { target, junction })
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            return Err(LayerError::entry(
                &path,
                "device nodes and FIFOs cannot be in a Windows layer",
            ));
        }
        other => {
            return Err(LayerError::entry(
                &path,
                format!("unsupported tar entry type {other:?}"),
            ));
        }
    })
}

fn read_extension(entry: &mut impl Read, path: &str) -> Result<String, LayerError> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_EXTENSION_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| LayerError::entry(path, e.to_string()))?;
    if bytes.len() as u64 > MAX_EXTENSION_SIZE {
        return Err(LayerError::entry(
            path,
            format!("an extended header larger than {MAX_EXTENSION_SIZE} bytes"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| LayerError::entry(path, "an extended header that is not UTF-8"))
}

fn trim_nul(text: &str) -> String {
    text.trim_end_matches('\0').to_owned()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

/// PAX records: `<length> <key>=<value>\n`, the length counting the whole record.
fn parse_pax(text: &str, path: &str) -> Result<HashMap<String, String>, LayerError> {
    let mut records = HashMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let bad = || LayerError::entry(path, "a malformed PAX record");
        let (length, _) = rest.split_once(' ').ok_or_else(bad)?;
        let length: usize = length.parse().map_err(|_| bad())?;
        let record = rest.get(..length).ok_or_else(bad)?;
        let body = record
            .get(record.find(' ').ok_or_else(bad)? + 1..)
            .and_then(|b| b.strip_suffix('\n'))
            .ok_or_else(bad)?;
        let (key, value) = body.split_once('=').ok_or_else(bad)?;
        records.insert(key.to_owned(), value.to_owned());
        rest = &rest[length..];
    }
    Ok(records)
}

fn apply_metadata(
    entry: &mut LayerEntry,
    pax: &HashMap<String, String>,
    header_mtime: Option<u64>,
) -> Result<(), LayerError> {
    if let Some(attributes) = pax.get("MSWINDOWS.fileattr") {
        entry.attributes =
            Some(attributes.parse().map_err(|_| {
                LayerError::entry(&entry.path, "MSWINDOWS.fileattr is not a number")
            })?);
    }
    if let Some(sd) = pax.get("MSWINDOWS.rawsd") {
        base64::engine::general_purpose::STANDARD
            .decode(sd)
            .map_err(|_| LayerError::entry(&entry.path, "MSWINDOWS.rawsd is not base64"))?;
        entry.security_descriptor = Some(sd.clone());
    }
    for (key, value) in pax {
        if let Some(name) = key.strip_prefix(EA_PREFIX) {
            base64::engine::general_purpose::STANDARD
                .decode(value)
                .map_err(|_| LayerError::entry(&entry.path, format!("{key} is not base64")))?;
            // An EA name is one byte-counted field in FILE_FULL_EA_INFORMATION.
            if name.is_empty() || name.len() > 255 {
                return Err(LayerError::entry(
                    &entry.path,
                    format!("{key}: an extended attribute name must be 1 to 255 bytes"),
                ));
            }
            entry
                .extended_attributes
                .insert(name.to_owned(), value.clone());
        }
    }
    entry.sddl = pax.get("MSWINDOWS.sd").cloned();
    entry.creation_time = pax.get("LIBARCHIVE.creationtime").cloned();
    entry.modification_time = pax
        .get("mtime")
        .cloned()
        .or_else(|| header_mtime.filter(|t| *t != 0).map(|t| t.to_string()));
    Ok(())
}

/// Characters NTFS refuses in a file or stream name besides `/`, `\` and `:` (which are
/// separators here): control characters and `<>"|?*` ("Naming Files, Paths, and
/// Namespaces"). The `\\?\` paths pane opens skip Win32's name parsing, which is what lets
/// reserved names (`CON`) and trailing dots through, but the file system still refuses
/// these, so an import would fail half way. hcsshim does not check; Windows does, late.
fn is_forbidden_in_windows_names(c: char) -> bool {
    matches!(c, '\u{1}'..='\u{1f}' | '<' | '>' | '"' | '|' | '?' | '*')
}

/// Why Windows cannot hold `component` (the last one with its `:stream`), if it cannot.
fn windows_name_problem(component: &str) -> Option<String> {
    if let Some(c) = component
        .chars()
        .find(|c| is_forbidden_in_windows_names(*c))
    {
        return Some(format!(
            "{c:?} in a name, which Windows file systems cannot hold"
        ));
    }
    // go-winio's backuptar names a stream `file:stream` (the `:$DATA` type dropped), so a
    // second `:` or an empty stream name is not a stream Windows can create.
    if let Some((_, stream)) = component.split_once(':')
        && (stream.is_empty() || stream.contains(':'))
    {
        return Some(
            "an alternate data stream name that is empty or holds `:`, which Windows cannot \
             create"
                .to_owned(),
        );
    }
    None
}

/// A relative path under `Files/`, `Hives/` or `UtilityVM/Files/`, with no `.`/`..`, no
/// drive, no backslash, and only names Windows can create; `./` prefixes and trailing
/// slashes are dropped.
pub fn validate_path(raw: &str) -> Result<String, String> {
    let path = raw.strip_prefix("./").unwrap_or(raw).trim_end_matches('/');
    if path.is_empty() {
        return Err("an empty path".to_owned());
    }
    if path.starts_with('/') {
        return Err("an absolute path".to_owned());
    }
    if path.contains(['\\', '\0']) {
        return Err("a backslash or NUL in the path".to_owned());
    }
    let components: Vec<&str> = path.split('/').collect();
    for (index, component) in components.iter().enumerate() {
        match *component {
            "" | "." => return Err("an empty or `.` path component".to_owned()),
            ".." => return Err("a `..` component, which could escape the layer".to_owned()),
            // `:` marks an alternate data stream, only in the last component.
            c if c.contains(':') && index + 1 != components.len() => {
                return Err("a `:` inside the path".to_owned());
            }
            c => {
                if let Some(problem) = windows_name_problem(c) {
                    return Err(problem);
                }
            }
        }
    }
    let allowed = matches!(
        components.as_slice(),
        ["Files" | "Hives", ..] | ["UtilityVM"] | ["UtilityVM", "Files", ..]
    );
    if !allowed {
        return Err("outside Files/, Hives/ and UtilityVM/Files/".to_owned());
    }
    if components.len() == 1 && path.contains(':') {
        return Err("a stream on a layer root".to_owned());
    }
    Ok(path.to_owned())
}

/// Symlink targets stay text, but a relative one must not climb out of its root.
fn check_symlink(path: &str, target: &str) -> Result<(), String> {
    if target.is_empty() || target.contains('\0') {
        return Err("a symbolic link with an empty target".to_owned());
    }
    let absolute = target.starts_with(['/', '\\']) || target.as_bytes().get(1) == Some(&b':');
    if absolute {
        return Ok(());
    }
    // Depth below the root directory (Files, Hives, UtilityVM/Files) of the link's parent.
    let root_depth = if path.starts_with("UtilityVM/") { 2 } else { 1 };
    let mut depth = i64::try_from(path.split('/').count()).unwrap_or(i64::MAX) - 1 - root_depth;
    for component in target.split(['/', '\\']) {
        match component {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return Err(format!(
                "a relative link target {target:?} that leaves the layer"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_in_the_layer_roots() {
        for ok in [
            "Files",
            "Files/Windows/System32/cmd.exe",
            "./Files/a/",
            "Hives/System_Delta",
            "UtilityVM/Files/EFI",
            "Files/a.txt:Zone.Identifier",
        ] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/Files/a",
            "Files/../../etc/passwd",
            "Files/./a",
            "Files//a",
            "Other/a",
            "UtilityVM/Other",
            "C:/Files",
            "Files\\..\\x",
            "Files/a:b/c",
            "files/a",
        ] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_symlinks_cannot_climb_out() {
        assert!(check_symlink("Files/a/link", "../b").is_ok());
        assert!(check_symlink("Files/a/link", "../../x").is_err());
        assert!(check_symlink("Files/link", r"C:\ProgramData").is_ok());
        assert!(check_symlink("UtilityVM/Files/a/link", "../../../x").is_err());
        assert!(check_symlink("Files/link", "").is_err());
    }

    #[test]
    fn pax_records_parse_strictly() {
        let records = parse_pax("25 MSWINDOWS.fileattr=32\n", "p").unwrap();
        assert_eq!(records["MSWINDOWS.fileattr"], "32");
        assert!(parse_pax("99 key=value\n", "p").is_err());
        assert!(parse_pax("12 novalue\n", "p").is_err());
    }
}

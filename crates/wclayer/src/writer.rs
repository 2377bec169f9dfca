//! Writes Windows layers in the format [`crate::LayerReader`] reads, with the same PAX records.

use std::io::{Read, Write};

use crate::entry::{EntryKind, LayerEntry};
use crate::error::LayerError;

/// A layer tar being written.
pub struct LayerWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> std::fmt::Debug for LayerWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayerWriter")
    }
}

fn failed(path: &str) -> impl FnOnce(std::io::Error) -> LayerError + '_ {
    move |e| LayerError::entry(path, format!("cannot be written: {e}"))
}

impl<W: Write> LayerWriter<W> {
    pub fn new(output: W) -> Self {
        let mut builder = tar::Builder::new(output);
        builder.mode(tar::HeaderMode::Deterministic);
        Self { builder }
    }

    /// Appends `entry`; `data` is the content of a file entry (its `size` bytes).
    pub fn append(
        &mut self,
        entry: &LayerEntry,
        data: Option<&mut dyn Read>,
    ) -> Result<(), LayerError> {
        let mut records: Vec<(&str, String)> = Vec::new();
        if let Some(attributes) = entry.attributes {
            records.push(("MSWINDOWS.fileattr", attributes.to_string()));
        }
        if let Some(sd) = &entry.security_descriptor {
            records.push(("MSWINDOWS.rawsd", sd.clone()));
        }
        if let Some(sddl) = &entry.sddl {
            records.push(("MSWINDOWS.sd", sddl.clone()));
        }
        if let EntryKind::SymbolicLink { junction: true, .. } = entry.kind {
            records.push(("MSWINDOWS.mountpoint", "1".to_owned()));
        }
        let ea_keys: Vec<String> = entry
            .extended_attributes
            .keys()
            .map(|name| format!("MSWINDOWS.xattr.{name}"))
            .collect();
        for (key, value) in ea_keys.iter().zip(entry.extended_attributes.values()) {
            records.push((key, value.clone()));
        }
        if let Some(time) = &entry.creation_time {
            records.push(("LIBARCHIVE.creationtime", time.clone()));
        }
        if let Some(time) = &entry.modification_time {
            records.push(("mtime", time.clone()));
        }
        // Long names and link targets go in PAX too, so nothing depends on GNU extensions.
        let (path, link) = match &entry.kind {
            EntryKind::Whiteout => {
                let (parent, name) = entry.path.rsplit_once('/').unwrap_or(("", &entry.path));
                (format!("{parent}/.wh.{name}"), None)
            }
            EntryKind::HardLink { target } | EntryKind::SymbolicLink { target, .. } => {
                (entry.path.clone(), Some(target.clone()))
            }
            _ => (entry.path.clone(), None),
        };
        records.push(("path", path.clone()));
        if let Some(link) = &link {
            records.push(("linkpath", link.clone()));
        }
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, v.as_bytes())))
            .map_err(failed(&entry.path))?;

        let mut header = tar::Header::new_ustar();
        let (kind, size, mode) = match &entry.kind {
            EntryKind::Directory => (tar::EntryType::Directory, 0, 0o755),
            EntryKind::File { size } => (tar::EntryType::Regular, *size, 0o644),
            EntryKind::Whiteout => (tar::EntryType::Regular, 0, 0o644),
            EntryKind::HardLink { .. } => (tar::EntryType::Link, 0, 0o644),
            EntryKind::SymbolicLink { .. } => (tar::EntryType::Symlink, 0, 0o777),
        };
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(mode);
        header.set_mtime(
            entry
                .modification_time
                .as_deref()
                .and_then(|t| t.split('.').next()?.parse().ok())
                .unwrap_or(0),
        );
        // The ustar fields get a short form; the PAX `path`/`linkpath` above are what count.
        header.set_path(short(&path)).map_err(failed(&entry.path))?;
        if let Some(link) = &link {
            header
                .set_link_name(short(link))
                .map_err(failed(&entry.path))?;
        }
        header.set_cksum();
        match (data, size) {
            (Some(data), _) => self.builder.append(&header, data.take(size)),
            (None, 0) => self.builder.append(&header, std::io::empty()),
            (None, _) => {
                return Err(LayerError::entry(
                    &entry.path,
                    "a file entry without its data",
                ));
            }
        }
        .map_err(failed(&entry.path))
    }

    pub fn finish(self) -> Result<W, LayerError> {
        self.builder
            .into_inner()
            .map_err(|e| LayerError::Stream(e.to_string()))
    }
}

/// At most 99 bytes of the path, cut at a character boundary, for the ustar name field.
fn short(path: &str) -> &str {
    let mut end = path.len().min(99);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::LayerReader;

    fn sample() -> Vec<(LayerEntry, Vec<u8>)> {
        let mut file = LayerEntry::new(
            "Files/Windows/System32/kernel32.dll",
            EntryKind::File { size: 5 },
        );
        file.attributes = Some(32);
        file.security_descriptor = Some("AQAEgBQAAAAkAAAAAAAAADQAAAA=".to_owned());
        file.creation_time = Some("1700000000.5".to_owned());
        file.modification_time = Some("1700000001".to_owned());
        let mut dir = LayerEntry::new("Files/Windows", EntryKind::Directory);
        dir.attributes = Some(16);
        let long = format!("Files/{}/deep.txt", "d".repeat(180));
        vec![
            (LayerEntry::new("Files", EntryKind::Directory), vec![]),
            (dir, vec![]),
            (
                LayerEntry::new("Files/Windows/System32", EntryKind::Directory),
                vec![],
            ),
            (file, b"hello".to_vec()),
            (
                LayerEntry::new(
                    "Files/Windows/System32/kernel32.dll:Zone.Identifier",
                    EntryKind::File { size: 3 },
                ),
                b"ads".to_vec(),
            ),
            (
                LayerEntry::new(
                    "Files/hardlink.dll",
                    EntryKind::HardLink {
                        target: "Files/Windows/System32/kernel32.dll".into(),
                    },
                ),
                vec![],
            ),
            (
                LayerEntry::new(
                    "Files/ProgramData",
                    EntryKind::SymbolicLink {
                        target: r"C:\Users\All Users".into(),
                        junction: true,
                    },
                ),
                vec![],
            ),
            (
                LayerEntry::new("Files/removed.txt", EntryKind::Whiteout),
                vec![],
            ),
            (
                LayerEntry::new(long.clone(), EntryKind::File { size: 1 }),
                b"x".to_vec(),
            ),
            (LayerEntry::new("Hives", EntryKind::Directory), vec![]),
            (
                LayerEntry::new("Hives/Software_Delta", EntryKind::File { size: 4 }),
                b"regf".to_vec(),
            ),
        ]
    }

    fn write(entries: &[(LayerEntry, Vec<u8>)]) -> Vec<u8> {
        let mut writer = LayerWriter::new(Vec::new());
        for (entry, data) in entries {
            let mut data = data.as_slice();
            let data: Option<&mut dyn Read> = if matches!(entry.kind, EntryKind::File { .. }) {
                Some(&mut data)
            } else {
                None
            };
            writer.append(entry, data).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read(bytes: &[u8]) -> Vec<(LayerEntry, Vec<u8>)> {
        let mut entries = Vec::new();
        LayerReader
            .read(bytes, |entry, data| {
                let mut content = Vec::new();
                data.read_to_end(&mut content).unwrap();
                entries.push((entry.clone(), content));
                Ok(())
            })
            .unwrap();
        entries
    }

    #[test]
    fn read_write_read_is_identical() {
        let first = write(&sample());
        let entries = read(&first);
        assert_eq!(entries, sample());
        let second = write(&entries);
        assert_eq!(first, second, "writing what was read gives the same bytes");
    }
}

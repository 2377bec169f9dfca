//! Layers end to end on a real disk: codecs, hostile archives, the store's guarantees.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::io::{Read, Write};

use pane_wclayer::entry::{EntryKind, LayerEntry};
use pane_wclayer::{LayerError, LayerReader, LayerStore, LayerWriter};

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = LayerWriter::new(Vec::new());
    writer
        .append(&LayerEntry::new("Files", EntryKind::Directory), None)
        .unwrap();
    for (name, data) in files {
        let mut entry = LayerEntry::new(
            format!("Files/{name}"),
            EntryKind::File {
                size: data.len() as u64,
            },
        );
        entry.attributes = Some(32);
        let mut data = *data;
        writer.append(&entry, Some(&mut data)).unwrap();
    }
    writer.finish().unwrap()
}

fn diff_id(tar: &[u8]) -> String {
    LayerReader.read(tar, |_, _| Ok(())).unwrap().diff_id
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A tar entry written byte by byte, bypassing every library check, as an attacker would.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.as_old_mut().linkflag = [kind];
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn raw_pax(out: &mut Vec<u8>, key: &str, value: &str) {
    let body_len = key.len() + value.len() + 3;
    let mut length = body_len + body_len.to_string().len();
    if length.to_string().len() != body_len.to_string().len() {
        length += 1;
    }
    let record = format!("{length} {key}={value}\n");
    raw_entry(out, "PaxHeader", b'x', "", record.as_bytes());
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn refused(tar: &[u8]) -> LayerError {
    LayerReader
        .read(tar, |_, data| {
            std::io::copy(data, &mut std::io::sink())
                .map(drop)
                .map_err(|e| LayerError::Stream(e.to_string()))
        })
        .unwrap_err()
}

#[test]
fn gzip_and_zstd_layers_unpack_to_the_same_content() {
    let tar = layer(&[
        ("hello.txt", b"hello windows"),
        ("big.bin", &vec![7u8; 300_000]),
    ]);
    let id = diff_id(&tar);
    let zstd = ruzstd::encoding::compress_to_vec(
        tar.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    for (name, bytes) in [("tar", tar.clone()), ("gzip", gzip(&tar)), ("zstd", zstd)] {
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path()).unwrap();
        let summary = store
            .unpack(bytes.as_slice(), &id)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.uncompressed_bytes, tar.len() as u64, "{name}");
        let root = store.path(&id).unwrap();
        assert_eq!(
            std::fs::read(root.join("Files/hello.txt")).unwrap(),
            b"hello windows",
            "{name}"
        );
        assert_eq!(store.metadata(&id).unwrap().entries[1].attributes, Some(32));
    }
}

/// A finished tar of raw entries `(name, type, link, data)`.
fn archive(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, kind, link, data) in entries {
        raw_entry(&mut tar, name, *kind, link, data);
    }
    finish(tar)
}

/// A PAX record for the entry after it, then that entry.
fn with_pax(key: &str, value: &str, name: &str) -> Vec<u8> {
    let mut tar = Vec::new();
    raw_pax(&mut tar, key, value);
    raw_entry(&mut tar, name, b'0', "", b"");
    finish(tar)
}

#[test]
fn hostile_entries_are_refused_by_name() {
    let oversized = "A".repeat(300 << 10);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "absolute",
            archive(&[("/Files/x", b'0', "", b"x")]),
            "/Files/x",
        ),
        (
            "dot-dot",
            archive(&[("Files/../../etc/passwd", b'0', "", b"x")]),
            "Files/../../etc/passwd",
        ),
        (
            "outside the roots",
            archive(&[("etc/passwd", b'0', "", b"x")]),
            "etc/passwd",
        ),
        (
            "device node",
            archive(&[("Files/null", b'3', "", b"")]),
            "Files/null",
        ),
        (
            "hard link outside",
            archive(&[("Files/l", b'1', "../../x", b"")]),
            "Files/l",
        ),
        (
            "hard link across roots",
            archive(&[("Files/l", b'1', "UtilityVM/Files/x", b"")]),
            "Files/l",
        ),
        (
            "hard link to a directory",
            archive(&[
                ("Files/d", b'5', "", b""),
                ("Files/l", b'1', "Files/d", b""),
            ]),
            "Files/l",
        ),
        (
            "symlink escape",
            archive(&[("Files/s", b'2', "../../../etc", b"")]),
            "Files/s",
        ),
        (
            "duplicate",
            archive(&[
                ("Files/A.txt", b'0', "", b"1"),
                ("Files/a.txt", b'0', "", b"2"),
            ]),
            "Files/a.txt",
        ),
        (
            "oversized pax",
            with_pax("MSWINDOWS.rawsd", &oversized, "Files/x"),
            "PaxHeader",
        ),
        (
            "bad rawsd",
            with_pax("MSWINDOWS.rawsd", "!!notbase64", "Files/x"),
            "Files/x",
        ),
    ];
    for (what, tar, path) in cases {
        match refused(&tar) {
            LayerError::Entry { path: named, .. } => assert_eq!(named, path, "{what}"),
            other => panic!("{what}: expected an entry error, got {other}"),
        }
    }
}

/// NTFS refuses control characters and `<>"|?*` in a name, even through `\\?\` paths
/// (Microsoft, "Naming Files, Paths, and Namespaces"): a layer holding one would fail half
/// way through an import on Windows, so it is refused at the entry, wherever the name is.
#[test]
fn names_windows_cannot_hold_are_refused_by_name() {
    let forbidden = (1u8..=31)
        .map(char::from)
        .chain(['<', '>', '"', '|', '?', '*']);
    for c in forbidden {
        let bad = format!("a{c}b");
        let cases = [
            (format!("Files/{bad}"), b'0', String::new(), "a file"),
            (format!("Files/{bad}/x"), b'0', String::new(), "a directory"),
            (format!("Hives/{bad}"), b'0', String::new(), "a hive"),
            (format!("Files/x:{bad}"), b'0', String::new(), "a stream"),
            (
                format!("Files/.wh.{bad}"),
                b'0',
                String::new(),
                "a whiteout",
            ),
            (
                format!("Files/{bad}"),
                b'5',
                String::new(),
                "a directory entry",
            ),
        ];
        for (name, kind, link, what) in cases {
            let tar = archive(&[(&name, kind, &link, b"")]);
            match refused(&tar) {
                LayerError::Entry { path, problem } => {
                    assert_eq!(path, name, "{c:?} in {what}");
                    assert!(problem.contains("Windows"), "{c:?} in {what}: {problem}");
                }
                other => panic!("{c:?} in {what}: expected an entry error, got {other}"),
            }
        }
        // A hard link's target is a path in the layer too; the link entry is named.
        let tar = archive(&[("Files/l", b'1', &format!("Files/{bad}"), b"")]);
        assert!(
            matches!(refused(&tar), LayerError::Entry { path, .. } if path == "Files/l"),
            "{c:?} in a hard link target"
        );
        // So is a name given by a PAX record rather than the header.
        let tar = with_pax("path", &format!("Files/{bad}"), "Files/ok");
        assert!(
            matches!(refused(&tar), LayerError::Entry { path, .. } if path == format!("Files/{bad}")),
            "{c:?} in a PAX path"
        );
    }
    // A stream name cannot hold `:` either, nor be empty.
    for name in ["Files/x:a:b", "Files/x:"] {
        let tar = archive(&[(name, b'0', "", b"")]);
        assert!(
            matches!(refused(&tar), LayerError::Entry { path, .. } if path == name),
            "{name}"
        );
    }
    // What Windows allows in names still passes, symbolic link targets (`\??\` NT paths
    // included) stay text for the container to resolve.
    let fine = archive(&[
        ("Files/a b #$%&'()+,;=@[]^_`{}~.txt", b'0', "", b"1"),
        ("Files/caf\u{e9} \u{4e2d}\u{6587}.txt", b'0', "", b"2"),
        (
            "Files/a b #$%&'()+,;=@[]^_`{}~.txt:Zone.Identifier",
            b'0',
            "",
            b"3",
        ),
        ("Files/nt", b'2', r"\??\C:\Windows", b""),
    ]);
    let summary = LayerReader
        .read(fine.as_slice(), |_, data| {
            std::io::copy(data, &mut std::io::sink())
                .map(drop)
                .map_err(|e| LayerError::Stream(e.to_string()))
        })
        .unwrap();
    assert_eq!(summary.entries, 4);
}

#[test]
fn a_truncated_stream_is_an_error_and_leaves_nothing() {
    let tar = gzip(&layer(&[("big.bin", &vec![1u8; 100_000])]));
    let id = diff_id(&layer(&[("big.bin", &vec![1u8; 100_000])]));
    let dir = tempfile::tempdir().unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    assert!(store.unpack(&tar[..tar.len() / 2], &id).is_err());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial layer is left"
    );
}

#[test]
fn a_wrong_diff_id_leaves_nothing() {
    let tar = layer(&[("a.txt", b"a")]);
    let dir = tempfile::tempdir().unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    assert!(matches!(
        store.unpack(tar.as_slice(), &wrong),
        Err(LayerError::DiffId { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(!store.has(&wrong));
}

#[test]
fn chains_are_topmost_first_and_retain_keeps_what_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    let base = layer(&[("base.txt", b"base")]);
    let top = layer(&[("top.txt", b"top")]);
    let other = layer(&[("other.txt", b"other")]);
    let ids: Vec<String> = [&base, &top, &other].iter().map(|t| diff_id(t)).collect();
    for (tar, id) in [&base, &top, &other].iter().zip(&ids) {
        store.unpack(tar.as_slice(), id).unwrap();
    }
    let chain = store.chain(&ids[..2]).unwrap();
    assert_eq!(
        chain,
        [store.path(&ids[1]).unwrap(), store.path(&ids[0]).unwrap()]
    );
    let removed = store.retain(&ids[..2]).unwrap();
    assert_eq!(removed, [ids[2].clone()]);
    assert!(store.chain(&ids[..2]).is_ok());
    assert!(store.chain(&ids[2..]).is_err());
}

#[test]
fn alternate_streams_whiteouts_and_links_are_kept() {
    let mut writer = LayerWriter::new(Vec::new());
    writer
        .append(&LayerEntry::new("Files", EntryKind::Directory), None)
        .unwrap();
    let file = LayerEntry::new("Files/doc.txt", EntryKind::File { size: 3 });
    writer.append(&file, Some(&mut &b"doc"[..])).unwrap();
    writer
        .append(
            &LayerEntry::new("Files/doc.txt:Zone.Identifier", EntryKind::File { size: 2 }),
            Some(&mut &b"zi"[..]),
        )
        .unwrap();
    writer
        .append(
            &LayerEntry::new(
                "Files/copy.txt",
                EntryKind::HardLink {
                    target: "Files/doc.txt".into(),
                },
            ),
            None,
        )
        .unwrap();
    writer
        .append(
            &LayerEntry::new("Files/gone.txt", EntryKind::Whiteout),
            None,
        )
        .unwrap();
    let tar = writer.finish().unwrap();
    let id = diff_id(&tar);
    let dir = tempfile::tempdir().unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    store.unpack(tar.as_slice(), &id).unwrap();
    let root = store.path(&id).unwrap();
    let mut copy = String::new();
    std::fs::File::open(root.join("Files/copy.txt"))
        .unwrap()
        .read_to_string(&mut copy)
        .unwrap();
    assert_eq!(copy, "doc");
    assert_eq!(
        std::fs::read(root.join("Files/doc.txt:Zone.Identifier")).unwrap(),
        b"zi"
    );
    let metadata = store.metadata(&id).unwrap();
    let whiteout = metadata
        .entries
        .iter()
        .find(|e| e.kind == EntryKind::Whiteout)
        .unwrap();
    assert_eq!(whiteout.path, "Files/gone.txt");
    assert!(!root.join("Files/gone.txt").exists() && !root.join("Files/.wh.gone.txt").exists());
}

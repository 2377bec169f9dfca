//! Names for the temporary file a writer fills before renaming it over its target.
//!
//! The name must be this writer's alone: another process, or a process that crashed earlier
//! with the same process ID (IDs are reused), may have left one behind. So it carries the
//! process ID, the time and a per-process sequence, and the writer creates it exclusively
//! and takes the next name if one is there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Names tried before giving up; a collision needs a leftover with the same process ID,
/// nanosecond and sequence number, so a second try is already the unlikely case.
const ATTEMPTS: u32 = 8;

/// A temporary name beside `target`: `<name>.<pid>.<nanos>.<seq>.tmp`.
fn candidate(target: &Path) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(format!(
        ".{}.{nanos}.{}.tmp",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    target.with_file_name(name)
}

/// How long a rename over a file that is open elsewhere is tried again.
const REPLACE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Renames `temporary` over `target`. Windows refuses to replace a file that another
/// process has open without delete sharing (a reader, a security check, an antivirus
/// scanner) with `ERROR_ACCESS_DENIED` or `ERROR_SHARING_VIOLATION` until it closes it; the
/// rename is tried again for up to two seconds, as Go's `robustio` does on Windows. (Under
/// wine, 1 in about 20 runs of forty concurrent `pane tag` met it with the readers already
/// taking the records' shared lock.) Elsewhere a rename replaces an open file at once.
pub fn replace(temporary: &Path, target: &Path) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + REPLACE_PATIENCE;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match std::fs::rename(temporary, target) {
            Err(e) if cfg!(windows) && held_open(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// `ERROR_ACCESS_DENIED` (5) or `ERROR_SHARING_VIOLATION` (32).
fn held_open(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(5 | 32))
}

/// Creates a new temporary file beside `target`, exclusively (never opening a name that is
/// there, link or not), and returns it with its path.
pub(crate) fn create_beside(target: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    create_with(target, |path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
    })
}

/// As [`create_beside`], with `create` making the file exclusively at the path it is given
/// (for a writer that creates relative to a directory handle).
pub(crate) fn create_with<T>(
    target: &Path,
    create: impl FnMut(&Path) -> std::io::Result<T>,
) -> std::io::Result<(T, PathBuf)> {
    create_named(target, candidate, create)
}

fn create_named<T>(
    target: &Path,
    mut name: impl FnMut(&Path) -> PathBuf,
    mut create: impl FnMut(&Path) -> std::io::Result<T>,
) -> std::io::Result<(T, PathBuf)> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let path = name(target);
        match create(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name was free")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_beside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("images.json");
        let (_, first) = create_beside(&target).unwrap();
        let (_, second) = create_beside(&target).unwrap();
        assert_ne!(first, second);
        assert_eq!(first.parent(), Some(dir.path()));
        let name = first.file_name().unwrap().to_string_lossy().into_owned();
        let pid = format!("images.json.{}.", std::process::id());
        assert!(name.starts_with(&pid), "{name}");
        assert_eq!(first.extension().unwrap(), "tmp");
    }

    #[test]
    fn a_leftover_of_a_crashed_writer_is_stepped_over_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("index.json");
        let leftover = dir.path().join("index.json.7.tmp");
        std::fs::write(&leftover, b"a crashed writer's").unwrap();
        let mut names = [leftover.clone(), dir.path().join("index.json.8.tmp")].into_iter();
        let create = |path: &Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
        };
        let (_, path) = create_named(&target, |_| names.next().unwrap(), create).unwrap();
        assert_eq!(path, dir.path().join("index.json.8.tmp"));
        assert_eq!(std::fs::read(&leftover).unwrap(), b"a crashed writer's");
    }
}

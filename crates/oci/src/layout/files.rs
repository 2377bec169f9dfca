//! Reading a layout's files as hostile input: regular files only, never more than declared.

use std::path::Path;

use super::LayoutError;

/// Opens a file of the layout, refusing anything but a regular file: a link could point
/// anywhere on the host, and a FIFO or a device (`/dev/zero`) never ends.
pub(super) fn open_regular(path: &Path) -> Result<std::fs::File, LayoutError> {
    let read_error = |source| LayoutError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::symlink_metadata(path).map_err(read_error)?;
    let kind = file_kind(metadata.file_type());
    if kind != "file" {
        return Err(LayoutError::NotRegular {
            path: path.to_owned(),
            kind,
        });
    }
    // Opened without following a link or waiting for a writer, so a file swapped in after
    // the check cannot make the open escape or hang; checked again through the handle.
    let file = no_follow_options().open(path).map_err(read_error)?;
    let opened = file.metadata().map_err(read_error)?;
    if !opened.is_file() {
        return Err(LayoutError::NotRegular {
            path: path.to_owned(),
            kind: file_kind(opened.file_type()),
        });
    }
    Ok(file)
}

#[cfg(unix)]
fn no_follow_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits());
    options
}

#[cfg(windows)]
fn no_follow_options() -> std::fs::OpenOptions {
    use std::os::windows::fs::OpenOptionsExt as _;
    /// Opens a reparse point itself instead of what it points to.
    const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    let mut options = std::fs::OpenOptions::new();
    options
        .read(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    options
}

#[cfg(not(any(unix, windows)))]
fn no_follow_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    options
}

pub(super) fn file_kind(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "file"
    } else {
        "a FIFO, socket or device"
    }
}

/// A regular file's bytes, refused when there are more than `limit`.
pub(super) fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, LayoutError> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, limit.saturating_add(1)),
        &mut bytes,
    )
    .map_err(|source| LayoutError::Read {
        path: path.to_owned(),
        source,
    })?;
    if bytes.len() as u64 > limit {
        return Err(LayoutError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

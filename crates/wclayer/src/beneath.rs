//! The walk down a layer path beneath a root that refuses to pass through a link.
//!
//! Windows opens each directory of the walk relative to the one before (`sys::safe_open`);
//! the decisions (which names, in what order, where to stop and what to call the refusal)
//! live here so that they are tested on any host against a double.

use crate::error::LayerError;
use crate::paths::layer_components;

/// What opening one directory of the walk found.
#[derive(Debug)]
pub enum Step<H> {
    /// A real directory, open as `H`.
    Directory(H),
    /// A junction, symbolic link or other reparse point (or the kernel refused to reparse).
    ReparsePoint,
    /// A file where a directory was needed.
    NotADirectory,
}

/// Opens directories one name at a time, each relative to the one before.
pub trait Walker {
    type Handle;
    /// Opens the directory `name` in `parent` (`None`: the root) as itself, never following
    /// a link; `walked` is the layer path up to and including `name`, for errors.
    fn open_directory(
        &self,
        parent: Option<&Self::Handle>,
        name: &str,
        walked: &str,
    ) -> Result<Step<Self::Handle>, LayerError>;
}

/// The refusal of `entry` because the directory `through` on its way is a link.
pub fn refused(entry: &str, through: &str) -> LayerError {
    LayerError::entry(
        entry,
        format!(
            "lies beneath {through:?}, which is a link or junction on disk; a layer is never \
             written or deleted through one"
        ),
    )
}

/// Opens every directory on the way to the layer path `entry` and returns the last one
/// (`None` when `entry` is directly beneath the root) with the entry's own name. Stops at the
/// first directory that is a reparse point, and opens nothing beyond it.
pub fn parent_of<'e, W: Walker>(
    walker: &W,
    entry: &'e str,
) -> Result<(Option<W::Handle>, &'e str), LayerError> {
    let parts = layer_components(entry).map_err(|problem| LayerError::entry(entry, problem))?;
    let Some((last, directories)) = parts.split_last() else {
        return Err(LayerError::entry(entry, "an empty path"));
    };
    let mut current: Option<W::Handle> = None;
    for (index, name) in directories.iter().enumerate() {
        let so_far = parts[..=index].join("/");
        current = match walker.open_directory(current.as_ref(), name, &so_far)? {
            Step::Directory(handle) => Some(handle),
            Step::ReparsePoint => return Err(refused(entry, &so_far)),
            Step::NotADirectory => {
                return Err(LayerError::entry(
                    entry,
                    format!("{so_far:?} on disk is not a directory"),
                ));
            }
        };
    }
    Ok((current, last))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    use super::*;

    /// A walker over a real folder in which a symbolic link stands for a reparse point;
    /// it records every name it is asked to open.
    struct Disk {
        root: PathBuf,
        opened: RefCell<Vec<String>>,
    }

    impl Walker for Disk {
        type Handle = PathBuf;
        fn open_directory(
            &self,
            parent: Option<&PathBuf>,
            name: &str,
            walked: &str,
        ) -> Result<Step<PathBuf>, LayerError> {
            self.opened.borrow_mut().push(walked.to_owned());
            let path = parent.unwrap_or(&self.root).join(name);
            let meta = std::fs::symlink_metadata(&path)
                .map_err(LayerError::io("opening a directory", &path))?;
            Ok(if meta.file_type().is_symlink() {
                Step::ReparsePoint
            } else if meta.is_dir() {
                Step::Directory(path)
            } else {
                Step::NotADirectory
            })
        }
    }

    fn disk(root: &Path) -> Disk {
        Disk {
            root: root.to_owned(),
            opened: RefCell::new(Vec::new()),
        }
    }

    #[cfg(unix)]
    fn planted(temp: &Path) -> (PathBuf, PathBuf) {
        let layer = temp.join("layer");
        let outside = temp.join("outside");
        std::fs::create_dir_all(layer.join("Files/Windows")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        // An earlier entry (or a parent layer) left `Files/Windows/evil` as a link out.
        std::os::unix::fs::symlink(&outside, layer.join("Files/Windows/evil")).unwrap();
        (layer, outside)
    }

    #[test]
    fn a_plain_path_gives_its_parent_and_name() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(temp.path().join("Files/a")).unwrap();
        let walker = disk(temp.path());
        let (parent, name) = parent_of(&walker, "Files/a/b.txt").unwrap();
        assert_eq!(parent, Some(temp.path().join("Files/a")));
        assert_eq!(name, "b.txt");
        assert_eq!(*walker.opened.borrow(), ["Files", "Files/a"]);
        let (parent, name) = parent_of(&walker, "Files").unwrap();
        assert_eq!((parent, name), (None, "Files"));
    }

    #[cfg(unix)]
    #[test]
    fn a_path_through_a_planted_link_is_refused_with_the_entry_named() {
        let temp = tempfile::tempdir().unwrap();
        let (layer, outside) = planted(temp.path());
        let walker = disk(&layer);
        let error = parent_of(&walker, "Files/Windows/evil/System32/pwned.dll").unwrap_err();
        match &error {
            LayerError::Entry { path, problem } => {
                assert_eq!(path, "Files/Windows/evil/System32/pwned.dll");
                assert!(problem.contains("\"Files/Windows/evil\""), "{problem}");
            }
            other => panic!("expected an entry error, got {other:?}"),
        }
        // Nothing past the link was even opened, and the folder it points to is untouched.
        assert_eq!(
            *walker.opened.borrow(),
            ["Files", "Files/Windows", "Files/Windows/evil"]
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn the_link_itself_may_be_the_last_component() {
        // A whiteout of the link, or a later entry replacing it, acts on the link alone.
        let temp = tempfile::tempdir().unwrap();
        let (layer, _) = planted(temp.path());
        let (parent, name) = parent_of(&disk(&layer), "Files/Windows/evil").unwrap();
        assert_eq!(parent, Some(layer.join("Files/Windows")));
        assert_eq!(name, "evil");
    }

    #[test]
    fn a_file_on_the_way_and_bad_names_are_refused_before_anything_is_written() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::create_dir(temp.path().join("Files")).unwrap();
        std::fs::write(temp.path().join("Files/f"), b"x").unwrap();
        let walker = disk(temp.path());
        assert!(matches!(
            parent_of(&walker, "Files/f/x"),
            Err(LayerError::Entry { path, .. }) if path == "Files/f/x"
        ));
        walker.opened.borrow_mut().clear();
        for bad in [
            "Files/../../etc/passwd",
            "Files//x",
            "",
            r"Files\..\x",
            "Files/a:b/c",
        ] {
            assert!(
                matches!(parent_of(&walker, bad), Err(LayerError::Entry { .. })),
                "{bad:?}"
            );
        }
        assert!(walker.opened.borrow().is_empty());
    }
}

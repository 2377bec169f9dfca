//! Path forms the Windows file calls need, as pure string logic so they are tested anywhere.
//!
//! - [`extended_length_form`]: the `\\?\` form of an absolute path. Win32 file calls refuse a
//!   path of `MAX_PATH` (260) characters or more unless it carries that prefix (or the
//!   process is long-path aware *and* the host has `LongPathsEnabled` set, which pane cannot
//!   rely on). Server Core's `WinSxS` paths under a layer folder exceed 260 (`moby#22449`,
//!   `hcsshim#285`; hcsshim's `internal/longpath` prefixes the same way). The prefix also turns
//!   off Win32's normalisation, so the path must already be absolute, use backslashes and
//!   hold no `.` or `..` ("Naming Files, Paths, and Namespaces", Microsoft Learn).
//! - [`layer_components`]: a `/`-separated layer path as the single names that a walk
//!   beneath a root handle opens one at a time (see `sys::safe_open`).

use std::fmt;
#[cfg(windows)]
use std::path::{Path, PathBuf};

/// Why a path has no extended-length form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAbsolute(pub String);

impl fmt::Display for NotAbsolute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an absolute drive or UNC path, so it has no \\\\?\\ form",
            self.0
        )
    }
}

impl std::error::Error for NotAbsolute {}

/// The `\\?\` form of an absolute Windows path: `C:\a\b` → `\\?\C:\a\b`, `\\server\share\a`
/// → `\\?\UNC\server\share\a`. Forward slashes become backslashes, repeated separators and
/// `.` components go, `..` removes the component before it (never the drive or share).
/// A path already in `\\?\` or device (`\\.\`) form is returned as it is: Windows does not
/// normalise those, and neither may we. Relative, drive-relative (`C:a`) and rooted
/// (`\a`) paths are refused; make them absolute first (`std::path::absolute`).
pub fn extended_length_form(path: &str) -> Result<String, NotAbsolute> {
    if path.starts_with(r"\\?\") || path.starts_with(r"\\.\") || path.starts_with(r"\??\") {
        return Ok(path.to_owned());
    }
    let bytes = path.as_bytes();
    let separator = |b: u8| b == b'\\' || b == b'/';
    let (prefix, rest, keep) = if bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && separator(bytes[2])
    {
        // `C:\rest`: nothing of the drive can be removed by `..`.
        (format!(r"\\?\{}", &path[..2]), &path[3..], 0)
    } else if bytes.len() >= 2 && separator(bytes[0]) && separator(bytes[1]) {
        // `\\server\share\rest`: server and share are the root.
        (r"\\?\UNC".to_owned(), &path[2..], 2)
    } else {
        return Err(NotAbsolute(path.to_owned()));
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split(['\\', '/']) {
        match part {
            ".." if parts.len() > keep => {
                parts.pop();
            }
            // Nothing, the current directory, or `..` at the root (where Windows stays).
            "" | "." | ".." => {}
            part => parts.push(part),
        }
    }
    if parts.len() < keep {
        // `\\server` without a share names no file system.
        return Err(NotAbsolute(path.to_owned()));
    }
    let mut out = prefix;
    for part in &parts {
        out.push('\\');
        out.push_str(part);
    }
    if parts.is_empty() {
        // The root of a drive keeps its backslash: `\\?\C:` alone is the volume device.
        out.push('\\');
    }
    Ok(out)
}

/// The `\\?\` form of `path` for a Win32 file call, made absolute first (against the
/// current directory, as Win32 would) when it is not. Every `CreateFileW` in pane goes
/// through this; `std::fs` adds the prefix itself to paths near `MAX_PATH`.
#[cfg(windows)]
pub fn extended_length(path: &Path) -> std::io::Result<PathBuf> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let text = path
        .to_str()
        .ok_or_else(|| invalid(format!("{} is not valid Unicode", path.display())))?;
    if let Ok(long) = extended_length_form(text) {
        return Ok(PathBuf::from(long));
    }
    let absolute = std::path::absolute(path)?;
    let text = absolute
        .to_str()
        .ok_or_else(|| invalid(format!("{} is not valid Unicode", absolute.display())))?;
    extended_length_form(text)
        .map(PathBuf::from)
        .map_err(|e| invalid(e.to_string()))
}

/// The names a layer path (`Files/Windows/System32`) is made of, for opening one at a time.
/// Refused: an empty path or component, `.` and `..` (a walk never goes up), and names
/// holding `\`, `:` or NUL, which would make one "component" several, or a stream.
pub fn layer_components(path: &str) -> Result<Vec<&str>, String> {
    if path.is_empty() {
        return Err("an empty path".to_owned());
    }
    path.split('/')
        .map(|part| match part {
            "" => Err("an empty path component".to_owned()),
            "." | ".." => Err(format!("a {part:?} component")),
            part if part.contains(['\\', ':', '\0']) => {
                Err(format!("the component {part:?} holds \\, : or NUL"))
            }
            part => Ok(part),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_paths_get_the_prefix_and_backslashes() {
        let cases = [
            (r"C:\ProgramData\pane", r"\\?\C:\ProgramData\pane"),
            ("c:/a/b/c.txt", r"\\?\c:\a\b\c.txt"),
            (r"C:\a\\b\.\c\", r"\\?\C:\a\b\c"),
            (r"C:\a\b\..\c", r"\\?\C:\a\c"),
            (r"C:\..\..\a", r"\\?\C:\a"),
            (r"C:\", r"\\?\C:\"),
            (r"C:\a\..", r"\\?\C:\"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                extended_length_form(input).as_deref(),
                Ok(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn unc_paths_become_the_unc_namespace() {
        assert_eq!(
            extended_length_form(r"\\server\share\dir\f").as_deref(),
            Ok(r"\\?\UNC\server\share\dir\f")
        );
        assert_eq!(
            extended_length_form("//server/share/../../x").as_deref(),
            Ok(r"\\?\UNC\server\share\x")
        );
        assert!(extended_length_form(r"\\server").is_err());
    }

    #[test]
    fn verbatim_and_device_paths_are_left_alone() {
        for path in [r"\\?\C:\a\..\b", r"\\?\UNC\s\x", r"\\.\pipe\p", r"\??\C:\a"] {
            assert_eq!(extended_length_form(path).as_deref(), Ok(path));
        }
    }

    #[test]
    fn paths_that_are_not_absolute_are_refused() {
        for path in ["a\\b", "C:a", r"\a\b", "", "."] {
            assert_eq!(
                extended_length_form(path),
                Err(NotAbsolute(path.to_owned())),
                "{path}"
            );
        }
    }

    #[test]
    fn a_path_deeper_than_max_path_keeps_every_component() {
        let deep: Vec<String> = (0..60).map(|i| format!("dir{i:03}")).collect();
        let input = format!(r"C:\layers\{}\f.dll", deep.join("\\"));
        assert!(input.len() > 400);
        let out = extended_length_form(&input).unwrap();
        assert_eq!(out, format!(r"\\?\{input}"));
    }

    #[cfg(windows)]
    #[test]
    fn windows_paths_are_made_absolute_then_extended() {
        let here = std::env::current_dir().unwrap();
        let relative = extended_length(Path::new(r"a\.\b\..\c")).unwrap();
        let expected = extended_length_form(&format!(r"{}\a\c", here.display())).unwrap();
        assert_eq!(relative, PathBuf::from(expected));
        assert!(relative.to_string_lossy().starts_with(r"\\?\"));
        let verbatim = Path::new(r"\\?\C:\x\..\y");
        assert_eq!(extended_length(verbatim).unwrap(), verbatim);
        assert_eq!(
            extended_length(Path::new("C:/x/y")).unwrap(),
            PathBuf::from(r"\\?\C:\x\y")
        );
    }

    #[test]
    fn layer_paths_split_into_single_names() {
        assert_eq!(
            layer_components("Files/Windows/System32"),
            Ok(vec!["Files", "Windows", "System32"])
        );
        assert_eq!(layer_components("Files"), Ok(vec!["Files"]));
        for bad in [
            "",
            "Files//a",
            "Files/",
            "/Files",
            "Files/./a",
            "Files/../x",
            r"Files/a\..\..\x",
            "Files/a:b",
            "Files/a\0",
        ] {
            assert!(layer_components(bad).is_err(), "{bad:?}");
        }
    }
}

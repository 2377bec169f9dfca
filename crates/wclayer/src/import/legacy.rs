//! The legacy import folder: the layout `ImportLayer` (vmcompute) reads for a layer that has
//! parents, as hcsshim's `legacyLayerWriter` writes it.
//!
//! - every directory is a directory plus a sibling `<name>.$wcidirs$` file holding its
//!   attributes (4 bytes, little endian) and backup stream (security, EAs, reparse);
//! - a file under `Files/` holds its attributes (4 bytes) and then its whole backup stream;
//! - a file under `Hives/` holds its data only (the registry deltas are plain files);
//! - the staged files carry the entry's times, which `ImportLayer` copies into the layer.
//!
//! What `ImportLayer` cannot take is kept aside for after it: whiteouts (the importer deletes
//! them from the imported layer, whose `Files` then shows the whole merged tree), hard links
//! (made in the imported layer, to a file of this layer or of a parent), directory times
//! (creating children changes them), and the utility VM's files, which are written straight
//! into the layer over a hard-linked clone of the parent's utility VM.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backup::{self, BasicInfo};
use crate::error::LayerError;
use crate::import::{FileRecord, ImportSink, disk_path};
use crate::reader::LayerSummary;

/// The suffix of a directory's metadata file.
pub const DIRECTORY_SUFFIX: &str = ".$wcidirs$";

/// Where a pending hard link's target lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkRoot {
    /// In the layer being imported (added earlier, or cloned from the parent's utility VM).
    ThisLayer,
    /// Not in this layer: in one of the parents, found by [`StagedLayer::resolve_links`].
    Parents,
    /// In the parent at this index of the parents given (topmost first).
    Parent(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    pub path: String,
    pub target: String,
    pub root: LinkRoot,
}

/// A utility VM entry staged for writing into the imported layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedEntry {
    pub path: String,
    pub info: BasicInfo,
    /// The file holding its attributes and backup stream, as in the import folder.
    pub stream: PathBuf,
}

/// What staging produced and what remains to do once `ImportLayer` has run.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedLayer {
    /// The folder to hand to `ImportLayer`.
    pub import_root: PathBuf,
    pub tombstones: Vec<String>,
    pub links: Vec<PendingLink>,
    /// Every directory added, parents before children, with the times to put back.
    pub directories: Vec<(String, BasicInfo)>,
    /// The layer carries utility VM changes: the parent's utility VM is cloned first.
    pub has_utility_vm: bool,
    pub utility_vm_entries: Vec<StagedEntry>,
    pub utility_vm_removals: Vec<String>,
    /// The sum of the files' data sizes.
    pub size: u64,
}

/// `staged.json` in a staging folder: written last, so its presence means staging finished.
pub const STAGED_RECORD: &str = "staged.json";

impl StagedLayer {
    /// Finds every link target not in this layer among `parents` (topmost first; the first
    /// that has it wins, as the merged view shows it). A utility VM target is looked up in
    /// the topmost parent, whose utility VM is cloned into this layer.
    pub fn resolve_links(&mut self, parents: &[PathBuf]) -> Result<(), LayerError> {
        let exists =
            |root: &Path, target: &str| fs::symlink_metadata(disk_path(root, target)).is_ok();
        for link in &mut self.links {
            if link.root != LinkRoot::Parents {
                continue;
            }
            let found = if under(&link.target, "UtilityVM/Files") {
                parents
                    .first()
                    .filter(|p| self.has_utility_vm && exists(p, &link.target))
                    .map(|_| LinkRoot::ThisLayer)
            } else {
                parents
                    .iter()
                    .position(|p| exists(p, &link.target))
                    .map(LinkRoot::Parent)
            };
            link.root = found.ok_or_else(|| {
                LayerError::entry(
                    &link.path,
                    format!(
                        "hard link to {:?}, which neither this layer nor a parent holds",
                        link.target
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// Records the staging in `staging/staged.json` (atomically: temporary name, rename).
    pub fn save(&self, staging: &Path) -> Result<(), LayerError> {
        let path = staging.join(STAGED_RECORD);
        let temporary = staging.join("staged.json.tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| LayerError::Stream(e.to_string()))?;
        fs::write(&temporary, bytes).map_err(write_failed(&temporary))?;
        fs::rename(&temporary, &path).map_err(write_failed(&path))
    }

    /// A finished staging, or `None` when `staging` holds none (or an unfinished one).
    pub fn load(staging: &Path) -> Option<Self> {
        let bytes = fs::read(staging.join(STAGED_RECORD)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Stages `input` under `staging` (which must not exist) and checks its diff ID; on any
/// failure the staging folder is removed.
pub fn stage_layer(
    input: impl Read,
    diff_id: &str,
    staging: &Path,
) -> Result<(LayerSummary, StagedLayer), LayerError> {
    let result = (|| {
        let mut folder = LegacyImportFolder::create(staging)?;
        let summary = crate::import::import_stream(input, &mut folder)?;
        let staged = folder.finish()?;
        summary.verify(diff_id)?;
        staged.save(staging)?;
        Ok((summary, staged))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(staging);
    }
    result
}

struct OpenFile {
    file: File,
    path: PathBuf,
    info: BasicInfo,
    /// `Hives/` files take only their data.
    data_only: bool,
}

/// An [`ImportSink`] writing the legacy import folder under `staging`.
pub struct LegacyImportFolder {
    staged: StagedLayer,
    utility_vm_root: PathBuf,
    current: Option<OpenFile>,
    /// Stream headers not yet written to the open file (joined with the data's first write).
    pending: Vec<u8>,
    /// One copy buffer for every file: layers hold tens of thousands of small files.
    buffer: Vec<u8>,
    added: HashSet<String>,
    /// Directories that are reparse points: nothing may be placed beneath them.
    reparse_directories: Vec<String>,
}

impl std::fmt::Debug for LegacyImportFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyImportFolder")
            .field("import_root", &self.staged.import_root)
            .finish_non_exhaustive()
    }
}

fn under(path: &str, prefix: &str) -> bool {
    path.len() > prefix.len() && path.starts_with(prefix) && path.as_bytes()[prefix.len()] == b'/'
}

fn write_failed(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    LayerError::io("writing the import folder", path)
}

impl LegacyImportFolder {
    /// `staging` must not exist yet. Staging needs no parent layers (so layers can be staged
    /// as they download, in any order); links into them are resolved when imported.
    pub fn create(staging: &Path) -> Result<Self, LayerError> {
        let import_root = staging.join("import");
        let utility_vm_root = staging.join("utilityvm");
        fs::create_dir(staging).map_err(write_failed(staging))?;
        fs::create_dir(&import_root).map_err(write_failed(&import_root))?;
        fs::create_dir(&utility_vm_root).map_err(write_failed(&utility_vm_root))?;
        Ok(Self {
            staged: StagedLayer {
                import_root,
                ..StagedLayer::default()
            },
            utility_vm_root,
            current: None,
            pending: Vec::new(),
            buffer: vec![0; 256 << 10],
            added: HashSet::new(),
            reparse_directories: Vec::new(),
        })
    }

    /// Closes the last file and returns what the Windows side applies after `ImportLayer`.
    pub fn finish(mut self) -> Result<StagedLayer, LayerError> {
        self.close_current()?;
        Ok(self.staged)
    }

    fn close_current(&mut self) -> Result<(), LayerError> {
        self.flush_pending()?;
        let Some(open) = self.current.take() else {
            return Ok(());
        };
        set_times(&open.file, &open.info).map_err(write_failed(&open.path))?;
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<(), LayerError> {
        if let Some(open) = self.current.as_mut()
            && !self.pending.is_empty()
        {
            open.file
                .write_all(&self.pending)
                .map_err(write_failed(&open.path))?;
        }
        self.pending.clear();
        Ok(())
    }

    fn open(&mut self, path: PathBuf, info: BasicInfo, data_only: bool) -> Result<(), LayerError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(write_failed(&path))?;
        self.current = Some(OpenFile {
            file,
            path,
            info,
            data_only,
        });
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), LayerError> {
        if self.current.is_none() {
            return Err(LayerError::Stream(
                "data arrived with no file open in the import folder".into(),
            ));
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn copy(&mut self, size: u64, data: &mut dyn Read) -> Result<(), LayerError> {
        let Some(open) = self.current.as_mut() else {
            return Err(LayerError::Stream(
                "data arrived with no file open in the import folder".into(),
            ));
        };
        let mut left = size;
        while left > 0 {
            let want =
                usize::try_from(left).map_or(self.buffer.len(), |l| l.min(self.buffer.len()));
            let n = match data.read(&mut self.buffer[..want]) {
                Ok(0) => {
                    return Err(LayerError::Stream(format!(
                        "{} ended after {} of {size} bytes",
                        open.path.display(),
                        size - left
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::Stream(e.to_string())),
            };
            // Headers and the first data go out in one write: most files are small.
            if self.pending.is_empty() {
                open.file.write_all(&self.buffer[..n])
            } else {
                self.pending.extend_from_slice(&self.buffer[..n]);
                let result = open.file.write_all(&self.pending);
                self.pending.clear();
                result
            }
            .map_err(write_failed(&open.path))?;
            left -= n as u64;
        }
        Ok(())
    }

    fn check_not_under_reparse_point(&self, path: &str) -> Result<(), LayerError> {
        let lower = path.to_lowercase();
        match self.reparse_directories.iter().find(|d| under(&lower, d)) {
            Some(dir) => Err(LayerError::entry(
                path,
                format!("lies beneath {dir:?}, which is a link or junction in this layer"),
            )),
            None => Ok(()),
        }
    }

    fn add_utility_vm(&mut self, file: &FileRecord) -> Result<(), LayerError> {
        if !self.staged.has_utility_vm {
            return Err(LayerError::entry(
                &file.path,
                "comes before the layer's UtilityVM directory entry",
            ));
        }
        if file.path != "UtilityVM/Files" && !under(&file.path, "UtilityVM/Files") {
            return Err(LayerError::entry(
                &file.path,
                "only UtilityVM/Files may be changed by a layer",
            ));
        }
        let stream = self
            .utility_vm_root
            .join(format!("{:08}", self.staged.utility_vm_entries.len()));
        self.open(stream.clone(), file.info, false)?;
        self.write(&file.info.attributes.to_le_bytes())?;
        self.write(&file.metadata)?;
        self.staged.utility_vm_entries.push(StagedEntry {
            path: file.path.clone(),
            info: file.info,
            stream,
        });
        Ok(())
    }
}

impl ImportSink for LegacyImportFolder {
    fn add(&mut self, file: &FileRecord) -> Result<(), LayerError> {
        self.close_current()?;
        self.check_not_under_reparse_point(&file.path)?;
        self.added.insert(file.path.to_lowercase());
        if file.is_directory() {
            self.staged.directories.push((file.path.clone(), file.info));
            if file.reparse_point {
                self.reparse_directories.push(file.path.to_lowercase());
            }
        }
        if file.path == "UtilityVM" {
            self.staged.has_utility_vm = true;
            return Ok(());
        }
        if under(&file.path, "UtilityVM") {
            return self.add_utility_vm(file);
        }
        let target = disk_path(&self.staged.import_root, &file.path);
        if target.parent().is_some_and(|p| !p.is_dir()) {
            return Err(LayerError::entry(
                &file.path,
                "comes before an entry for its directory",
            ));
        }
        let hive = under(&file.path, "Hives");
        let stream_file = if file.is_directory() {
            fs::create_dir(&target).map_err(write_failed(&target))?;
            let mut name = target.into_os_string();
            name.push(DIRECTORY_SUFFIX);
            PathBuf::from(name)
        } else {
            target
        };
        self.open(stream_file, file.info, hive)?;
        if !hive {
            self.write(&file.info.attributes.to_le_bytes())?;
            self.write(&file.metadata)?;
        }
        Ok(())
    }

    fn data(&mut self, size: u64, data: &mut dyn Read) -> Result<(), LayerError> {
        self.staged.size += size;
        let data_only = self.current.as_ref().is_some_and(|c| c.data_only);
        if !data_only {
            self.write(&backup::stream_header(backup::STREAM_DATA, size, ""))?;
        }
        self.copy(size, data)
    }

    fn alternate_stream(
        &mut self,
        name: &str,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), LayerError> {
        if self.current.as_ref().is_some_and(|c| c.data_only) {
            return Err(LayerError::Stream(format!(
                "registry hive files cannot carry alternate data streams ({name})"
            )));
        }
        self.write(&backup::stream_header(
            backup::STREAM_ALTERNATE_DATA,
            size,
            name,
        ))?;
        self.copy(size, data)
    }

    fn add_link(&mut self, path: &str, target: &str) -> Result<(), LayerError> {
        self.close_current()?;
        self.check_not_under_reparse_point(path)?;
        let allowed = (under(path, "Files") && under(target, "Files"))
            || (under(path, "UtilityVM/Files") && under(target, "UtilityVM/Files"));
        if !allowed {
            return Err(LayerError::entry(
                path,
                format!("a hard link to {target:?} across layer roots"),
            ));
        }
        let root = if self.added.contains(&target.to_lowercase()) {
            LinkRoot::ThisLayer
        } else {
            LinkRoot::Parents
        };
        self.staged.links.push(PendingLink {
            path: path.to_owned(),
            target: target.to_owned(),
            root,
        });
        self.added.insert(path.to_lowercase());
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), LayerError> {
        self.close_current()?;
        // Deleting through a junction this layer made would delete outside the layer; a
        // junction from a parent layer is refused when the whiteout is applied (`safe_open`).
        self.check_not_under_reparse_point(path)?;
        if under(path, "Files") {
            self.staged.tombstones.push(path.to_owned());
        } else if under(path, "UtilityVM/Files") {
            self.staged.has_utility_vm = true;
            self.staged.utility_vm_removals.push(path.to_owned());
        } else {
            return Err(LayerError::entry(
                path,
                "a whiteout outside Files/ and UtilityVM/Files/",
            ));
        }
        Ok(())
    }
}

/// Puts the entry's times on a staged file; `ImportLayer` takes them from there.
fn set_times(file: &File, info: &BasicInfo) -> io::Result<()> {
    let Some(modified) = system_time(info.last_write_time) else {
        return Ok(());
    };
    let times = fs::FileTimes::new()
        .set_modified(modified)
        .set_accessed(system_time(info.last_access_time).unwrap_or(modified));
    #[cfg(windows)]
    let times = {
        use std::os::windows::fs::FileTimesExt as _;
        times.set_created(system_time(info.creation_time).unwrap_or(modified))
    };
    file.set_times(times)
}

/// A FILETIME as a `SystemTime`; 0 (no time recorded) is `None`.
fn system_time(filetime: i64) -> Option<std::time::SystemTime> {
    use std::time::{Duration, UNIX_EPOCH};
    const UNIX_AS_FILETIME: i64 = 116_444_736_000_000_000;
    if filetime == 0 {
        return None;
    }
    let ticks = filetime - UNIX_AS_FILETIME;
    let magnitude = Duration::from_nanos(ticks.unsigned_abs().saturating_mul(100));
    if ticks >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

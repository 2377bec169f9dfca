//! Writing an image as an OCI image layout, into an empty directory or an existing layout,
//! without ever writing through a link that is already there.

use std::path::Path;

use sha2::Digest as _;

use super::files::{file_kind, open_regular, read_regular};
use super::{LayoutError, MAX_DOCUMENT_SIZE, REF_NAME};
use crate::store::{ContentStore, ImageRecord};

/// Writes `record`'s image (its platform manifest, config and layers) from `store` as an OCI
/// image layout in `dir`, tagged with the record's reference. A layout already in `dir`
/// keeps its other images: the index gains this one (replacing an entry of the same name),
/// blobs already there are kept when they are the same blob and refused otherwise. Nothing
/// is written through a link: each file is created exclusively, and each directory must be
/// a directory of its own.
pub async fn export(
    store: &ContentStore,
    record: &ImageRecord,
    dir: &Path,
) -> Result<(), LayoutError> {
    let blobs = dir.join("blobs/sha256");
    for folder in [dir.to_owned(), dir.join("blobs"), blobs.clone()] {
        real_directory(&folder)?;
    }
    let existing_index = match std::fs::symlink_metadata(dir.join("index.json")) {
        Ok(_) => Some(read_regular(&dir.join("index.json"), MAX_DOCUMENT_SIZE)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(LayoutError::Read {
                path: dir.join("index.json"),
                source,
            });
        }
    };
    let manifest_bytes = store.read_blob(&record.manifest).await?;
    for digest in std::iter::once(&record.manifest)
        .chain(std::iter::once(&record.config))
        .chain(&record.layers)
    {
        let source = store.blob_path(digest)?;
        let target = blobs.join(digest.trim_start_matches("sha256:"));
        copy_blob(&source, &target, digest).await?;
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).map_err(|source| LayoutError::Invalid {
            what: "image manifest",
            path: dir.to_owned(),
            source,
        })?;
    let media_type = manifest
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or("application/vnd.oci.image.manifest.v1+json");
    let mut descriptor = serde_json::json!({
        "mediaType": media_type,
        "digest": record.manifest,
        "size": manifest_bytes.len(),
        "annotations": { REF_NAME: record.reference },
    });
    if let Some(version) = &record.os_version {
        descriptor["platform"] =
            serde_json::json!({"os": "windows", "architecture": "amd64", "os.version": version});
    }
    let index = merged_index(
        dir,
        existing_index.as_deref(),
        descriptor,
        &record.reference,
    )?;
    let layout_marker = dir.join("oci-layout");
    match std::fs::symlink_metadata(&layout_marker) {
        Ok(_) => {
            read_regular(&layout_marker, 4096)?;
        }
        Err(_) => write_new(&layout_marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?,
    }
    let bytes = serde_json::to_vec_pretty(&index).map_err(|source| LayoutError::Invalid {
        what: "index.json",
        path: dir.join("index.json"),
        source,
    })?;
    replace_file(&dir.join("index.json"), &bytes)
}

/// The layout's index with `descriptor` in it, in place of any entry of the same name.
fn merged_index(
    dir: &Path,
    existing: Option<&[u8]>,
    descriptor: serde_json::Value,
    reference: &str,
) -> Result<serde_json::Value, LayoutError> {
    let path = dir.join("index.json");
    let mut index = match existing {
        Some(bytes) => serde_json::from_slice::<serde_json::Value>(bytes).map_err(|source| {
            LayoutError::Invalid {
                what: "index.json",
                path: path.clone(),
                source,
            }
        })?,
        None => serde_json::json!({"schemaVersion": 2, "manifests": []}),
    };
    let Some(manifests) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
        return Err(LayoutError::Obstructed {
            path,
            problem: "it is not an image index (no `manifests` list); save into an empty \
                      directory or a layout"
                .to_owned(),
        });
    };
    manifests.retain(|entry| {
        entry
            .pointer("/annotations/org.opencontainers.image.ref.name")
            .and_then(|n| n.as_str())
            != Some(reference)
    });
    manifests.push(descriptor);
    Ok(index)
}

/// Creates `path` as a directory, or checks that it is one (not a link to one).
fn real_directory(path: &Path) -> Result<(), LayoutError> {
    match std::fs::create_dir(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(LayoutError::Read {
                path: path.to_owned(),
                source,
            });
        }
    }
    let metadata = std::fs::symlink_metadata(path).map_err(|source| LayoutError::Read {
        path: path.to_owned(),
        source,
    })?;
    if metadata.is_dir() {
        Ok(())
    } else {
        Err(LayoutError::Obstructed {
            path: path.to_owned(),
            problem: format!(
                "it is {}, not a directory; pane does not write through links",
                file_kind(metadata.file_type())
            ),
        })
    }
}

/// Copies a store blob into the layout: created exclusively (an existing name, link or
/// not, is never opened for writing); a blob already there must be that blob.
async fn copy_blob(source: &Path, target: &Path, digest: &str) -> Result<(), LayoutError> {
    let write_error = |source| LayoutError::Read {
        path: target.to_owned(),
        source,
    };
    match tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .await
    {
        Ok(mut file) => {
            let mut input = tokio::fs::File::open(source)
                .await
                .map_err(|source_error| LayoutError::Read {
                    path: source.to_owned(),
                    source: source_error,
                })?;
            tokio::io::copy(&mut input, &mut file)
                .await
                .map_err(write_error)?;
            file.sync_all().await.map_err(write_error)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut existing = std::io::BufReader::new(open_regular(target)?);
            let mut hasher = sha2::Sha256::new();
            loop {
                let chunk = std::io::BufRead::fill_buf(&mut existing).map_err(write_error)?;
                if chunk.is_empty() {
                    break;
                }
                hasher.update(chunk);
                let consumed = chunk.len();
                std::io::BufRead::consume(&mut existing, consumed);
            }
            let actual = format!("sha256:{}", crate::digest::hex(&hasher.finalize()));
            if actual == digest {
                Ok(())
            } else {
                Err(LayoutError::Obstructed {
                    path: target.to_owned(),
                    problem: format!("it holds {actual}, not the blob named {digest}"),
                })
            }
        }
        Err(e) => Err(write_error(e)),
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()
    };
    write().map_err(|source| LayoutError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes a new file beside `path` exclusively and renames it over `path` (a rename replaces
/// a link itself, never what it points to).
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let failed = |source| LayoutError::Read {
        path: path.to_owned(),
        source,
    };
    let (mut file, temporary) = crate::temp_name::create_beside(path).map_err(failed)?;
    let mut write = || -> std::io::Result<()> {
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        failed(source)
    })
}

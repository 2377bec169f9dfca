//! Writing an image as an OCI image layout, into an empty directory or an existing layout,
//! without ever writing through a link that is already there.

use std::path::Path;

use sha2::Digest as _;

use super::target_dir::TargetDir;
use super::{LayoutError, MAX_DOCUMENT_SIZE, REF_NAME};
use crate::store::{ContentStore, ImageRecord};

/// Writes `record`'s image (its platform manifest, config and layers) from `store` as an OCI
/// image layout in `dir`, tagged with the record's reference. A layout already in `dir`
/// keeps its other images: the index gains this one (replacing an entry of the same name),
/// blobs already there are kept when they are the same blob and refused otherwise. Nothing
/// is written through a link: each file is created exclusively, and each directory must be
/// a directory of its own, held open while it is written (see [`TargetDir`]).
pub async fn export(
    store: &ContentStore,
    record: &ImageRecord,
    dir: &Path,
) -> Result<(), LayoutError> {
    let root = TargetDir::open_root(dir)?;
    let blobs = root.subdir("blobs")?.subdir("sha256")?;
    let existing_index = read_existing(&root, "index.json", MAX_DOCUMENT_SIZE)?;
    let manifest_bytes = store.read_blob(&record.manifest).await?;
    for digest in std::iter::once(&record.manifest)
        .chain(std::iter::once(&record.config))
        .chain(&record.layers)
    {
        let source = store.blob_path(digest)?;
        copy_blob(&source, &blobs, digest).await?;
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
    if read_existing(&root, "oci-layout", 4096)?.is_none() {
        write_new(&root, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let bytes = serde_json::to_vec_pretty(&index).map_err(|source| LayoutError::Invalid {
        what: "index.json",
        path: dir.join("index.json"),
        source,
    })?;
    replace_file(&root, "index.json", &bytes)
}

/// The bytes of the regular file `name` in `dir`, if there is one, refused past `limit`.
fn read_existing(dir: &TargetDir, name: &str, limit: u64) -> Result<Option<Vec<u8>>, LayoutError> {
    let Some(file) = dir.open_regular(name)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, limit.saturating_add(1)),
        &mut bytes,
    )
    .map_err(|source| LayoutError::Read {
        path: dir.path_of(name),
        source,
    })?;
    if bytes.len() as u64 > limit {
        return Err(LayoutError::TooLarge {
            path: dir.path_of(name),
            limit,
        });
    }
    Ok(Some(bytes))
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

/// Copies a store blob into the layout's `blobs/sha256`: created exclusively (an existing
/// name, link or not, is never opened for writing); a blob already there must be that blob.
async fn copy_blob(source: &Path, blobs: &TargetDir, digest: &str) -> Result<(), LayoutError> {
    let name = digest.trim_start_matches("sha256:");
    let target = blobs.path_of(name);
    let write_error = |source| LayoutError::Read {
        path: target.clone(),
        source,
    };
    match blobs.create_new(name.as_ref()) {
        Ok(file) => {
            let mut file = tokio::fs::File::from_std(file);
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
            let existing = blobs
                .open_regular(name)?
                .ok_or_else(|| LayoutError::Obstructed {
                    path: target.clone(),
                    problem: "it vanished while pane was writing the layout".to_owned(),
                })?;
            // The length first: a (sparse) file of any size placed there must not keep pane
            // hashing it.
            let wanted = std::fs::metadata(source)
                .map(|m| m.len())
                .map_err(write_error)?;
            let found = existing.metadata().map(|m| m.len()).map_err(write_error)?;
            if found != wanted {
                return Err(LayoutError::Obstructed {
                    path: target.clone(),
                    problem: format!(
                        "it has {found} bytes, not the {wanted} of the blob named {digest}"
                    ),
                });
            }
            let mut existing = std::io::BufReader::new(existing);
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
                    path: target.clone(),
                    problem: format!("it holds {actual}, not the blob named {digest}"),
                })
            }
        }
        Err(e) => Err(write_error(e)),
    }
}

fn write_new(dir: &TargetDir, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
    let write = || -> std::io::Result<()> {
        let mut file = dir.create_new(name.as_ref())?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()
    };
    write().map_err(|source| LayoutError::Read {
        path: dir.path_of(name),
        source,
    })
}

/// Writes a new file beside `name` exclusively and renames it over `name` (a rename replaces
/// a link itself, never what it points to).
fn replace_file(dir: &TargetDir, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
    let failed = |source| LayoutError::Read {
        path: dir.path_of(name),
        source,
    };
    let (mut file, temporary) = crate::temp_name::create_with(Path::new(name), |candidate| {
        dir.create_new(candidate.as_os_str())
    })
    .map_err(failed)?;
    let mut write = || -> std::io::Result<()> {
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        dir.rename(temporary.as_os_str(), name)
    };
    write().map_err(|source| {
        dir.remove(temporary.as_os_str());
        failed(source)
    })
}

//! Reading an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`), with every
//! blob checked against its digest and size, and writing one.
//!
//! A layout is hostile input as much as a registry is (containerd's CVE-2023-25153 was an
//! unbounded read of one): every file read must be a regular file, not a link or a FIFO,
//! and is read up to its declared size plus one byte. Writing never follows a link already
//! in the target and merges into an index that is there instead of replacing it.

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use pane_spec::OsVersion;

use crate::digest::sha256_digest;
use crate::document::{DocumentKind, check_manifest_blobs, classify};
use crate::image::ImageFacts;
use crate::platform::{PlatformCandidate, PlatformError, parse_index, select_platform};
use crate::store::{ContentStore, ImageRecord};

mod export;
mod files;
mod target_dir;

pub use export::export;
use files::{open_regular, read_regular};

/// Manifests, indexes and configs are small; anything larger is not one.
const MAX_DOCUMENT_SIZE: u64 = 4 << 20;
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "{path} is not an OCI image layout (no oci-layout file); create one with `pane image save` or skopeo"
    )]
    NotALayout { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} in {path} is not valid: {source}")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("blob {digest} does not match its descriptor: {problem}")]
    Corrupt { digest: String, problem: String },
    #[error("the layout has no image tagged {tag:?}; it has: {available}")]
    NoSuchTag { tag: String, available: String },
    #[error("the layout holds {count} images; name one with a tag")]
    Ambiguous { count: usize },
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the image config lists {diff_ids} diff ids for {layers} layers")]
    LayerMismatch { diff_ids: usize, layers: usize },
    #[error("{path} is not a regular file ({kind}); a layout holds only plain files")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path} is larger than the {limit} bytes it may have")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{what} {digest} is not usable: {problem}")]
    Refused {
        what: &'static str,
        digest: String,
        problem: String,
    },
    #[error(
        "the layout names its image {name:?}, which is not a full image reference; load it \
         with --as REPOSITORY:TAG"
    )]
    UnnamedImage { name: String },
    #[error("{path} is in the way: {problem}")]
    Obstructed { path: PathBuf, problem: String },
}

/// An image loaded from a layout.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub record: ImageRecord,
    /// The manifest the reference named before, when loading gave it another image.
    pub replaced: Option<String>,
}

/// The reference a layout's `org.opencontainers.image.ref.name` gives an entry, parsed and
/// normalised. A bare tag (which OCI allows) names no repository, and is not guessed at.
fn layout_reference(entry: &Descriptor) -> Result<String, LayoutError> {
    let Some(name) = entry.annotations().as_ref().and_then(|a| a.get(REF_NAME)) else {
        return Ok(entry.digest().to_string());
    };
    let unnamed = || LayoutError::UnnamedImage {
        name: name.chars().take(200).collect(),
    };
    if !name.contains(['/', ':']) {
        return Err(unnamed());
    }
    name.parse::<pane_spec::ImageReference>()
        .map(|reference| reference.to_string())
        .map_err(|_| unnamed())
}

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    pub fn open(root: &Path) -> Result<Self, LayoutError> {
        if !root.join("oci-layout").is_file() {
            return Err(LayoutError::NotALayout {
                path: root.to_owned(),
            });
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Resolves the image tagged `tag` (or the only one) for a Windows host of
    /// `architecture` and build `host`.
    pub fn resolve(
        &self,
        tag: Option<&str>,
        architecture: &str,
        host: Option<&OsVersion>,
    ) -> Result<ImageFacts, LayoutError> {
        let index = self.top_index()?;
        self.resolve_entry(pick_tagged(index.manifests(), tag)?, architecture, host)
    }

    /// The layout's `index.json`, read once per call that needs it.
    fn top_index(&self) -> Result<ImageIndex, LayoutError> {
        let index_path = self.root.join("index.json");
        parse(
            "index.json",
            &index_path,
            &read_regular(&index_path, MAX_DOCUMENT_SIZE)?,
        )
    }

    /// The facts of one entry of `index.json`.
    fn resolve_entry(
        &self,
        entry: &Descriptor,
        architecture: &str,
        host: Option<&OsVersion>,
    ) -> Result<ImageFacts, LayoutError> {
        let reference = entry
            .annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned()
            .unwrap_or_else(|| entry.digest().to_string());
        let (manifest_descriptor, platform_note) = match entry.media_type() {
            MediaType::ImageIndex => {
                let (path, bytes) = self.verified_blob("image index", entry)?;
                classify(
                    &bytes,
                    &[entry.media_type().as_ref()],
                    Some(DocumentKind::Index),
                )
                .map_err(|problem| LayoutError::Refused {
                    what: "image index",
                    digest: entry.digest().to_string(),
                    problem,
                })?;
                let nested: ImageIndex = parse("image index", &path, &bytes)?;
                let entries = parse_index(&bytes).map_err(|source| LayoutError::Invalid {
                    what: "image index",
                    path: path.clone(),
                    source,
                })?;
                let candidates: Vec<PlatformCandidate> =
                    entries.into_iter().map(|e| e.platform).collect();
                let choice = select_platform(&candidates, architecture, host)?;
                (nested.manifests()[choice.index].clone(), choice.note)
            }
            _ => (entry.clone(), None),
        };
        let manifest: ImageManifest = self.document("image manifest", &manifest_descriptor)?;
        let refused = |problem: String| LayoutError::Refused {
            what: "image manifest",
            digest: manifest_descriptor.digest().to_string(),
            problem,
        };
        check_manifest_blobs(&manifest).map_err(refused)?;
        let config: ImageConfiguration = self.document("image config", manifest.config())?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(LayoutError::LayerMismatch {
                diff_ids: diff_ids.len(),
                layers: manifest.layers().len(),
            });
        }
        Ok(ImageFacts::from_documents(
            reference,
            manifest_descriptor.digest().to_string(),
            &manifest,
            &config,
            platform_note,
        ))
    }

    /// Copies the image tagged `tag` (or the only one) into `store` as `reference`, choosing
    /// the platform for the host like a pull does. Every blob is verified on the way in.
    pub async fn import(
        &self,
        store: &ContentStore,
        tag: Option<&str>,
        reference: Option<&str>,
        architecture: &str,
        host: Option<&OsVersion>,
    ) -> Result<LoadedImage, LayoutError> {
        // One read of index.json: the entry resolved is the entry imported, even if the
        // layout changes meanwhile.
        let top = self.top_index()?;
        let entry = pick_tagged(top.manifests(), tag)?;
        let facts = self.resolve_entry(entry, architecture, host)?;
        let name = match reference {
            Some(reference) => reference.to_owned(),
            None => layout_reference(entry)?,
        };
        let index = matches!(entry.media_type(), MediaType::ImageIndex).then(|| entry.clone());
        let manifest_descriptor = self.manifest_descriptor(entry, &facts.manifest_digest)?;
        let manifest: ImageManifest = self.document("image manifest", &manifest_descriptor)?;
        let mut blobs: Vec<(String, u64)> = index
            .iter()
            .map(|d| (d.digest().to_string(), d.size()))
            .collect();
        blobs.push((
            manifest_descriptor.digest().to_string(),
            manifest_descriptor.size(),
        ));
        blobs.push((
            manifest.config().digest().to_string(),
            manifest.config().size(),
        ));
        blobs.extend(
            manifest
                .layers()
                .iter()
                .map(|l| (l.digest().to_string(), l.size())),
        );
        let lease = store.lease().await?;
        if let Err(e) = self.copy_blobs(store, &blobs, &lease).await {
            // A refused load leaves the store as it was, as a refused pull does.
            if let Err(release) = store.release(lease).await {
                tracing::warn!(error = %release, "a failed load's blobs could not be removed; `pane image prune` removes them");
            }
            return Err(e);
        }
        let record = ImageRecord {
            reference: name,
            manifest: facts.manifest_digest.clone(),
            index: index.map(|d| d.digest().to_string()),
            config: manifest.config().digest().to_string(),
            layers: manifest
                .layers()
                .iter()
                .map(|l| l.digest().to_string())
                .collect(),
            os_version: facts.os_version.clone(),
        };
        let replaced = store
            .add_image(record.clone())
            .await?
            .filter(|previous| previous.manifest != record.manifest)
            .map(|previous| previous.manifest);
        drop(lease);
        Ok(LoadedImage { record, replaced })
    }

    /// Copies `blobs` into `store` under `lease`, noting the ones it stored itself.
    async fn copy_blobs(
        &self,
        store: &ContentStore,
        blobs: &[(String, u64)],
        lease: &crate::store::Lease,
    ) -> Result<(), LayoutError> {
        for (digest, size) in blobs {
            let path = self
                .root
                .join("blobs")
                .join("sha256")
                .join(digest.trim_start_matches("sha256:"));
            let file = open_regular(&path)?;
            lease.protect(digest).await?;
            if store.put_opened(digest, file, *size).await? {
                lease.stored(digest);
            }
        }
        Ok(())
    }

    /// The platform manifest's descriptor: the entry itself, or its index's entry.
    fn manifest_descriptor(
        &self,
        entry: &Descriptor,
        digest: &str,
    ) -> Result<Descriptor, LayoutError> {
        if !matches!(entry.media_type(), MediaType::ImageIndex) {
            return Ok(entry.clone());
        }
        let nested: ImageIndex = self.document("image index", entry)?;
        nested
            .manifests()
            .iter()
            .find(|d| d.digest().to_string() == digest)
            .cloned()
            .ok_or_else(|| LayoutError::Corrupt {
                digest: digest.to_owned(),
                problem: "not in its index".to_owned(),
            })
    }

    fn blob_path(&self, descriptor: &Descriptor) -> PathBuf {
        let digest = descriptor.digest();
        self.root
            .join("blobs")
            .join(digest.algorithm().to_string())
            .join(digest.digest())
    }

    /// Reads a JSON blob, checking size and digest before parsing it.
    fn document<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        descriptor: &Descriptor,
    ) -> Result<T, LayoutError> {
        let (path, bytes) = self.verified_blob(what, descriptor)?;
        let expected = match what {
            "image index" => Some(DocumentKind::Index),
            "image manifest" => Some(DocumentKind::Manifest),
            _ => None,
        };
        if let Some(expected) = expected {
            classify(&bytes, &[descriptor.media_type().as_ref()], Some(expected)).map_err(
                |problem| LayoutError::Refused {
                    what,
                    digest: descriptor.digest().to_string(),
                    problem,
                },
            )?;
        }
        parse(what, &path, &bytes)
    }

    fn verified_blob(
        &self,
        what: &'static str,
        descriptor: &Descriptor,
    ) -> Result<(PathBuf, Vec<u8>), LayoutError> {
        let digest = descriptor.digest().to_string();
        if descriptor.size() > MAX_DOCUMENT_SIZE {
            return Err(LayoutError::Corrupt {
                digest,
                problem: format!(
                    "a {what} of {} bytes is implausibly large",
                    descriptor.size()
                ),
            });
        }
        let path = self.blob_path(descriptor);
        let bytes = read_regular(&path, descriptor.size())?;
        if bytes.len() as u64 != descriptor.size() {
            return Err(LayoutError::Corrupt {
                digest,
                problem: format!(
                    "{} bytes on disk, {} in the descriptor",
                    bytes.len(),
                    descriptor.size()
                ),
            });
        }
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(LayoutError::Corrupt {
                digest,
                problem: format!("the content hashes to {actual}"),
            });
        }
        Ok((path, bytes))
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<T, LayoutError> {
    serde_json::from_slice(bytes).map_err(|source| LayoutError::Invalid {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The index entry whose ref-name annotation is `tag` (or ends with `:tag`), or the only one.
fn pick_tagged<'a>(
    entries: &'a [Descriptor],
    tag: Option<&str>,
) -> Result<&'a Descriptor, LayoutError> {
    let name = |d: &Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned()
    };
    match tag {
        Some(tag) => entries
            .iter()
            .find(|d| name(d).is_some_and(|n| n == tag || n.ends_with(&format!(":{tag}"))))
            .ok_or_else(|| LayoutError::NoSuchTag {
                tag: tag.to_owned(),
                // Names come from the layout: shown escaped, never with raw control codes.
                available: entries
                    .iter()
                    .filter_map(name)
                    .map(|n| printable(&n))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        None => match entries {
            [only] => Ok(only),
            _ => Err(LayoutError::Ambiguous {
                count: entries.len(),
            }),
        },
    }
}

/// `text` with control characters escaped, for names read from a layout.
fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.escape_debug().to_string()
    } else {
        text.to_owned()
    }
}

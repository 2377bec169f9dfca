//! What the runtime needs to know about an image.

use serde::Serialize;

/// A resolved image: the manifest chosen for this host and what its config says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageFacts {
    pub reference: String,
    pub manifest_digest: String,
    pub os: String,
    pub architecture: String,
    /// The Windows build the image was made for (`os.version`).
    pub os_version: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries, in order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// Bottom (base) layer first, as the manifest lists them.
    pub layers: Vec<LayerFacts>,
    /// How the platform was chosen, when there was a choice to explain.
    pub platform_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerFacts {
    /// The compressed blob's digest.
    pub digest: String,
    /// The uncompressed tar's digest, from the config's `rootfs.diff_ids`.
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
}

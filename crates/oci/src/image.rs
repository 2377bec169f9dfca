//! What the runtime needs to know about an image.

use oci_spec::image::{ImageConfiguration, ImageManifest};
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

impl ImageFacts {
    /// The facts of a manifest and its config. Layers pair with `rootfs.diff_ids` in order;
    /// the caller checks that the counts match.
    pub fn from_documents(
        reference: String,
        manifest_digest: String,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
        platform_note: Option<String>,
    ) -> Self {
        let process = config.config().as_ref();
        let layers = manifest
            .layers()
            .iter()
            .zip(config.rootfs().diff_ids())
            .map(|(layer, diff_id)| LayerFacts {
                digest: layer.digest().to_string(),
                diff_id: diff_id.clone(),
                size: layer.size(),
                media_type: layer.media_type().to_string(),
            })
            .collect();
        Self {
            reference,
            manifest_digest,
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            os_version: config.os_version().clone(),
            entrypoint: process
                .and_then(|c| c.entrypoint().clone())
                .unwrap_or_default(),
            cmd: process.and_then(|c| c.cmd().clone()).unwrap_or_default(),
            env: process.and_then(|c| c.env().clone()).unwrap_or_default(),
            working_dir: process
                .and_then(|c| c.working_dir().clone())
                .filter(|w| !w.is_empty()),
            user: process
                .and_then(|c| c.user().clone())
                .filter(|u| !u.is_empty()),
            layers,
            platform_note,
        }
    }
}

//! What kind of document a blob is, decided so that it cannot be two things at once.
//!
//! CVE-2021-41190: a document with both an index's `manifests` and a manifest's `config` and
//! `layers` was read as an index by one client and as a manifest by another, so one digest
//! named two images. As containers/image does since, a document must have the fields of
//! exactly one kind, its own `mediaType` (when present) must be of that kind, and so must the
//! media type it was served or described with. Configs and layers must carry the media
//! types of image configs and image layers, not of some other artifact.

use std::fmt;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

const LAYER_TYPES: [&str; 10] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Index,
    Manifest,
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DocumentKind::Index => "image index",
            DocumentKind::Manifest => "image manifest",
        })
    }
}

impl DocumentKind {
    /// The kind a manifest media type names, if it names one.
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        match essence(media_type) {
            OCI_INDEX | DOCKER_MANIFEST_LIST => Some(DocumentKind::Index),
            OCI_MANIFEST | DOCKER_MANIFEST => Some(DocumentKind::Manifest),
            _ => None,
        }
    }
}

/// The media type without parameters (`; charset=utf-8`) or surrounding space.
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or_default().trim()
}

/// The kind of `bytes`, refusing a document that could be read as either, or whose own
/// `mediaType` or any of `declared` (the descriptor's media type, the response's
/// Content-Type) names another kind. `expected` is the kind the referrer needs.
pub fn classify(
    bytes: &[u8],
    declared: &[&str],
    expected: Option<DocumentKind>,
) -> Result<DocumentKind, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("it is not JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "it is not a JSON object".to_owned())?;
    let index_fields = object.contains_key("manifests");
    let manifest_fields = object.contains_key("config") || object.contains_key("layers");
    let kind = match (index_fields, manifest_fields) {
        (true, true) => {
            return Err(
                "it has both an index's `manifests` and a manifest's `config`/`layers`, \
                 so it could be read as two different images (CVE-2021-41190)"
                    .to_owned(),
            );
        }
        (true, false) => DocumentKind::Index,
        (false, true) => DocumentKind::Manifest,
        (false, false) => {
            return Err("it has neither `manifests` nor `config`/`layers`".to_owned());
        }
    };
    if let Some(own) = object.get("mediaType") {
        let own = own
            .as_str()
            .ok_or_else(|| "its `mediaType` is not a string".to_owned())?;
        match DocumentKind::of_media_type(own) {
            Some(named) if named == kind => {}
            _ => {
                return Err(format!(
                    "its fields are an {kind}'s, but its mediaType is {own:?}"
                ));
            }
        }
        for other in declared
            .iter()
            .map(|d| essence(d))
            .filter(|d| !d.is_empty())
        {
            if DocumentKind::of_media_type(other).is_some() && other != essence(own) {
                return Err(format!(
                    "its mediaType is {own:?}, but it was served or described as {other:?}"
                ));
            }
        }
    }
    for other in declared.iter().map(|d| essence(d)) {
        if let Some(named) = DocumentKind::of_media_type(other)
            && named != kind
        {
            return Err(format!(
                "it is an {kind}, but it was served or described as {other:?}"
            ));
        }
    }
    if let Some(expected) = expected
        && expected != kind
    {
        return Err(format!("an {expected} was expected, and it is an {kind}"));
    }
    Ok(kind)
}

/// Refuses a manifest whose config or layers carry another artifact's media types.
pub fn check_manifest_blobs(manifest: &oci_spec::image::ImageManifest) -> Result<(), String> {
    check_config_type(manifest.config().media_type().as_ref())?;
    for layer in manifest.layers() {
        check_layer_type(layer.media_type().as_ref(), layer.digest().as_ref())?;
    }
    Ok(())
}

/// Refuses a config descriptor whose media type is not an image config's.
pub fn check_config_type(media_type: &str) -> Result<(), String> {
    if CONFIG_TYPES.contains(&essence(media_type)) {
        Ok(())
    } else {
        Err(format!(
            "its config has media type {media_type:?}, not an image config's ({})",
            CONFIG_TYPES.join(" or ")
        ))
    }
}

/// Refuses a layer descriptor whose media type is not an image layer's.
pub fn check_layer_type(media_type: &str, digest: &str) -> Result<(), String> {
    if LAYER_TYPES.contains(&essence(media_type)) {
        Ok(())
    } else {
        Err(format!(
            "layer {digest} has media type {media_type:?}, which is not an image layer's"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_of_both_kinds_is_refused() {
        let both = br#"{"schemaVersion":2,"manifests":[],"config":{},"layers":[]}"#;
        let error = classify(both, &[], None).unwrap_err();
        assert!(error.contains("CVE-2021-41190"), "{error}");
    }

    #[test]
    fn media_types_must_agree_with_the_fields() {
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        assert_eq!(
            classify(manifest, &[OCI_MANIFEST], Some(DocumentKind::Manifest)),
            Ok(DocumentKind::Manifest)
        );
        assert!(classify(manifest, &[OCI_INDEX], None).is_err());
        assert!(classify(manifest, &[DOCKER_MANIFEST], None).is_err());
        assert!(classify(manifest, &[], Some(DocumentKind::Index)).is_err());
        let lying = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","layers":[]}"#;
        assert!(classify(lying, &[], None).is_err());
        // A plain-JSON Content-Type names no kind and is not a disagreement.
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            classify(index, &["application/json; charset=utf-8"], None),
            Ok(DocumentKind::Index)
        );
    }

    #[test]
    fn configs_and_layers_must_be_image_types() {
        assert!(check_config_type("application/vnd.oci.image.config.v1+json").is_ok());
        assert!(check_config_type("application/vnd.cncf.helm.config.v1+json").is_err());
        assert!(check_layer_type(LAYER_TYPES[1], "sha256:x").is_ok());
        assert!(check_layer_type("application/octet-stream", "sha256:x").is_err());
    }
}

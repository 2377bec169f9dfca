//! Pulls from registries that lie, stall, flood and phish, each scripted by the test: every
//! one must end in a clear error, with nothing left in the store and no secret sent where it
//! does not belong.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

#[path = "support/hostile.rs"]
mod hostile;

use std::path::Path;
use std::time::Duration;

use hostile::{Hostile, Image, OCI_INDEX, OCI_MANIFEST, Reply, Request};
use pane_oci::ContentStore;
use pane_oci::credentials::{CredentialSource, Credentials, EnvironmentCredentials};
use pane_oci::pull::{PullError, PullOptions, Puller, Quiet};
use pane_oci::registry::{RegistryClient, RegistryError, RegistryOptions};
use pane_spec::ImageReference;

fn client(credentials: CredentialSource) -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        credentials,
        attempts: 2,
        first_backoff: Duration::from_millis(10),
        read_timeout: Duration::from_secs(2),
        ..RegistryOptions::default()
    })
    .unwrap()
}

fn no_credentials() -> CredentialSource {
    CredentialSource::default()
}

fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}

async fn pull(
    registry: &Hostile,
    credentials: CredentialSource,
    root: &Path,
) -> Result<pane_oci::ImageRecord, PullError> {
    pull_with(registry, credentials, root, &PullOptions::default(), &Quiet).await
}

async fn pull_with(
    registry: &Hostile,
    credentials: CredentialSource,
    root: &Path,
    options: &PullOptions,
    observer: &dyn pane_oci::pull::PullObserver,
) -> Result<pane_oci::ImageRecord, PullError> {
    let store = ContentStore::open(root).unwrap();
    let reference: ImageReference = format!("{}/windows/app:v1", registry.host())
        .parse()
        .unwrap();
    Puller::new(client(credentials), store)
        .pull(&reference, options, observer)
        .await
}

/// The error of an anonymous pull from `registry`, which must end on its own within a
/// minute (a hostile registry must not hold it for longer).
async fn refused_within_a_minute(registry: &Hostile, root: &Path) -> PullError {
    tokio::time::timeout(
        Duration::from_secs(60),
        pull(registry, no_credentials(), root),
    )
    .await
    .expect("the pull ends on its own")
    .unwrap_err()
}

/// Partial downloads in the store's ingest folder.
fn partials(root: &Path) -> usize {
    std::fs::read_dir(root.join("ingest"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".partial")
        })
        .count()
}

/// No blob, partial or record is left in the store.
fn assert_store_empty(root: &Path) {
    let blobs = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!((blobs, partials(root)), (0, 0), "the store keeps nothing");
    let store = ContentStore::open(root).unwrap();
    assert!(store.images().unwrap().is_empty());
}

/// A registry that demands Basic credentials for everything but `/v2/`'s probe, and
/// records what it was sent.
fn demanding_basic(image: Image) -> impl Fn(&Request) -> Reply + Send + Sync {
    move |request| {
        if request.header("authorization").is_none() {
            return Reply::status(401).with_header("WWW-Authenticate", r#"Basic realm="test""#);
        }
        image.reply("windows/app", request)
    }
}

fn authorizations(registry: &Hostile) -> Vec<String> {
    registry
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn environment_credentials_go_only_to_the_registry_they_are_bound_to() {
    let image = Image::new(vec![1; 100], 100);
    let registry = Hostile::start(demanding_basic(image)).await;
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = CredentialSource {
        environment: Some(EnvironmentCredentials {
            registry: Some("registry.example.com".into()),
            credentials: basic("bot", "s3cret"),
        }),
        ..CredentialSource::default()
    };
    let error = pull(&registry, elsewhere, dir.path()).await.unwrap_err();
    assert!(authorizations(&registry).is_empty(), "no credentials sent");
    let message = error.to_string();
    assert!(
        message.contains("bound to registry.example.com"),
        "{message}"
    );

    let unbound = CredentialSource {
        environment: Some(EnvironmentCredentials {
            registry: None,
            credentials: basic("bot", "s3cret"),
        }),
        ..CredentialSource::default()
    };
    let error = pull(&registry, unbound, dir.path()).await.unwrap_err();
    assert!(authorizations(&registry).is_empty(), "no credentials sent");
    assert!(
        error
            .to_string()
            .contains(&format!("PANE_REGISTRY={}", registry.host())),
        "{error}"
    );

    let bound = CredentialSource {
        environment: Some(EnvironmentCredentials {
            registry: Some(registry.host()),
            credentials: basic("bot", "s3cret"),
        }),
        ..CredentialSource::default()
    };
    pull(&registry, bound, dir.path()).await.unwrap();
    assert!(!authorizations(&registry).is_empty());
}

#[tokio::test]
async fn a_challenge_from_a_redirect_target_is_not_answered() {
    let image = Image::new(vec![2; 100], 100);
    let harvester = Hostile::start(|_: &Request| {
        Reply::status(401).with_header("WWW-Authenticate", r#"Basic realm="storage""#)
    })
    .await;
    let layer_digest = image.layer_digest.clone();
    let target = format!("http://{}/storage/layer", harvester.host());
    let registry = Hostile::start(move |request: &Request| {
        if request.path.ends_with(&layer_digest) {
            Reply::status(307).with_header("Location", &target)
        } else {
            image.reply("windows/app", request)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let inline = CredentialSource {
        inline: Some(basic("bot", "s3cret")),
        ..CredentialSource::default()
    };
    let error = pull(&registry, inline, dir.path()).await.unwrap_err();
    assert!(
        matches!(
            &error,
            PullError::Registry(RegistryError::ForeignChallenge { .. })
        ),
        "{error}"
    );
    assert!(
        authorizations(&harvester).is_empty(),
        "the redirect target never receives the registry's credentials"
    );
    assert_eq!(harvester.requests().len(), 1, "and is not asked twice");
}

#[tokio::test]
async fn an_endless_manifest_is_cut_at_four_mebibytes() {
    let registry = Hostile::start(|request: &Request| {
        if request.path == "/v2/" {
            return Reply::status(200);
        }
        Reply::Endless {
            status: 200,
            headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            PullError::Registry(RegistryError::TooLarge { limit, .. }) if *limit == 4 << 20
        ),
        "{error}"
    );
    assert_store_empty(dir.path());
}

#[tokio::test]
async fn a_declared_oversized_manifest_is_refused_before_reading() {
    let registry = Hostile::start(|_: &Request| Reply::Full {
        status: 200,
        headers: vec![
            ("Content-Type".into(), OCI_MANIFEST.into()),
            ("Content-Length".into(), "1099511627776".into()),
        ],
        body: Vec::new(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("larger than"), "{error}");
}

#[tokio::test]
async fn an_endless_layer_stops_at_its_declared_size_and_leaves_nothing() {
    let image = Image::new(vec![3; 10 << 10], 10 << 10);
    let registry = Hostile::start(image.clone().answering_layer_with(Reply::Endless {
        status: 200,
        headers: Vec::new(),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let progress = MostBytes::default();
    let error = pull_with(
        &registry,
        no_credentials(),
        dir.path(),
        &PullOptions::default(),
        &progress,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, PullError::Oversized { size, .. } if *size == 10 << 10),
        "{error}"
    );
    assert!(
        progress.most() <= 10 << 10,
        "{} bytes were taken for a 10 KiB layer",
        progress.most()
    );
    assert_eq!(partials(dir.path()), 0, "the refused download is discarded");
    // The manifest and config it had stored are gone with it.
    assert_store_empty(dir.path());
}

/// The most bytes any layer's download reached.
#[derive(Default)]
struct MostBytes(std::sync::atomic::AtomicU64);

impl MostBytes {
    fn most(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl pane_oci::pull::PullObserver for MostBytes {
    fn layer(&self, event: pane_oci::pull::LayerEvent) {
        if let pane_oci::pull::LayerEvent::Progress { bytes, .. } = event {
            self.0.fetch_max(bytes, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn a_config_longer_than_its_descriptor_is_refused() {
    let image = Image::new(vec![4; 100], 100);
    let config_digest = image.config_digest.clone();
    // Well under the 4 MiB document cap, but longer than the descriptor's size.
    let mut padded = image.config.clone();
    padded.extend_from_slice(&[b' '; 1000]);
    let registry = Hostile::start(move |request: &Request| {
        if request.path.ends_with(&config_digest) {
            Reply::ok("application/octet-stream", padded.clone())
        } else {
            image.reply("windows/app", request)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            PullError::Registry(RegistryError::TooLarge {
                what: "image config",
                ..
            })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_registry_that_never_answers_times_out() {
    let registry = Hostile::start(|_: &Request| Reply::Silent).await;
    let dir = tempfile::tempdir().unwrap();
    let error = refused_within_a_minute(&registry, dir.path()).await;
    assert!(
        matches!(&error, PullError::Registry(RegistryError::Timeout { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("--registry-timeout"), "{error}");
}

#[tokio::test]
async fn a_layer_that_stalls_mid_body_times_out_without_resuming_forever() {
    let image = Image::new(vec![5; 100], 100);
    let registry = Hostile::start(image.clone().answering_layer_with(Reply::Silent)).await;
    let dir = tempfile::tempdir().unwrap();
    let error = refused_within_a_minute(&registry, dir.path()).await;
    assert!(error.to_string().contains("no answer"), "{error}");
}

#[tokio::test]
async fn an_endless_token_response_is_cut() {
    let token_service = Hostile::start(|_: &Request| Reply::Endless {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
    })
    .await;
    let realm = format!("http://{}/token", token_service.host());
    let registry = Hostile::start(move |_: &Request| {
        Reply::status(401).with_header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{realm}",service="test""#),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            PullError::Registry(RegistryError::TooLarge {
                what: "token response",
                ..
            })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_in_part() {
    let registry = Hostile::start(|_: &Request| Reply::Endless {
        status: 400,
        headers: Vec::new(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Within a minute: the error body is not read to its (missing) end.
    let error = refused_within_a_minute(&registry, dir.path()).await;
    assert!(
        matches!(&error, PullError::Registry(RegistryError::Http { .. })),
        "{error}"
    );
}

#[tokio::test]
async fn a_document_that_is_both_index_and_manifest_is_refused() {
    let image = Image::new(vec![6; 100], 100);
    let both = image.edited_manifest(|m| m["manifests"] = serde_json::json!([]));
    let registry = Hostile::start(image.serving_manifest(OCI_MANIFEST, both)).await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("CVE-2021-41190"), "{error}");
    assert_store_empty(dir.path());
}

#[tokio::test]
async fn a_manifest_served_as_an_index_is_refused() {
    let image = Image::new(vec![7; 100], 100);
    let manifest = image.manifest.clone();
    let registry = Hostile::start(image.serving_manifest(OCI_INDEX, manifest)).await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(&error, PullError::BadManifest { .. }), "{error}");
}

#[tokio::test]
async fn a_config_of_another_artifact_type_is_refused() {
    let image = Image::new(vec![8; 100], 100);
    let manifest = image.edited_manifest(|m| {
        m["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json".into();
    });
    let registry = Hostile::start(image.serving_manifest(OCI_MANIFEST, manifest)).await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("helm"), "{error}");
}

/// Pulls tag v1 from a registry whose v1 is an index with one Windows entry naming
/// `digest`; the pull must refuse the digest. Returns the registry, for its requests.
async fn pull_index_entry_naming(digest: &str) -> Hostile {
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": 10,
            "platform": {"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.1"}
        }]
    }))
    .unwrap();
    let registry = Hostile::start(move |request: &Request| {
        if request.path.contains("/manifests/v1") {
            Reply::ok(OCI_INDEX, index.clone())
        } else {
            Reply::status(404)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PullError::Registry(RegistryError::BadDigest { .. })),
        "{error}"
    );
    registry
}

#[tokio::test]
async fn an_index_entry_digest_is_checked_before_it_reaches_a_url() {
    let registry = pull_index_entry_naming("sha256:../../../v2/other/manifests/x").await;
    assert!(
        registry.requests().iter().all(|r| !r.path.contains("..")),
        "no request carries the hostile digest"
    );
}

#[tokio::test]
async fn an_index_entry_digest_that_looks_like_a_tag_is_refused() {
    let registry = pull_index_entry_naming("v2").await;
    let manifests: Vec<String> = registry
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.contains("/manifests/"))
        .collect();
    assert_eq!(manifests, ["/v2/windows/app/manifests/v1"]);
}

#[tokio::test]
async fn a_foreign_layer_url_over_plain_http_is_refused() {
    let image = Image::new(vec![9; 100], 100);
    let manifest = image.edited_manifest(|m| {
        m["layers"][0]["mediaType"] =
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
        m["layers"][0]["urls"] = serde_json::json!(["http://127.0.0.1:9/layer"]);
    });
    let registry = Hostile::start(image.serving_manifest(OCI_MANIFEST, manifest)).await;
    let dir = tempfile::tempdir().unwrap();
    let options = PullOptions {
        allow_foreign_layers: true,
        ..PullOptions::default()
    };
    let error = pull_with(&registry, no_credentials(), dir.path(), &options, &Quiet)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("HTTPS only"), "{error}");
}

#[tokio::test]
async fn the_client_never_shows_its_tokens() {
    let token_service = Hostile::start(|_: &Request| {
        Reply::ok(
            "application/json",
            br#"{"token":"TOKEN-SECRET-123"}"#.to_vec(),
        )
    })
    .await;
    let image = Image::new(vec![10; 100], 100);
    let realm = format!("http://{}/token", token_service.host());
    let registry = Hostile::start(move |request: &Request| {
        if request.header("authorization") == Some("Bearer TOKEN-SECRET-123") {
            image.reply("windows/app", request)
        } else {
            Reply::status(401).with_header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="test""#),
            )
        }
    })
    .await;
    let client = client(no_credentials());
    client
        .manifest(&registry.host(), "windows/app", "v1")
        .await
        .unwrap();
    let shown = format!("{client:?}");
    assert!(!shown.contains("TOKEN-SECRET-123"), "{shown}");
    assert!(shown.contains("windows/app"), "{shown}");
}

/// The requests `registry` saw for `digest`.
fn blob_requests(registry: &Hostile, digest: &str) -> Vec<Request> {
    registry
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(digest))
        .collect()
}

#[tokio::test]
async fn a_registry_answering_416_to_the_whole_blob_is_refused_at_once() {
    let image = Image::new(vec![6; 100], 100);
    let registry = Hostile::start(image.clone().answering_layer_with(Reply::status(416))).await;
    let dir = tempfile::tempdir().unwrap();
    let digest = image.layer_digest.clone();
    let error = refused_within_a_minute(&registry, dir.path()).await;
    assert!(error.to_string().contains("416"), "{error}");
    assert_eq!(blob_requests(&registry, &digest).len(), 1);
    assert_store_empty(dir.path());
}

/// A layer whose first answer breaks off half-way, and whose range answers come from
/// `resume`.
async fn interrupted_layer(
    resume: impl Fn(&Image) -> Reply + Send + Sync + 'static,
) -> (Hostile, Image) {
    let image = Image::new((0..100).collect(), 100);
    let served = image.clone();
    let registry = Hostile::start(move |request: &Request| {
        if !request.path.ends_with(&served.layer_digest) {
            return served.reply("windows/app", request);
        }
        if request.header("range").is_some() {
            return resume(&served);
        }
        Reply::Full {
            status: 200,
            headers: vec![("Content-Length".into(), "100".into())],
            body: served.layer[..50].to_vec(),
        }
    })
    .await;
    (registry, image)
}

#[tokio::test]
async fn a_resumed_range_that_starts_elsewhere_is_refused() {
    let (registry, image) = interrupted_layer(|image| Reply::Full {
        status: 206,
        headers: vec![("Content-Range".into(), "bytes 10-59/100".into())],
        body: image.layer[10..60].to_vec(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("asked for the bytes from 50"),
        "{error}"
    );
    assert_eq!(blob_requests(&registry, &image.layer_digest).len(), 2);
    assert_store_empty(dir.path());
}

#[tokio::test]
async fn a_resumed_range_is_appended_where_it_starts() {
    let (registry, image) = interrupted_layer(|image| Reply::Full {
        status: 206,
        headers: vec![("Content-Range".into(), "bytes 50-99/100".into())],
        body: image.layer[50..].to_vec(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let record = pull(&registry, no_credentials(), dir.path()).await.unwrap();
    assert_eq!(record.layers, vec![image.layer_digest.clone()]);
    let ranges: Vec<String> = blob_requests(&registry, &image.layer_digest)
        .iter()
        .filter_map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, ["bytes=50-"]);
}

#[tokio::test]
async fn a_blob_answer_without_content_is_refused_not_retried() {
    let image = Image::new(vec![7; 100], 100);
    let registry = Hostile::start(image.clone().answering_layer_with(Reply::status(204))).await;
    let dir = tempfile::tempdir().unwrap();
    let digest = image.layer_digest.clone();
    let error = pull(&registry, no_credentials(), dir.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("204"), "{error}");
    assert_eq!(blob_requests(&registry, &digest).len(), 1);
}

#[tokio::test]
async fn a_layer_trickled_just_inside_the_read_timeout_is_cut_off() {
    let image = Image::new(vec![b'0'; 100 << 10], 100 << 10);
    let registry = Hostile::start(image.clone().answering_layer_with(
        // Each byte well inside the 2 s read timeout, the whole layer in 6 hours.
        Reply::Trickle {
            length: 100 << 10,
            every: Duration::from_millis(200),
        },
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let error = refused_within_a_minute(&registry, dir.path()).await;
    assert!(
        matches!(&error, PullError::Registry(RegistryError::TooSlow { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("--registry-timeout"), "{error}");
    assert_store_empty(dir.path());
}

#[tokio::test]
async fn a_pull_in_progress_leases_its_layers_by_diff_id_and_chain_id() {
    let diff_id = hostile::sha256(b"the layer's uncompressed tar");
    let image = Image::new(vec![8; 100], 100).with_diff_id(&diff_id);
    let registry = Hostile::start(image.clone().answering_layer_with(Reply::Silent)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let pull = {
        let registry_host = registry.host();
        let root = dir.path().to_owned();
        tokio::spawn(async move {
            let reference: ImageReference =
                format!("{registry_host}/windows/app:v1").parse().unwrap();
            Puller::new(client(no_credentials()), ContentStore::open(&root).unwrap())
                .pull(&reference, &PullOptions::default(), &Quiet)
                .await
        })
    };
    // Once the layer is being fetched, a layer prune must see its layers as leased.
    let fetched = image.layer_digest.clone();
    while blob_requests(&registry, &fetched).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = store.hold_leases().await.unwrap();
    let chain = pane_oci::digest::chain_ids(std::slice::from_ref(&diff_id));
    assert!(held.digests().contains(&diff_id), "{:?}", held.digests());
    assert!(held.digests().contains(&chain[0]));
    drop(held);
    assert!(pull.await.unwrap().is_err(), "the stalled layer times out");
}

#[tokio::test]
async fn a_config_descriptor_naming_a_stored_blob_of_another_size_is_refused_unread() {
    // A first image puts a blob in the store; a second one names that blob as its config,
    // declaring 2 bytes, as a hostile manifest could name a GiB base layer.
    let first = Image::new(vec![b'x'; 4096], 4096);
    let stored = first.layer_digest.clone();
    let second = first.edited_manifest(|manifest| {
        manifest["config"]["digest"] = serde_json::json!(stored);
        manifest["config"]["size"] = serde_json::json!(2);
    });
    let registry = Hostile::start({
        let first = first.clone();
        move |request: &Request| {
            if request.path.ends_with("/manifests/v2") {
                Reply::ok(OCI_MANIFEST, second.clone())
            } else {
                first.reply("windows/app", request)
            }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    pull(&registry, no_credentials(), dir.path()).await.unwrap();
    let reference: ImageReference = format!("{}/windows/app:v2", registry.host())
        .parse()
        .unwrap();
    let error = Puller::new(
        client(no_credentials()),
        ContentStore::open(dir.path()).unwrap(),
    )
    .pull(&reference, &PullOptions::default(), &Quiet)
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("declares 2 bytes, the stored blob has 4096"),
        "{error}"
    );
}

#[tokio::test]
async fn a_planted_partial_that_fails_verification_is_downloaded_again_from_the_start() {
    let image = Image::new((0..100).collect(), 100);
    let served = image.clone();
    // An honest registry that resumes ranges.
    let registry = Hostile::start(move |request: &Request| {
        let from = request
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
        match from {
            Some(from) if request.path.ends_with(&served.layer_digest) => Reply::Full {
                status: 206,
                headers: vec![("Content-Range".into(), format!("bytes {from}-99/100"))],
                body: served.layer[from..].to_vec(),
            },
            _ => served.reply("windows/app", request),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // What a hostile registry's interrupted download of the same digest left behind.
    ContentStore::open(dir.path()).unwrap();
    let hex = image.layer_digest.trim_start_matches("sha256:");
    std::fs::write(
        dir.path().join("ingest").join(format!("{hex}.partial")),
        [0xEE; 99],
    )
    .unwrap();
    let record = pull(&registry, no_credentials(), dir.path()).await.unwrap();
    assert_eq!(record.layers, std::slice::from_ref(&image.layer_digest));
    let ranges: Vec<Option<String>> = blob_requests(&registry, &image.layer_digest)
        .iter()
        .map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, [Some("bytes=99-".to_owned()), None]);
}

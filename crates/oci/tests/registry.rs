//! Pulling from a real registry (Debian's `docker-registry`, started per test), through a
//! proxy that drops connections, corrupts bytes and fails with 500s.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::time::Duration;

use pane_oci::credentials::{CredentialSource, Credentials};
use pane_oci::pull::{PullError, PullOptions, Puller, Quiet};
use pane_oci::registry::{RegistryClient, RegistryError, RegistryOptions};
use pane_oci::store::{ContentStore, StoreError};
use pane_spec::ImageReference;
use support::{Fault, Proxy, Registry, build_image, push, windows_layer};

const LTSC2022: &str = "10.0.20348.2700";
const LTSC2025: &str = "10.0.26100.1742";

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift: incompressible enough that gzip keeps the layer large.
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn options(credentials: Option<Credentials>) -> RegistryOptions {
    RegistryOptions {
        credentials: CredentialSource {
            inline: credentials,
            docker_config: None,
            environment: None,
        },
        first_backoff: Duration::from_millis(10),
        ..RegistryOptions::default()
    }
}

fn puller(store: &ContentStore, credentials: Option<Credentials>) -> Puller {
    Puller::new(
        RegistryClient::new(options(credentials)).unwrap(),
        store.clone(),
    )
}

fn pull_options(host_build: &str) -> PullOptions {
    PullOptions {
        host_build: Some(host_build.parse().unwrap()),
        ..PullOptions::default()
    }
}

/// Pushes a two-build image (`base` layer shared, one distinct layer each) as `repo:tag`.
fn publish(
    registry_host: &str,
    repository: &str,
    tag: &str,
    size: usize,
    credentials: Option<&str>,
) {
    let layout = tempfile::tempdir().unwrap();
    let base = windows_layer(&[("Windows/System32/kernel32.dll", random_bytes(size, 1))]);
    let builds = [
        (
            LTSC2022,
            vec![
                base.clone(),
                windows_layer(&[("app-2022.txt", random_bytes(1000, 2))]),
            ],
        ),
        (
            LTSC2025,
            vec![
                base,
                windows_layer(&[("app-2025.txt", random_bytes(1000, 3))]),
            ],
        ),
    ];
    build_image(layout.path(), tag, &builds);
    push(layout.path(), tag, registry_host, repository, credentials);
}

fn reference(host: &str, path: &str) -> ImageReference {
    format!("{host}/{path}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_the_build_that_matches_the_host() {
    let registry = Registry::start(None);
    publish(&registry.host(), "windows/app", "v1", 64 << 10, None);
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let puller = puller(&store, None);
    let image = reference(&registry.host(), "windows/app:v1");

    let server_2022 = puller
        .pull(&image, &pull_options("10.0.20348.1"), &Quiet)
        .await
        .unwrap();
    assert_eq!(server_2022.os_version.as_deref(), Some(LTSC2022));
    assert!(server_2022.index.is_some());
    assert!(server_2022.layers.iter().all(|l| store.has_blob(l)));

    let server_2025 = puller
        .pull(&image, &pull_options("10.0.26100"), &Quiet)
        .await
        .unwrap();
    assert_eq!(server_2025.os_version.as_deref(), Some(LTSC2025));
    assert_eq!(
        server_2022.layers[0], server_2025.layers[0],
        "the base layer is shared"
    );
    assert_ne!(server_2022.layers[1], server_2025.layers[1]);

    // A Windows 11 23H2 host has no exact build: the newest older one (for Hyper-V).
    let client_host = puller
        .pull(&image, &pull_options("10.0.22631"), &Quiet)
        .await
        .unwrap();
    assert_eq!(client_host.os_version.as_deref(), Some(LTSC2022));
    // Too old a host: a clear error naming what is offered.
    let err = puller
        .pull(&image, &pull_options("10.0.17763"), &Quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10.0.20348.2700"), "{err}");
}

/// Unpacks into the portable layer store, as `pane pull` does off Windows.
struct Unpack(pane_wclayer::LayerStore);

impl pane_oci::pull::LayerSink for Unpack {
    fn unpack(
        &self,
        input: &mut dyn std::io::Read,
        layer: &pane_oci::pull::LayerPosition<'_>,
    ) -> Result<(), String> {
        if self.0.has(layer.diff_id) {
            return Ok(());
        }
        self.0
            .unpack(input, layer.diff_id)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_layers_are_unpacked_and_checked_against_their_diff_ids() {
    let registry = Registry::start(None);
    publish(&registry.host(), "windows/app", "v1", 64 << 10, None);
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(&dir.path().join("content")).unwrap();
    let layers = pane_wclayer::LayerStore::open(&dir.path().join("layers")).unwrap();
    let puller = puller(&store, None).unpacking_into(std::sync::Arc::new(Unpack(layers.clone())));
    let record = puller
        .pull(
            &reference(&registry.host(), "windows/app:v1"),
            &pull_options(LTSC2022),
            &Quiet,
        )
        .await
        .unwrap();
    let facts = store.image_facts(&record).await.unwrap();
    let diff_ids: Vec<String> = facts.layers.iter().map(|l| l.diff_id.clone()).collect();
    let chain = layers.chain(&diff_ids).unwrap();
    assert_eq!(chain.len(), 2);
    assert!(
        chain[1]
            .join("Files/Windows/System32/kernel32.dll")
            .is_file(),
        "the base layer is last in the chain"
    );
    assert!(chain[0].join("Files/app-2022.txt").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_required_and_honoured() {
    let registry = Registry::start(Some(("pane", "s3cret")));
    publish(
        &registry.host(),
        "private/app",
        "v1",
        16 << 10,
        Some("pane:s3cret"),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let image = reference(&registry.host(), "private/app:v1");

    let anonymous = puller(&store, None)
        .pull(&image, &pull_options(LTSC2022), &Quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(&anonymous, PullError::Registry(RegistryError::Unauthorized { hint, .. }) if hint.contains("needs credentials")),
        "{anonymous}"
    );
    let wrong = Credentials::Basic {
        username: "pane".into(),
        password: "wrong".into(),
    };
    let err = puller(&store, Some(wrong))
        .pull(&image, &pull_options(LTSC2022), &Quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::Registry(RegistryError::Unauthorized { .. })),
        "{err}"
    );
    assert!(
        !err.to_string().contains("wrong"),
        "the password never appears: {err}"
    );
    let right = Credentials::Basic {
        username: "pane".into(),
        password: "s3cret".into(),
    };
    let record = puller(&store, Some(right))
        .pull(&image, &pull_options(LTSC2022), &Quiet)
        .await
        .unwrap();
    assert_eq!(record.os_version.as_deref(), Some(LTSC2022));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_fetched_from_the_challenge_realm() {
    let registry = Registry::start(None);
    publish(&registry.host(), "windows/app", "v1", 16 << 10, None);
    let proxy = Proxy::start(registry.port, Fault::RequireBearer).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let record = puller(&store, None)
        .pull(
            &reference(&proxy.host(), "windows/app:v1"),
            &pull_options(LTSC2022),
            &Quiet,
        )
        .await
        .unwrap();
    assert!(record.layers.iter().all(|l| store.has_blob(l)));
    let requests = proxy.requests.lock().unwrap().clone();
    let token_requests: Vec<&String> = requests.iter().filter(|r| r.contains("/token?")).collect();
    assert_eq!(
        token_requests.len(),
        1,
        "one token, cached for the repository: {requests:?}"
    );
    assert!(
        token_requests[0].contains("scope=repository%3Awindows%2Fapp%3Apull"),
        "{token_requests:?}"
    );
    assert!(
        token_requests[0].contains("service=pane-test"),
        "{token_requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_a_range_request() {
    let registry = Registry::start(None);
    publish(&registry.host(), "windows/big", "v1", 3 << 20, None);
    let proxy = Proxy::start(registry.port, Fault::CutOnce(1 << 20)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(&dir.path().join("content")).unwrap();
    let layers = pane_wclayer::LayerStore::open(&dir.path().join("layers")).unwrap();
    // Layers are unpacked as they download: the unpack must go on across the resume.
    let record = puller(&store, None)
        .unpacking_into(std::sync::Arc::new(Unpack(layers.clone())))
        .pull(
            &reference(&proxy.host(), "windows/big:v1"),
            &pull_options(LTSC2022),
            &Quiet,
        )
        .await
        .unwrap();
    let base = &record.layers[0];
    let requests = proxy.blob_requests(base);
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(
        requests[1]
            .to_ascii_lowercase()
            .contains("range: bytes=1048576-"),
        "the retry resumes: {requests:?}"
    );
    assert!(store.has_blob(base));
    let facts = store.image_facts(&record).await.unwrap();
    let diff_ids: Vec<String> = facts.layers.iter().map(|l| l.diff_id.clone()).collect();
    let chain = layers.chain(&diff_ids).unwrap();
    assert!(
        chain[1]
            .join("Files/Windows/System32/kernel32.dll")
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_layer_is_refused_and_nothing_is_kept() {
    let registry = Registry::start(None);
    publish(&registry.host(), "windows/app", "v1", 256 << 10, None);
    let proxy = Proxy::start(registry.port, Fault::FlipByte).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let layers = pane_wclayer::LayerStore::open(&dir.path().join("layers")).unwrap();
    let err = puller(&store, None)
        .unpacking_into(std::sync::Arc::new(Unpack(layers.clone())))
        .pull(
            &reference(&proxy.host(), "windows/app:v1"),
            &pull_options(LTSC2022),
            &Quiet,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::Store(StoreError::Mismatch { .. })),
        "{err}"
    );
    assert!(
        store.images().unwrap().is_empty(),
        "no image record after a failed pull"
    );
    let partials = std::fs::read_dir(dir.path().join("ingest"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
        .count();
    assert_eq!(partials, 0, "no partial download is left behind");
    // The layer was being unpacked as it came: the flipped byte fails its diff ID, and the
    // unpack leaves nothing either.
    assert!(layers.retain(&[]).unwrap().is_empty(), "no layer was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_success() {
    let registry = Registry::start(None);
    publish(&registry.host(), "windows/app", "v1", 32 << 10, None);
    let proxy = Proxy::start(registry.port, Fault::ServerErrors(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let record = puller(&store, None)
        .pull(
            &reference(&proxy.host(), "windows/app:v1"),
            &pull_options(LTSC2022),
            &Quiet,
        )
        .await
        .unwrap();
    assert!(record.layers.iter().all(|l| store.has_blob(l)));
    let blob_requests = proxy
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("/blobs/"))
        .count();
    assert!(
        blob_requests >= 3 + 3,
        "three 500s were retried: {blob_requests}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image_download_each_blob_once() {
    let registry = Registry::start(None);
    publish(&registry.host(), "windows/app", "v1", 1 << 20, None);
    let proxy = Proxy::start(registry.port, Fault::None).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let puller = puller(&store, None);
    let image = reference(&proxy.host(), "windows/app:v1");
    let options = pull_options(LTSC2022);
    let (first, second) = tokio::join!(
        puller.pull(&image, &options, &Quiet),
        puller.pull(&image, &options, &Quiet)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first, second);
    for layer in &first.layers {
        assert_eq!(
            proxy.blob_requests(layer).len(),
            1,
            "one download of {layer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_one_image_keeps_the_layers_another_uses() {
    let registry = Registry::start(None);
    publish(&registry.host(), "windows/app", "v1", 64 << 10, None);
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let puller = puller(&store, None);
    let image = reference(&registry.host(), "windows/app:v1");
    let a = puller
        .pull(&image, &pull_options(LTSC2022), &Quiet)
        .await
        .unwrap();
    store.tag(&a.reference, "copy-2022").await.unwrap();
    store.untag(&a.reference).await.unwrap();
    let b = puller
        .pull(&image, &pull_options(LTSC2025), &Quiet)
        .await
        .unwrap();
    store.untag("copy-2022").await.unwrap();
    let pruned = store.prune().await.unwrap();
    assert!(
        store.has_blob(&a.layers[0]),
        "the shared base layer survives"
    );
    assert!(!store.has_blob(&a.layers[1]), "the 2022-only layer is gone");
    assert!(pruned.blobs.contains(&a.layers[1]) && pruned.bytes > 0);
    assert!(b.layers.iter().all(|l| store.has_blob(l)));
}

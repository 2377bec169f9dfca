//! The `Runtime` an orchestrator embeds, end to end over real stores (content and layers on
//! disk, a real registry for pulls) and the HCS and layer doubles. Unix only: the registry
//! is Debian's, and on Windows layers are imported into HCS instead of the portable store.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

#[path = "../../oci/tests/support/mod.rs"]
mod registry;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pane_hcs::schema::{MemoryStats, ProcessorStats, Statistics};
use pane_runtime::hcs_runtime::{HcsRuntime, RuntimeSettings};
use pane_runtime::images::ImageSettings;
use pane_runtime::{ContainerId, ContainerState, Isolation, LogOptions, Runtime, RuntimeError};
use pane_spec::ServiceSpec;
use support::fake_hcs::FakeHcs;
use support::fake_layers::FakeLayers;

const DEMO: &str = "example.com/demo/nanoserver:ltsc2022";
const LTSC2022: &str = "10.0.20348.2700";

struct World {
    hcs: Arc<FakeHcs>,
    layers: Arc<FakeLayers>,
    runtime: HcsRuntime,
    dir: tempfile::TempDir,
}

fn world() -> World {
    world_with(ImageSettings {
        host_build: LTSC2022.parse().ok(),
        ..ImageSettings::default()
    })
}

fn world_with(images: ImageSettings) -> World {
    let dir = tempfile::tempdir().unwrap();
    let hcs = Arc::new(FakeHcs::default());
    let layers = Arc::new(FakeLayers::default());
    let runtime = HcsRuntime::new(
        hcs.clone(),
        layers.clone(),
        RuntimeSettings {
            root: dir.path().to_owned(),
            owner: "pane".into(),
            host_build: LTSC2022.parse().ok(),
            host_processors: 4,
            images,
        },
    )
    .unwrap();
    World {
        hcs,
        layers,
        runtime,
        dir,
    }
}

/// The demo nanoserver layout from `examples/`, loaded as `pane image load` would.
async fn load_demo(world: &World) {
    let layout_dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/images/nanoserver-demo");
    pane_oci::OciLayout::open(&layout_dir)
        .unwrap()
        .import(
            world.runtime.images().content(),
            Some("ltsc2022"),
            Some(DEMO),
            "amd64",
            LTSC2022.parse().ok().as_ref(),
        )
        .await
        .unwrap();
}

fn spec(image: &str, extra: &str) -> ServiceSpec {
    pane_spec::parse_service(&format!(
        "image: {{name: {image}, pull_policy: never}}\ncommand: {{entrypoint: [cmd, /c, echo hi]}}\nresources: {{memory: 512Mi}}\n{extra}"
    ))
    .unwrap()
}

fn assert_nothing_left(world: &World) {
    support::assert_nothing_left(&world.hcs, &world.layers, None, world.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_runs_from_a_loaded_image_and_remove_leaves_nothing() {
    let world = world();
    load_demo(&world).await;
    let id = ContainerId::new("web", 1);
    let rt: &dyn Runtime = &world.runtime;
    rt.create_container(&id, &spec(DEMO, "")).await.unwrap();
    assert_eq!(
        rt.container_state(&id).await.unwrap(),
        ContainerState::Created
    );
    // The chain is the image's real layers, unpacked from the loaded blobs.
    let unpacked = std::fs::read_dir(world.dir.path().join("layers"))
        .unwrap()
        .count();
    assert!(unpacked >= 1, "layers unpacked: {unpacked}");

    rt.start_container(&id).await.unwrap();
    let pid = world.hcs.process_ids("web-1")[0];
    world
        .hcs
        .write_stdout("web-1", pid, b"hello from nanoserver\r\n")
        .await;
    world.hcs.set_statistics(
        "web-1",
        Statistics {
            processor: Some(ProcessorStats {
                total_runtime_100ns: Some(1_234_560),
                ..ProcessorStats::default()
            }),
            memory: Some(MemoryStats {
                memory_usage_private_working_set_bytes: Some(64 << 20),
                ..MemoryStats::default()
            }),
            ..Statistics::default()
        },
    );
    let stats = rt.container_stats(&id).await.unwrap();
    assert_eq!(stats.cpu_usage_usec, 123_456, "100 ns units become µs");
    assert_eq!(stats.memory_bytes, 64 << 20);
    assert_eq!(stats.memory_limit_bytes, Some(512 << 20));

    world.hcs.exit_process("web-1", pid, 0);
    let code = tokio::time::timeout(Duration::from_secs(5), rt.wait_container(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 0);
    let logs = rt
        .container_logs(&id, &LogOptions::default())
        .await
        .unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].message, "hello from nanoserver");

    let inspect = rt.inspect_container(&id).await.unwrap();
    assert_eq!(inspect.isolation, Some(Isolation::Process));
    assert_eq!(inspect.exit_code, Some(0));
    assert!(inspect.started_at.is_some() && inspect.finished_at.is_some());
    assert!(inspect.image_manifest.unwrap().starts_with("sha256:"));
    assert_eq!(inspect.documents[0].0, "container");
    let listed = rt.list_containers().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].image.as_str(), listed[0].state.as_str()),
        (DEMO, "exited")
    );

    let image: pane_spec::ImageReference = DEMO.parse().unwrap();
    let refused = rt.remove_image(&image, false).await.unwrap_err();
    assert!(
        matches!(refused, RuntimeError::WrongState { .. }),
        "{refused}"
    );
    rt.remove_container(&id, false).await.unwrap();
    assert!(matches!(
        rt.container_state(&id).await.unwrap_err(),
        RuntimeError::NotFound { .. }
    ));
    assert_nothing_left(&world);
    rt.remove_image(&image, false).await.unwrap();
    assert!(rt.list_images().await.unwrap().is_empty());
    let layers_left = std::fs::read_dir(world.dir.path().join("layers"))
        .unwrap()
        .count();
    assert_eq!(layers_left, 0, "unpacked layers of the removed image");
}

#[tokio::test]
async fn pull_policy_never_without_the_image_creates_nothing() {
    let world = world();
    let err = world
        .runtime
        .create_container(&ContainerId::new("web", 1), &spec(DEMO, ""))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotLocal { .. }), "{err}");
    assert!(err.to_string().contains("pane pull"), "{err}");
    assert_nothing_left(&world);
}

#[tokio::test]
async fn hyperv_without_a_guest_connector_is_refused_and_leaves_nothing() {
    let world = world();
    load_demo(&world).await;
    let err = world
        .runtime
        .create_container(
            &ContainerId::new("vm", 1),
            &spec(DEMO, "isolation: hyperv\n"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("guest connector"), "{err}");
    assert_nothing_left(&world);
}

#[tokio::test]
async fn a_container_keeps_its_image_through_prune_after_a_forced_rmi() {
    let world = world();
    load_demo(&world).await;
    let id = ContainerId::new("keep", 1);
    let rt: &dyn Runtime = &world.runtime;
    rt.create_container(&id, &spec(DEMO, "")).await.unwrap();
    rt.remove_image(&DEMO.parse().unwrap(), true).await.unwrap();
    rt.prune_images().await.unwrap();
    // Its manifest, config and layers are still there, so it still starts.
    rt.start_container(&id).await.unwrap();
    rt.remove_container(&id, true).await.unwrap();
    let pruned = rt.prune_images().await.unwrap();
    assert!(pruned.space_reclaimed > 0 && !pruned.deleted.is_empty());
    assert_nothing_left(&world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_and_removes_leave_nothing() {
    let world = Arc::new(world());
    load_demo(&world).await;
    let tasks: Vec<_> = (0..50u32)
        .map(|replica| {
            let world = Arc::clone(&world);
            tokio::spawn(async move {
                let id = ContainerId::new("burst", replica);
                world.runtime.create_container(&id, &spec(DEMO, "")).await?;
                world.runtime.start_container(&id).await?;
                world.runtime.remove_container(&id, true).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_nothing_left(&world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_image_share_one_pull() {
    let registry = registry::Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    let base = registry::windows_layer(&[("Windows/System32/cmd.exe", vec![7u8; 256 << 10])]);
    registry::build_image(layout.path(), "v1", &[(LTSC2022, vec![base])]);
    registry::push(layout.path(), "v1", &registry.host(), "windows/app", None);
    let proxy = registry::Proxy::start(registry.port, registry::Fault::None).await;
    let image = format!("{}/windows/app:v1", proxy.host());

    let world = Arc::new(world());
    let tasks: Vec<_> = (0..5u32)
        .map(|replica| {
            let world = Arc::clone(&world);
            let mut spec = spec(&image, "");
            spec.image.pull_policy = pane_spec::PullPolicy::IfNotPresent;
            tokio::spawn(async move {
                world
                    .runtime
                    .create_container(&ContainerId::new("app", replica), &spec)
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let tag_requests = proxy
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("/manifests/v1"))
        .count();
    assert_eq!(tag_requests, 1, "one pull for five creates");
    assert_eq!(world.hcs.system_ids().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_waiting_on_a_stalled_pull_take_its_failure() {
    // Accepts connections and never answers: a registry that hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    let world = Arc::new(world_with(ImageSettings {
        host_build: LTSC2022.parse().ok(),
        read_timeout: Duration::from_secs(1),
        ..ImageSettings::default()
    }));
    let image = format!("{address}/windows/app:v1");
    let tasks: Vec<_> = (0..3u32)
        .map(|replica| {
            let world = Arc::clone(&world);
            let mut spec = spec(&image, "");
            spec.image.pull_policy = pane_spec::PullPolicy::IfNotPresent;
            tokio::spawn(async move {
                world
                    .runtime
                    .create_container(&ContainerId::new("app", replica), &spec)
                    .await
            })
        })
        .collect();
    for task in tasks {
        let error = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("a stalled registry does not hold creates forever")
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&error, RuntimeError::PullFailed { reason, .. } if reason.contains("no answer")),
            "{error}"
        );
    }
    server.abort();
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one pull was tried; the creates waiting on it took its failure"
    );
    assert!(world.hcs.system_ids().is_empty());
}

//! Test support shared by the runtime tests and benchmarks.
pub mod fake_files;
pub mod fake_hcs;
pub mod fake_layers;
pub mod fake_network;
pub mod fixtures;
#[cfg(unix)]
pub mod guest;
#[cfg(unix)]
pub mod hyperv_world;

/// Asserts the host and the state directory hold nothing of any container: no compute
/// system, scratch layer, network namespace or endpoint, record or container folder.
#[allow(dead_code, clippy::missing_panics_doc)]
pub fn assert_nothing_left(
    hcs: &fake_hcs::FakeHcs,
    layers: &fake_layers::FakeLayers,
    network: Option<&fake_network::FakeNetwork>,
    root: &std::path::Path,
) {
    assert!(
        hcs.system_ids().is_empty(),
        "compute systems left: {:?}",
        hcs.system_ids()
    );
    assert!(
        layers.layers().is_empty(),
        "scratch layers left: {:?}",
        layers.layers()
    );
    if let Some(network) = network {
        let (namespaces, endpoints) = network.leftovers();
        assert!(
            namespaces.is_empty() && endpoints.is_empty(),
            "network objects left: {namespaces:?} {endpoints:?}"
        );
    }
    // Records (`<id>.json`) and container folders share this directory.
    let entries: Vec<_> = std::fs::read_dir(root.join("containers"))
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        entries.is_empty(),
        "records or container folders left: {entries:?}"
    );
}

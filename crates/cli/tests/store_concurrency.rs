//! Many `pane` processes on one store, as on a node where an agent, a user and CI all run
//! pane: concurrent pulls of one image, with tags and removals racing them, must leave every
//! blob matching its digest and every record written.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

#[path = "support/registry_tree.rs"]
mod registry_tree;

#[cfg(unix)]
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

#[cfg(unix)]
use sha2_free_digest::sha256_hex;

use registry_tree::example;

fn pane(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pane"));
    command
        .arg("--root")
        .arg(root)
        .arg("--json")
        .args(args)
        .env_remove("PANE_HOST_BUILD")
        .env_remove("PANE_REGISTRY")
        .env_remove("PANE_REGISTRY_USERNAME")
        .env_remove("PANE_REGISTRY_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn succeeded(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg(unix)]
/// The example image served as a registry does: `python3 -m http.server` over a tree of
/// `/v2/windows/app/{manifests,blobs}/…` files (content types do not matter: pane decides a
/// document's kind from its fields).
struct StaticRegistry {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

#[cfg(unix)]
impl Drop for StaticRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
impl StaticRegistry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        registry_tree::write(dir.path());
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .arg("--directory")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 serves the test registry");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 43567 (http://127.0.0.1:43567/) ..."
        let port = first
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected http.server banner: {first}"));
        Self {
            port,
            child,
            _dir: dir,
        }
    }
}

/// The child's output once it exits; a child still running after five minutes fails the
/// test (a deadlock between pane processes would otherwise hang CI rather than fail it).
fn finished(child: Child, what: &str) -> Output {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    receiver
        .recv_timeout(std::time::Duration::from_secs(300))
        .unwrap_or_else(|_| panic!("{what} was still running after 300 s"))
        .unwrap()
}

fn records(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join("content/images.json")).unwrap()).unwrap()
}

#[cfg(unix)]
fn assert_every_blob_matches_its_name(root: &Path) {
    for entry in std::fs::read_dir(root.join("content/blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(
            sha256_hex(&std::fs::read(entry.path()).unwrap()),
            name,
            "blob {name} holds other bytes"
        );
    }
}

/// Unix only: the registry is Python's, which the Windows build's tests under wine cannot
/// start (the tag test below runs there, on Windows file locks).
#[cfg(unix)]
#[test]
fn ten_pulls_with_tags_and_removals_racing_them_leave_a_whole_store() {
    let registry = StaticRegistry::start();
    let root = tempfile::tempdir().unwrap();
    let reference = format!("127.0.0.1:{}/windows/app:v1", registry.port);
    // Tags to remove while the pulls run: made from the example's other build (26100),
    // so the pulls (20348) share only the index with it and download their manifest,
    // config and layer afresh, racing each other.
    let loaded = pane(
        root.path(),
        &[
            "image",
            "load",
            example().to_str().unwrap(),
            "--as",
            "example/base:old",
            "--host-build",
            "10.0.26100",
        ],
    )
    .output()
    .unwrap();
    succeeded(&loaded, "load");
    let blobs = |root: &Path| {
        std::fs::read_dir(root.join("content/blobs/sha256"))
            .unwrap()
            .count()
    };
    assert_eq!(blobs(root.path()), 4, "index, manifest, config and layer");
    for n in 0..5 {
        let tag = format!("example/base:old{n}");
        succeeded(
            &pane(root.path(), &["tag", "example/base:old", &tag])
                .output()
                .unwrap(),
            "tag",
        );
    }

    let mut children: Vec<(String, Child)> = Vec::new();
    for n in 0..10 {
        let pull = pane(
            root.path(),
            &["pull", &reference, "--host-build", "10.0.20348"],
        );
        children.push((format!("pull {n}"), { pull }.spawn().unwrap()));
        let (what, args) = if n % 2 == 0 {
            (
                format!("tag {n}"),
                vec![
                    "tag".to_owned(),
                    "example/base:old".to_owned(),
                    format!("example/base:new{n}"),
                ],
            )
        } else {
            (
                format!("rmi {n}"),
                vec!["rmi".to_owned(), format!("example/base:old{}", n / 2)],
            )
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        children.push((what, pane(root.path(), &args).spawn().unwrap()));
    }
    for (what, child) in children {
        succeeded(&finished(child, &what), &what);
    }

    assert_every_blob_matches_its_name(root.path());
    assert_eq!(
        blobs(root.path()),
        7,
        "the pulls added their own three blobs"
    );
    let images = records(root.path());
    let names: Vec<&String> = images["images"].as_object().unwrap().keys().collect();
    let normalised = |name: &str| format!("docker.io/{name}");
    for n in (0..10).step_by(2) {
        assert!(
            names.contains(&&normalised(&format!("example/base:new{n}"))),
            "tag new{n} was lost: {names:?}"
        );
    }
    for n in 0..5 {
        assert!(
            !names.contains(&&normalised(&format!("example/base:old{n}"))),
            "old{n} was removed: {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.contains("windows/app:v1")),
        "{names:?}"
    );
    // Every blob a record names is there (a removal's prune took none the pulls needed).
    for record in images["images"].as_object().unwrap().values() {
        for key in ["manifest", "config"] {
            let digest = record[key].as_str().unwrap();
            let path = root
                .path()
                .join("content/blobs/sha256")
                .join(digest.trim_start_matches("sha256:"));
            assert!(path.is_file(), "{key} {digest} of {record} is missing");
        }
    }
}

#[test]
fn forty_concurrent_tags_are_all_recorded() {
    let root = tempfile::tempdir().unwrap();
    let loaded = pane(
        root.path(),
        &[
            "image",
            "load",
            example().to_str().unwrap(),
            "--as",
            "example/base:v1",
            "--host-build",
            "10.0.20348",
        ],
    )
    .output()
    .unwrap();
    succeeded(&loaded, "load");
    let children: Vec<Child> = (0..40)
        .map(|n| {
            pane(
                root.path(),
                &["tag", "example/base:v1", &format!("example/base:t{n}")],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        succeeded(&finished(child, "tag"), "tag");
    }
    let images = records(root.path());
    assert_eq!(images["images"].as_object().unwrap().len(), 41, "{images}");
    let leftovers: Vec<String> = std::fs::read_dir(root.path().join("content"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            std::path::Path::new(n)
                .extension()
                .is_some_and(|e| e == "tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// sha256 without a dependency the CLI does not otherwise need: `sha256sum` does it.
#[cfg(unix)]
mod sha2_free_digest {
    pub fn sha256_hex(bytes: &[u8]) -> String {
        use std::io::Write as _;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

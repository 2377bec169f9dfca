//! Where `pane pull` takes credentials from, end to end: the environment's pair only for the
//! registry `PANE_REGISTRY` names, and Docker's credential helpers run as Docker runs them.
//! Unix only: the registry is a Python script, which the Windows build's tests under wine
//! cannot start.
#![cfg(unix)]
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

#[path = "support/registry_tree.rs"]
mod registry_tree;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Output, Stdio};

/// Serves the example image and demands Basic `bot:s3cret` for everything; every
/// Authorization header it sees is appended to `seen`.
const SERVER: &str = r#"
import base64, os, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
root, seen = sys.argv[1], sys.argv[2]
wanted = 'Basic ' + base64.b64encode(b'bot:s3cret').decode()
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        given = self.headers.get('Authorization')
        if given:
            with open(seen, 'a') as f:
                f.write(given + '\n')
        if given != wanted:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="pane-test"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        path = os.path.join(root, self.path.lstrip('/'))
        if '..' in self.path or not os.path.isfile(path):
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        body = open(path, 'rb').read()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct Registry {
    port: u16,
    seen: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        registry_tree::write(&dir.path().join("tree"));
        let seen = dir.path().join("seen");
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(dir.path().join("tree"))
            .arg(&seen)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 serves the test registry");
        let mut port = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        Self {
            port: port.trim().parse().unwrap(),
            seen,
            child,
            dir,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn authorizations(&self) -> Vec<String> {
        std::fs::read_to_string(&self.seen)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn pull(registry: &Registry, root: &Path, configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pane"));
    command
        .arg("--root")
        .arg(root)
        .args(["pull", "--host-build", "10.0.20348"])
        .arg(format!("{}/windows/app:v1", registry.host()))
        .env_remove("PANE_REGISTRY")
        .env_remove("PANE_REGISTRY_USERNAME")
        .env_remove("PANE_REGISTRY_PASSWORD")
        .env(
            "DOCKER_CONFIG",
            registry.dir.path().join("no-docker-config"),
        );
    configure(&mut command);
    command.output().unwrap()
}

#[test]
fn the_environment_pair_reaches_only_the_registry_it_names() {
    let registry = Registry::start();
    let root = tempfile::tempdir().unwrap();
    let unbound = pull(&registry, root.path(), |c| {
        c.env("PANE_REGISTRY_USERNAME", "bot")
            .env("PANE_REGISTRY_PASSWORD", "s3cret");
    });
    assert_ne!(unbound.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&unbound.stderr);
    assert!(
        stderr.contains(&format!("PANE_REGISTRY={}", registry.host())),
        "{stderr}"
    );
    assert!(registry.authorizations().is_empty(), "nothing was sent");

    let bound = pull(&registry, root.path(), |c| {
        c.env("PANE_REGISTRY", registry.host())
            .env("PANE_REGISTRY_USERNAME", "bot")
            .env("PANE_REGISTRY_PASSWORD", "s3cret");
    });
    assert_eq!(
        bound.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&bound.stderr)
    );
}

#[test]
fn credential_helpers_are_run_and_a_missing_one_is_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let registry = Registry::start();
    let helpers = tempfile::tempdir().unwrap();
    let helper = helpers.path().join("docker-credential-panetest");
    // Answers only for the server URL it is asked about on stdin.
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r server\n[ \"$server\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"ServerURL\":\"'\"$server\"'\",\"Username\":\"bot\",\"Secret\":\"s3cret\"}}'\n",
            registry.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        helpers.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"credHelpers":{{"{}":"panetest"}}}}"#, registry.host()),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let answered = pull(&registry, root.path(), |c| {
        c.env("PATH", &path).arg("--docker-config").arg(&config);
    });
    assert_eq!(
        answered.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );

    std::fs::write(&config, r#"{"credsStore":"missing-helper","auths":{}}"#).unwrap();
    let missing = pull(&registry, tempfile::tempdir().unwrap().path(), |c| {
        c.env("PATH", &path).arg("--docker-config").arg(&config);
    });
    assert_ne!(missing.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("docker-credential-missing-helper") && stderr.contains("credsStore"),
        "{stderr}"
    );
}

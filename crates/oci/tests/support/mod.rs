//! Test support: a real registry (Debian's `docker-registry`), Windows-style images pushed
//! with skopeo, and a loopback proxy that misbehaves on purpose.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc
)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require(binary: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .map(|o| o.status.success());
    assert!(
        found.unwrap_or(false),
        "{binary} is required by the registry tests: apt-get install docker-registry skopeo (bash .ci/test does it)"
    );
}

/// A registry process on a free loopback port, killed on drop.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    pub fn start(basic_auth: Option<(&str, &str)>) -> Self {
        require("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = basic_auth {
            let hash = bcrypt::hash(password, 5).unwrap();
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            let htpasswd = dir.path().join("htpasswd");
            writeln!(
                config,
                "auth:\n  htpasswd:\n    realm: pane-test\n    path: {}",
                htpasswd.display()
            )
            .unwrap();
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while StdStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A layer in the Windows layer format: `Files/…` and `Hives/` with PAX records.
pub fn windows_layer(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for dir in ["Files", "Hives"] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder
            .append_pax_extensions([("MSWINDOWS.fileattr", &b"16"[..])])
            .unwrap();
        builder
            .append_data(&mut header, dir, std::io::empty())
            .unwrap();
    }
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder
            .append_pax_extensions([("MSWINDOWS.fileattr", &b"32"[..])])
            .unwrap();
        builder
            .append_data(&mut header, format!("Files/{name}"), data.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    pane_oci::digest::sha256_digest(bytes)
}

fn write_blob(layout: &Path, bytes: &[u8]) -> serde_json::Value {
    let digest = sha256(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&digest[7..]), bytes).unwrap();
    serde_json::json!({"digest": digest, "size": bytes.len()})
}

/// Writes an OCI layout holding one image tagged `tag`: an index with one Windows manifest
/// per `(os.version, layer tars)`.
pub fn build_image(layout: &Path, tag: &str, builds: &[(&str, Vec<Vec<u8>>)]) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut manifests = Vec::new();
    for (version, layers) in builds {
        let mut diff_ids = Vec::new();
        let mut descriptors = Vec::new();
        for tar in layers {
            diff_ids.push(sha256(tar));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            let mut descriptor = write_blob(layout, &gz.finish().unwrap());
            descriptor["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
            descriptors.push(descriptor);
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "windows", "os.version": version,
            "config": {"Cmd": ["cmd.exe"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let mut config_descriptor = write_blob(layout, &serde_json::to_vec(&config).unwrap());
        config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_descriptor, "layers": descriptors,
        });
        let mut descriptor = write_blob(layout, &serde_json::to_vec(&manifest).unwrap());
        descriptor["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
        descriptor["platform"] =
            serde_json::json!({"architecture": "amd64", "os": "windows", "os.version": version});
        manifests.push(descriptor);
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let mut index_descriptor = write_blob(layout, &serde_json::to_vec(&index).unwrap());
    index_descriptor["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
    index_descriptor["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [index_descriptor]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
}

/// Pushes the layout's `tag` (every platform) to `host/repository:tag` with skopeo.
pub fn push(layout: &Path, tag: &str, host: &str, repository: &str, credentials: Option<&str>) {
    require("skopeo");
    let mut command = Command::new("skopeo");
    command.args(["copy", "--all", "--quiet", "--dest-tls-verify=false"]);
    if let Some(credentials) = credentials {
        command.args(["--dest-creds", credentials]);
    }
    let status = command
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{host}/{repository}:{tag}"))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo could not push {repository}:{tag}");
}

/// What the proxy does to blob downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Cut the first download of each blob after this many body bytes.
    CutOnce(usize),
    /// Flip the first body byte of every blob download.
    FlipByte,
    /// Answer this many blob requests with 500 first.
    ServerErrors(usize),
    /// Act as a token-auth registry: 401 with a Bearer challenge until the request carries
    /// the token this proxy's own `/token` endpoint hands out.
    RequireBearer,
}

/// The token the bearer-auth proxy issues.
pub const TOKEN: &str = "pane-test-token";

/// A loopback HTTP proxy in front of a registry that records requests and injects faults.
pub struct Proxy {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub async fn start(upstream: u16, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let state = Arc::new(Mutex::new((
            fault,
            std::collections::HashSet::<String>::new(),
        )));
        let log = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (log, state) = (Arc::clone(&log), Arc::clone(&state));
                tokio::spawn(async move {
                    let _ = relay(client, upstream, port, log, state).await;
                });
            }
        });
        Self { port, requests }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Requests for blob `digest`, as `METHOD path [range]`.
    pub fn blob_requests(&self, digest: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(&format!("/blobs/{digest}")))
            .cloned()
            .collect()
    }
}

type FaultState = Arc<Mutex<(Fault, std::collections::HashSet<String>)>>;

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

async fn relay(
    mut client: TcpStream,
    upstream: u16,
    own_port: u16,
    log: Arc<Mutex<Vec<String>>>,
    state: FaultState,
) -> std::io::Result<()> {
    let head = String::from_utf8_lossy(&read_head(&mut client).await?).into_owned();
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let range = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("range:"))
        .map(|l| l.trim().to_owned());
    log.lock()
        .unwrap()
        .push(format!("{request_line} {}", range.unwrap_or_default()));
    let is_blob = path.contains("/blobs/sha256:");
    let (fault, first_time) = {
        let mut state = state.lock().unwrap();
        let first = state.1.insert(path.clone());
        let fault = state.0;
        if let (Fault::ServerErrors(n), true) = (fault, is_blob)
            && n > 0
        {
            state.0 = Fault::ServerErrors(n - 1);
        }
        (fault, first)
    };
    if let (Fault::ServerErrors(n), true) = (fault, is_blob)
        && n > 0
    {
        client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
        return Ok(());
    }
    if fault == Fault::RequireBearer {
        if path.starts_with("/token") {
            let body = format!("{{\"token\":\"{TOKEN}\"}}");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(response.as_bytes()).await?;
            return Ok(());
        }
        let authorized = head
            .lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {TOKEN}")));
        if !authorized {
            let repository = path
                .trim_start_matches("/v2/")
                .split("/manifests/")
                .next()
                .unwrap_or_default();
            let repository = repository.split("/blobs/").next().unwrap_or_default();
            let challenge = format!(
                "Bearer realm=\"http://127.0.0.1:{own_port}/token\",service=\"pane-test\",scope=\"repository:{repository}:pull\""
            );
            let response = format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            client.write_all(response.as_bytes()).await?;
            return Ok(());
        }
    }
    // One request per connection keeps the relay simple.
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = head.trim_end_matches("\r\n").to_owned() + "\r\nConnection: close\r\n\r\n";
    let mut server = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], upstream))).await?;
    server.write_all(head.as_bytes()).await?;
    let response_head = read_head(&mut server).await?;
    client.write_all(&response_head).await?;
    let mut body_sent = 0usize;
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let n = server.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        let chunk = &mut buffer[..n];
        if is_blob && fault == Fault::FlipByte && body_sent == 0 {
            chunk[0] ^= 0xFF;
        }
        if let (Fault::CutOnce(limit), true, true) = (fault, is_blob, first_time) {
            let room = limit.saturating_sub(body_sent);
            if room < chunk.len() {
                client.write_all(&chunk[..room]).await?;
                return Ok(()); // drop both connections mid-body
            }
        }
        client.write_all(chunk).await?;
        body_sent += n;
    }
    Ok(())
}

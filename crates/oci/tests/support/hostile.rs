//! A scripted registry for hostile cases: it speaks the distribution API's HTTP/1.1 (one
//! request per connection), records every request, and answers as its script says: whole
//! bodies, bodies that never end, redirects, challenges, or nothing at all.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc
)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Headers, then zeros for as long as the client reads (no Content-Length).
    Endless {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Reads the request and never answers.
    Silent,
    /// Headers declaring `length` bytes, then one byte every `every`.
    Trickle {
        length: usize,
        every: std::time::Duration,
    },
}

impl Reply {
    pub fn ok(content_type: &str, body: Vec<u8>) -> Self {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn status(status: u16) -> Self {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(self, name: &str, value: &str) -> Self {
        match self {
            Reply::Full {
                status,
                mut headers,
                body,
            } => {
                headers.push((name.into(), value.into()));
                Reply::Full {
                    status,
                    headers,
                    body,
                }
            }
            Reply::Endless {
                status,
                mut headers,
            } => {
                headers.push((name.into(), value.into()));
                Reply::Endless { status, headers }
            }
            other => other,
        }
    }
}

type Script = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// The server; it stops when dropped.
pub struct Hostile {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    pub async fn start(script: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let seen = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = Arc::clone(&script);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let _ = serve(stream, &script, &seen).await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// `127.0.0.1:port`, as a registry name.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    script: &Script,
    seen: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 || head.len() > 64 << 10 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let request = Request {
        method,
        path,
        headers,
    };
    if let Some(length) = request
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        let mut body = vec![0u8; length.min(1 << 20)];
        stream.read_exact(&mut body).await?;
    }
    seen.lock().unwrap().push(request.clone());
    match script(&request) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            let mut has_length = false;
            for (name, value) in &headers {
                has_length |= name.eq_ignore_ascii_case("content-length");
                let _ = write!(out, "{name}: {value}\r\n");
            }
            if !has_length {
                let _ = write!(out, "Content-Length: {}\r\n", body.len());
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await
        }
        Reply::Endless { status, headers } => {
            let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            for (name, value) in &headers {
                let _ = write!(out, "{name}: {value}\r\n");
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            let chunk = vec![b'0'; 64 << 10];
            loop {
                stream.write_all(&chunk).await?;
            }
        }
        Reply::Trickle { length, every } => {
            let head =
                format!("HTTP/1.1 200 X\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            for _ in 0..length {
                tokio::time::sleep(every).await;
                stream.write_all(b"0").await?;
            }
            stream.shutdown().await
        }
        Reply::Silent => {
            // Hold the connection open without a byte until the client gives up.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok(())
        }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    pane_oci::digest::sha256_digest(bytes)
}

/// A small single-layer image as a registry serves it.
#[derive(Debug, Clone)]
pub struct Image {
    pub layer: Vec<u8>,
    pub layer_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl Image {
    /// An image whose layer is `layer` (not a tar: nothing here unpacks it), declared with
    /// `declared_size` bytes in the manifest.
    pub fn new(layer: Vec<u8>, declared_size: u64) -> Self {
        let layer_digest = sha256(&layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "windows",
            "os.version": "10.0.20348.1",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "config": {}
        }))
        .unwrap();
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len()
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": declared_size
            }]
        }))
        .unwrap();
        let manifest_digest = sha256(&manifest);
        Self {
            layer,
            layer_digest,
            config,
            config_digest,
            manifest,
            manifest_digest,
        }
    }

    /// This image with `diff_id` as its layer's diff ID (as for a compressed layer, whose
    /// blob digest and diff ID differ); nothing here unpacks, so nothing checks it.
    pub fn with_diff_id(mut self, diff_id: &str) -> Self {
        let mut config: serde_json::Value = serde_json::from_slice(&self.config).unwrap();
        config["rootfs"]["diff_ids"] = serde_json::json!([diff_id]);
        self.config = serde_json::to_vec(&config).unwrap();
        self.config_digest = sha256(&self.config);
        let (digest, size) = (self.config_digest.clone(), self.config.len());
        self.manifest = self.edited_manifest(|manifest| {
            manifest["config"]["digest"] = serde_json::json!(digest);
            manifest["config"]["size"] = serde_json::json!(size);
        });
        self.manifest_digest = sha256(&self.manifest);
        self
    }

    /// This image's manifest with `edit` applied.
    pub fn edited_manifest(&self, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut manifest: serde_json::Value = serde_json::from_slice(&self.manifest).unwrap();
        edit(&mut manifest);
        serde_json::to_vec(&manifest).unwrap()
    }

    /// A script that answers every manifest request with `manifest` as `content_type`,
    /// and everything else honestly.
    pub fn serving_manifest(
        self,
        content_type: &'static str,
        manifest: Vec<u8>,
    ) -> impl Fn(&Request) -> Reply + Send + Sync {
        move |request| {
            if request.path.contains("/manifests/") {
                Reply::ok(content_type, manifest.clone())
            } else {
                self.reply("windows/app", request)
            }
        }
    }

    /// A script that answers this image's layer with `reply`, and everything else
    /// honestly.
    pub fn answering_layer_with(self, reply: Reply) -> impl Fn(&Request) -> Reply + Send + Sync {
        move |request| {
            if request.path.ends_with(&self.layer_digest) {
                reply.clone()
            } else {
                self.reply("windows/app", request)
            }
        }
    }

    /// The honest answer to `request` for this image in repository `repository`.
    pub fn reply(&self, repository: &str, request: &Request) -> Reply {
        let manifests = format!("/v2/{repository}/manifests/");
        let blobs = format!("/v2/{repository}/blobs/");
        if request.path == "/v2/" {
            Reply::status(200)
        } else if request.path.starts_with(&manifests) {
            Reply::ok(OCI_MANIFEST, self.manifest.clone())
        } else if request.path == format!("{blobs}{}", self.config_digest) {
            Reply::ok("application/octet-stream", self.config.clone())
        } else if request.path == format!("{blobs}{}", self.layer_digest) {
            Reply::ok("application/octet-stream", self.layer.clone())
        } else {
            Reply::status(404)
        }
    }
}

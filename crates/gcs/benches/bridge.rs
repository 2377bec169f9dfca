//! Bridge benchmarks, printed as figures (run: `cargo bench -p pane-gcs --bench bridge`).
//!
//! 1. Round-trip latency of a small request over a Unix socket, host bridge against the
//!    guest peer, next to a raw socket echo of a same-sized message.
//! 2. Throughput of stdout relay (a guest process writing 1 GiB) next to a raw socket
//!    carrying the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)] // bench code

#[cfg(unix)]
mod unix {
    use std::time::{Duration, Instant};

    use pane_gcs::messages::NULL_CONTAINER_ID;
    use pane_gcs::settings::GuestRequest;
    use pane_gcs::transport::{GCS_SERVICE_ID, Transport};
    use pane_gcs::{ConnectOptions, GuestConnection, GuestPeer, PeerConfig, Timeouts};
    use pane_hcs::schema::ProcessParameters;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use uuid::Uuid;

    const REQUESTS: usize = 10_000;
    const STREAM_BYTES: usize = 1 << 30;

    /// Nearest-rank percentile, `per_mille` in 0..=1000.
    fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
        sorted[(sorted.len() - 1) * per_mille / 1000]
    }

    fn report(name: &str, mut samples: Vec<Duration>) {
        samples.sort();
        println!(
            "{name:<32} p50 {:>7.1} µs   p99 {:>7.1} µs",
            percentile(&samples, 500).as_secs_f64() * 1e6,
            percentile(&samples, 990).as_secs_f64() * 1e6
        );
    }

    async fn connect(dir: &std::path::Path) -> GuestConnection {
        let transport = Transport::Unix {
            dir: dir.to_owned(),
        };
        let listener = transport.listen(GCS_SERVICE_ID).await.unwrap();
        let peer = GuestPeer::new(PeerConfig::windows_guest(transport.clone()));
        let dialer = transport.clone();
        tokio::spawn(async move {
            let stream = dialer.connect(GCS_SERVICE_ID).await.unwrap();
            let _ = peer.serve(stream).await;
        });
        let stream = listener.accept(Duration::from_secs(10)).await.unwrap();
        let options = ConnectOptions {
            cold_start: true,
            time_zone: None,
            timeouts: Timeouts::default(),
            relay: transport,
        };
        GuestConnection::connect(stream, options).await.unwrap()
    }

    /// Round trips, with host and peer tasks on one thread as well as on two, since
    /// cross-thread wake-ups dominate small-message latency on a virtual machine.
    pub async fn latency() {
        let dir = tempfile::tempdir().unwrap();
        let host = connect(dir.path()).await;

        // 1a. Bridge round trips: a small guest modify (about 230 bytes each way).
        let request = GuestRequest::hv_socket_update(Uuid::new_v4());
        for _ in 0..500 {
            host.modify(NULL_CONTAINER_ID, request.clone())
                .await
                .unwrap();
        }
        let mut samples = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let start = Instant::now();
            host.modify(NULL_CONTAINER_ID, request.clone())
                .await
                .unwrap();
            samples.push(start.elapsed());
        }
        report("bridge request round trip", samples);

        // 1b. Raw socket: echo 230 bytes.
        let (mut client, mut server) = tokio::net::UnixStream::pair().unwrap();
        tokio::spawn(async move {
            let mut buffer = [0u8; 230];
            while server.read_exact(&mut buffer).await.is_ok() {
                if server.write_all(&buffer).await.is_err() {
                    break;
                }
            }
        });
        let message = [7u8; 230];
        let mut reply = [0u8; 230];
        let mut samples = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let start = Instant::now();
            client.write_all(&message).await.unwrap();
            client.read_exact(&mut reply).await.unwrap();
            samples.push(start.elapsed());
        }
        report("raw socket echo (same size)", samples);
    }

    pub async fn throughput() {
        let dir = tempfile::tempdir().unwrap();
        let host = connect(dir.path()).await;

        // 2a. Relay: a guest process writes 1 GiB to stdout.
        host.create_container(
            "bench",
            &serde_json::json!({"SchemaVersion": {"Major": 2, "Minor": 1}}),
        )
        .await
        .unwrap();
        host.start_container("bench").await.unwrap();
        let parameters = ProcessParameters {
            command_line: format!("head -c {STREAM_BYTES} /dev/zero"),
            create_std_out_pipe: true,
            ..ProcessParameters::default()
        };
        let start = Instant::now();
        let mut process = host.execute_process("bench", parameters).await.unwrap();
        let mut stdout = process.stdout.take().unwrap().0;
        let received = drain(&mut stdout).await;
        let relay = start.elapsed();
        assert_eq!(received, STREAM_BYTES);
        println!(
            "{:<32} {:>7.0} MB/s",
            "stdout relay (1 GiB)",
            STREAM_BYTES as f64 / relay.as_secs_f64() / 1e6
        );

        // 2b. Raw socket carrying the same bytes.
        let (mut writer, mut reader) = tokio::net::UnixStream::pair().unwrap();
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            let chunk = vec![0u8; 64 << 10];
            let mut sent = 0;
            while sent < STREAM_BYTES {
                writer.write_all(&chunk).await.unwrap();
                sent += chunk.len();
            }
        });
        let received = drain(&mut reader).await;
        sender.await.unwrap();
        let raw = start.elapsed();
        assert_eq!(received, STREAM_BYTES);
        println!(
            "{:<32} {:>7.0} MB/s",
            "raw socket (1 GiB)",
            STREAM_BYTES as f64 / raw.as_secs_f64() / 1e6
        );
        println!(
            "relay / raw time: {:.2}x",
            relay.as_secs_f64() / raw.as_secs_f64()
        );

        // 2c. The same process and pipe, copied straight to a raw socket: the relay's path
        // without the bridge, so the difference is the bridge's own cost.
        let (mut socket, mut reader) = tokio::net::UnixStream::pair().unwrap();
        let start = Instant::now();
        let mut child = tokio::process::Command::new("head")
            .args(["-c", &STREAM_BYTES.to_string(), "/dev/zero"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let copier = tokio::spawn(async move {
            let mut stdout = tokio::io::BufReader::with_capacity(256 << 10, stdout);
            tokio::io::copy_buf(&mut stdout, &mut socket).await.unwrap();
        });
        let received = drain(&mut reader).await;
        copier.await.unwrap();
        child.wait().await.unwrap();
        let piped = start.elapsed();
        assert_eq!(received, STREAM_BYTES);
        println!(
            "{:<32} {:>7.0} MB/s",
            "process pipe -> raw socket",
            STREAM_BYTES as f64 / piped.as_secs_f64() / 1e6
        );
        println!(
            "relay / pipe+socket time: {:.2}x",
            relay.as_secs_f64() / piped.as_secs_f64()
        );
    }

    async fn drain<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) -> usize {
        let mut buffer = vec![0u8; 64 << 10];
        let mut total = 0;
        loop {
            let n = reader.read(&mut buffer).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    }
}

fn main() {
    #[cfg(unix)]
    {
        println!("-- current-thread runtime");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(unix::latency());
        println!("-- multi-thread runtime (2 workers)");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(unix::latency());
        runtime.block_on(unix::throughput());
    }
    #[cfg(not(unix))]
    println!("the bridge benchmarks use Unix sockets; run them on Linux");
}

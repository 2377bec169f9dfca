//! `pane exec -it` and `pane attach` at a real terminal: the real `pane` binary runs in a
//! tmux window (a pseudo-terminal with a window size that can change), against a
//! container this test serves through its shim from the runtime over the HCS double, as a
//! detached container's supervisor does. Checked: raw mode (keys arrive as typed, Enter
//! as `\r`, ctrl-c as a byte for the container, not a signal for pane), the console's size
//! and its resize, output on the screen, the detach keys, the exit code, and the terminal
//! restored on each way out.
#![cfg(unix)]
#![allow(clippy::expect_used, clippy::unwrap_used, dead_code)] // test code

#[path = "../../runtime/tests/support/fake_hcs.rs"]
mod fake_hcs;
#[path = "../../runtime/tests/support/fake_layers.rs"]
mod fake_layers;
#[path = "../../runtime/tests/support/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_hcs::FakeHcs;
use fake_layers::FakeLayers;
use pane_runtime::ContainerId;
use pane_runtime::lifecycle::{ContainerLifecycle, Layout};
use pane_runtime::records::RecordStore;
use pane_runtime::shim_target::RuntimeTarget;
use pane_shim::endpoint::{Listener, endpoint};

/// A tmux server of this test's own, with one window running `command` in `dir`.
struct Terminal {
    socket: String,
    dir: PathBuf,
}

impl Terminal {
    fn start(dir: &Path, command: &str) -> Option<Self> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("skipped: tmux is not installed (CI installs it)");
            return None;
        }
        let socket = format!(
            "pane-test-{}-{}",
            std::process::id(),
            dir.display().to_string().len() + rand_suffix()
        );
        let terminal = Self {
            socket,
            dir: dir.to_owned(),
        };
        // The shell records the terminal's modes before and after pane, then waits, so the
        // window stays for capture.
        let script = format!(
            "stty -a > {dir}/stty.before; {command}; echo \"exit=$?\" > {dir}/pane.exit; stty -a > {dir}/stty.after; sleep 60",
            dir = dir.display()
        );
        let status = terminal
            .tmux(&[
                "new-session",
                "-d",
                "-x",
                "80",
                "-y",
                "24",
                "sh",
                "-c",
                &script,
            ])
            .status()
            .unwrap();
        assert!(status.success());
        Some(terminal)
    }

    fn tmux(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args);
        command
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        assert!(self.tmux(&args).status().unwrap().success());
    }

    fn type_text(&self, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-l", text])
                .status()
                .unwrap()
                .success()
        );
    }

    fn resize(&self, columns: u16, rows: u16) {
        let (x, y) = (columns.to_string(), rows.to_string());
        assert!(
            self.tmux(&["resize-window", "-x", &x, "-y", &y])
                .status()
                .unwrap()
                .success()
        );
    }

    fn screen(&self) -> String {
        let output = self.tmux(&["capture-pane", "-p"]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits for pane to end; its exit status.
    fn exit_status(&self) -> String {
        let path = self.dir.join("pane.exit");
        wait_for(|| path.exists(), "pane exits");
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&path).unwrap().trim().to_owned()
    }

    fn modes(&self, which: &str) -> String {
        let path = self.dir.join(format!("stty.{which}"));
        wait_for(|| path.exists(), "the terminal modes are recorded");
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(path).unwrap()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).status();
    }
}

fn rand_suffix() -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize)
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A container of the HCS double, created and started under `root` and served through
/// its shim there.
struct Served {
    hcs: Arc<FakeHcs>,
    runtime: Arc<ContainerLifecycle>,
    id: ContainerId,
    tokio: tokio::runtime::Runtime,
}

fn serve(root: &Path, name: &str, spec: &str) -> Served {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hcs = Arc::new(FakeHcs::default());
    let runtime = Arc::new(ContainerLifecycle::new(
        hcs.clone(),
        Arc::new(FakeLayers::default()),
        RecordStore::open(root).unwrap(),
        Layout {
            containers: root.join("containers"),
            owner: "pane".into(),
            host_processors: 4,
        },
    ));
    let id = ContainerId::new(name, 1);
    let spec = pane_spec::parse_service(spec).unwrap();
    tokio.block_on(async {
        runtime
            .create(&id, &spec, &fixtures::image(), &fixtures::chain())
            .await
            .unwrap();
        runtime.start(&id, &spec, &fixtures::image()).await.unwrap();
    });
    let _inside = tokio.enter();
    let listener = Listener::bind(&endpoint(root, &id.to_string())).unwrap();
    let target: Arc<dyn pane_shim::ShimTarget> =
        Arc::new(RuntimeTarget::new(runtime.clone(), id.clone()));
    tokio.spawn(async move {
        while let Ok(connection) = listener.accept().await {
            tokio::spawn(pane_shim::serve_connection(
                connection,
                Arc::clone(&target),
                env!("CARGO_PKG_VERSION"),
            ));
        }
    });
    Served {
        hcs,
        runtime,
        id,
        tokio,
    }
}

fn pane_command(root: &Path, args: &str) -> String {
    format!(
        "{} --root {} {args}",
        env!("CARGO_BIN_EXE_pane"),
        root.display()
    )
}

fn assert_restored(terminal: &Terminal) {
    let before = terminal.modes("before");
    let after = terminal.modes("after");
    assert!(
        before.contains(" icanon") && before.contains(" echo"),
        "the shell's terminal starts cooked: {before}"
    );
    // The first line is the speed and the window's size, which a test may change.
    let modes = |all: &str| all.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(
        modes(&before),
        modes(&after),
        "pane left the terminal as it found it"
    );
}

/// `pane exec -it job-1 -- cmd` in a terminal, once its console shows the prompt the
/// double's process printed (pane is in its session, raw mode on); with the exec's pid.
/// `None` when tmux is missing.
fn exec_it_session(root: &Path) -> Option<(Served, Terminal, u32)> {
    let served = serve(
        root,
        "job",
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\ncommand: {entrypoint: [ping, -t, localhost]}\n",
    );
    let terminal = Terminal::start(root, &pane_command(root, "exec -it job-1 -- cmd"))?;
    let hcs = &served.hcs;
    wait_for(
        || hcs.process_ids("job-1").len() == 2,
        "the exec's process starts",
    );
    let pid = hcs.process_ids("job-1")[1];
    served
        .tokio
        .block_on(hcs.write_stdout("job-1", pid, b"C:\\>"));
    wait_for(
        || terminal.screen().contains("C:\\>"),
        "the prompt is on the screen",
    );
    Some((served, terminal, pid))
}

#[test]
fn exec_it_is_a_raw_console_that_follows_the_window_and_detaches() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some((served, terminal, pid)) = exec_it_session(root) else {
        return;
    };
    let hcs = &served.hcs;
    let (size, _) = hcs
        .console_of("job-1", pid)
        .expect("the exec has a console");
    assert_eq!(size, [24, 80], "the console has the window's size");

    terminal.type_text("dir");
    terminal.send(&["Enter"]);
    let typed = served.tokio.block_on(hcs.read_stdin_exact("job-1", pid, 4));
    assert_eq!(
        typed, b"dir\r",
        "raw mode: the keys as typed, Enter as a carriage return"
    );
    terminal.send(&["C-c"]);
    let interrupt = served.tokio.block_on(hcs.read_stdin_exact("job-1", pid, 1));
    assert_eq!(interrupt, [0x03], "ctrl-c goes to the container as a byte");

    terminal.resize(100, 30);
    wait_for(
        || {
            hcs.console_of("job-1", pid)
                .is_some_and(|(_, resizes)| resizes.last() == Some(&[30, 100]))
        },
        "the resize reaches HCS",
    );

    served
        .tokio
        .block_on(hcs.write_stdout("job-1", pid, b"Volume in drive C has no label"));
    wait_for(
        || terminal.screen().contains("Volume in drive C"),
        "the output is on the screen",
    );

    terminal.send(&["C-p", "C-q"]);
    assert_eq!(terminal.exit_status(), "exit=0");
    assert!(
        hcs.is_running("job-1", pid),
        "the command runs on after the detach"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        served.tokio.block_on(hcs.stdin_is_open("job-1", pid)),
        "a detach leaves the console's input open, so cmd does not read its end"
    );
    assert!(
        terminal.screen().contains("detached"),
        "{}",
        terminal.screen()
    );
    assert_restored(&terminal);
}

#[test]
fn attach_joins_a_console_workload_and_ends_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let served = serve(
        root,
        "shell",
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\ntty: true\nstdin_open: true\ncommand: {entrypoint: [cmd]}\n",
    );
    let hcs = &served.hcs;
    let init = hcs.process_ids("shell-1")[0];
    served.tokio.block_on(hcs.write_stdout(
        "shell-1",
        init,
        b"Microsoft Windows [Version 10.0.20348]\r\nC:\\>",
    ));
    let Some(terminal) = Terminal::start(root, &pane_command(root, "attach shell-1")) else {
        return;
    };
    wait_for(
        || terminal.screen().contains("Microsoft Windows"),
        "what the workload printed before the attach is on the screen",
    );
    wait_for(
        || {
            hcs.console_of("shell-1", init)
                .is_some_and(|(_, resizes)| resizes.first() == Some(&[24, 80]))
        },
        "attaching sizes the console to the window",
    );
    terminal.type_text("ver");
    terminal.send(&["Enter"]);
    let typed = served
        .tokio
        .block_on(hcs.read_stdin_exact("shell-1", init, 4));
    assert_eq!(typed, b"ver\r");
    terminal.resize(120, 40);
    wait_for(
        || {
            hcs.console_of("shell-1", init)
                .is_some_and(|(_, resizes)| resizes.last() == Some(&[40, 120]))
        },
        "a resize while attached reaches HCS",
    );
    hcs.exit_process("shell-1", init, 9);
    assert_eq!(
        terminal.exit_status(),
        "exit=9",
        "pane ends with the workload's code"
    );
    assert_restored(&terminal);
    let _ = &served.id;
}

#[test]
fn a_terminated_pane_restores_the_terminal_and_leaves_the_command_running() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some((served, terminal, pid)) = exec_it_session(root) else {
        return;
    };
    let hcs = &served.hcs;
    // pane itself, not the shell whose command line holds it.
    let pattern = format!(
        "^{} --root {} exec",
        env!("CARGO_BIN_EXE_pane"),
        root.display()
    );
    let killed = Command::new("pkill")
        .args(["-TERM", "-f", &pattern])
        .status()
        .unwrap();
    assert!(killed.success(), "pane runs");
    assert_eq!(
        terminal.exit_status(),
        "exit=143",
        "as a shell reports SIGTERM"
    );
    assert!(
        terminal.screen().contains("ended by SIGTERM"),
        "{}",
        terminal.screen()
    );
    assert!(hcs.is_running("job-1", pid), "the command runs on");
    assert_restored(&terminal);
}

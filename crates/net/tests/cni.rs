//! The CNI client against real plugins (Debian's `containernetworking-plugins` in
//! `/usr/lib/cni`: `host-local`, `static`, `loopback`, `tuning`) and against small scripted
//! plugins for the error paths. CNI is the same exec protocol on every OS; these run on
//! Unix, where the plugins are.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers, not product code

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pane_net::cni::{
    Attachment, AttachmentCache, CniClient, CniError, ExecError, NetworkConfigList, PluginExec,
    find_network, load_dir,
};
use serde_json::{Value, json};

const SYSTEM_PLUGINS: &str = "/usr/lib/cni";

/// The real plugins are a test requirement (`.ci/test` installs them); say so plainly.
fn require_plugins() {
    assert!(
        Path::new(SYSTEM_PLUGINS).join("host-local").is_file(),
        "the real-plugin tests need Debian's containernetworking-plugins in {SYSTEM_PLUGINS} \
         (apt-get install containernetworking-plugins)"
    );
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        require_plugins();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn client(&self) -> CniClient {
        self.client_with_timeout(Duration::from_secs(20))
    }

    fn client_with_timeout(&self, timeout: Duration) -> CniClient {
        let mut exec = PluginExec::new(vec![self.path("bin"), PathBuf::from(SYSTEM_PLUGINS)]);
        exec.timeout = timeout;
        CniClient::new(exec, AttachmentCache::new(self.path("cache")))
    }

    /// A scripted plugin in the fixture's plugin directory.
    fn script(&self, name: &str, body: &str) {
        let path = self.path("bin").join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A plugin that records its command, environment and stdin, then prints `output`.
    fn recorder(&self, name: &str, output: &str) {
        let log = self.path(name).display().to_string();
        self.script(
            name,
            &format!(
                "cat > '{log}'.\"$CNI_COMMAND\".stdin\nenv | grep '^CNI_' | sort > '{log}'.\"$CNI_COMMAND\".env\ncat <<'EOF'\n{output}\nEOF"
            ),
        );
    }

    fn recorded_stdin(&self, name: &str, command: &str) -> Value {
        serde_json::from_slice(&fs::read(self.path(&format!("{name}.{command}.stdin"))).unwrap())
            .unwrap()
    }

    fn host_local(&self, subnet: &str) -> Value {
        json!({
            "type": "host-local",
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": subnet }]],
                "dataDir": self.path("ipam"),
            }
        })
    }

    /// The addresses host-local holds for `network` (its data directory names each
    /// reserved address by a file; `lock` and `last_reserved_ip.*` are bookkeeping).
    fn reserved(&self, network: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.path("ipam").join(network)) else {
            return Vec::new();
        };
        let mut ips: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
            .collect();
        ips.sort();
        ips
    }
}

fn list(name: &str, version: &str, plugins: &[Value]) -> NetworkConfigList {
    let json = json!({ "cniVersion": version, "name": name, "plugins": plugins });
    NetworkConfigList::from_json(
        &serde_json::to_vec(&json).unwrap(),
        Path::new("test.conflist"),
    )
    .unwrap()
}

fn attachment(container_id: &str) -> Attachment {
    Attachment {
        container_id: container_id.into(),
        netns: "/var/run/netns/none".into(),
        ifname: "eth0".into(),
        ..Attachment::default()
    }
}

#[test]
fn host_local_add_check_del_round_trip_leaves_no_address_and_no_cache() {
    let f = Fixture::new();
    let net = list("rt", "1.0.0", &[f.host_local("10.22.0.0/24")]);
    let client = f.client();
    let a = attachment("c1");

    let result = client.add(&net, &a).unwrap();
    assert_eq!(result.cni_version, "1.0.0");
    assert_eq!(result.ips.len(), 1);
    assert_eq!(result.ips[0].address, "10.22.0.2/24");
    assert_eq!(result.ips[0].gateway.as_deref(), Some("10.22.0.1"));
    assert!(
        !result.ips[0].other.contains_key("version"),
        "1.0 results have no IP version"
    );
    assert_eq!(f.reserved("rt"), ["10.22.0.2"]);

    let cached = client.cache().load("rt", "c1", "eth0").unwrap().unwrap();
    assert_eq!(cached.config, net.to_json());
    assert_eq!(
        cached.result.as_ref().unwrap()["ips"][0]["address"],
        "10.22.0.2/24"
    );

    client.check("rt", &a).unwrap();
    client.del(Some(&net), "rt", &a).unwrap();
    assert!(
        f.reserved("rt").is_empty(),
        "host-local still holds {:?}",
        f.reserved("rt")
    );
    assert!(client.cache().load("rt", "c1", "eth0").unwrap().is_none());
    // DEL again is no error: the cache is gone and host-local finds nothing to free.
    client.del(Some(&net), "rt", &a).unwrap();
}

#[test]
fn del_after_a_restart_uses_the_cached_configuration_even_when_the_file_changed() {
    let f = Fixture::new();
    let conf_dir = f.path("conf");
    fs::create_dir(&conf_dir).unwrap();
    let write_conf = |subnet: &str| {
        let json =
            json!({ "cniVersion": "1.0.0", "name": "restart", "plugins": [f.host_local(subnet)] });
        fs::write(conf_dir.join("10-restart.conflist"), json.to_string()).unwrap();
    };
    write_conf("10.23.0.0/24");
    let net = find_network(&conf_dir, "restart").unwrap().unwrap();
    f.client().add(&net, &attachment("c1")).unwrap();
    assert_eq!(f.reserved("restart"), ["10.23.0.2"]);

    // A new client (pane restarted), and the configuration now names another subnet.
    write_conf("10.99.0.0/24");
    let changed = find_network(&conf_dir, "restart").unwrap().unwrap();
    let restarted = f.client();
    restarted
        .del(Some(&changed), "restart", &attachment("c1"))
        .unwrap();
    assert!(
        f.reserved("restart").is_empty(),
        "leaked {:?}",
        f.reserved("restart")
    );

    // Without any configuration at all, the cache alone is enough too.
    f.client().add(&changed, &attachment("c2")).unwrap();
    assert_eq!(f.reserved("restart"), ["10.99.0.2"]);
    f.client().del(None, "restart", &attachment("c2")).unwrap();
    assert!(f.reserved("restart").is_empty());
}

#[test]
fn a_chain_passes_prev_result_and_capabilities_only_to_plugins_that_declare_them() {
    let f = Fixture::new();
    let final_result =
        r#"{"cniVersion":"1.0.0","ips":[{"address":"10.24.0.2/24"}],"custom":{"kept":true}}"#;
    f.recorder("wants-ports", final_result);
    f.recorder("plain", final_result);
    let net = list(
        "chain",
        "1.0.0",
        &[
            f.host_local("10.24.0.0/24"),
            json!({ "type": "wants-ports", "capabilities": { "portMappings": true }, "extra": 1 }),
            json!({ "type": "plain" }),
        ],
    );
    let mut a = attachment("c1");
    a.args = vec![
        ("K8S_POD_NAME".into(), "web".into()),
        ("IgnoreUnknown".into(), "1".into()),
    ];
    a.capability_args.insert(
        "portMappings".into(),
        json!([{ "hostPort": 8080, "containerPort": 80, "protocol": "tcp" }]),
    );
    a.capability_args
        .insert("dns".into(), json!({ "nameservers": ["10.0.0.10"] }));

    let client = f.client();
    let result = client.add(&net, &a).unwrap();
    assert_eq!(
        result.other["custom"],
        json!({ "kept": true }),
        "unknown result fields kept"
    );

    let first = f.recorded_stdin("wants-ports", "ADD");
    assert_eq!(first["name"], "chain");
    assert_eq!(first["cniVersion"], "1.0.0");
    assert_eq!(first["extra"], 1, "the plugin's own fields pass through");
    assert_eq!(first["prevResult"]["ips"][0]["address"], "10.24.0.2/24");
    assert_eq!(
        first["runtimeConfig"],
        json!({ "portMappings": a.capability_args["portMappings"] })
    );
    assert!(first.get("capabilities").is_none());

    let second = f.recorded_stdin("plain", "ADD");
    assert!(
        second.get("runtimeConfig").is_none(),
        "no capability declared, none passed"
    );
    assert_eq!(
        second["prevResult"]["custom"],
        json!({ "kept": true }),
        "prevResult as received"
    );

    let env = fs::read_to_string(f.path("plain.ADD.env")).unwrap();
    assert!(
        env.contains("CNI_ARGS=K8S_POD_NAME=web;IgnoreUnknown=1\n"),
        "{env}"
    );
    assert!(env.contains("CNI_COMMAND=ADD\n") && env.contains("CNI_CONTAINERID=c1\n"));
    assert!(env.contains("CNI_IFNAME=eth0\n") && env.contains("CNI_NETNS=/var/run/netns/none\n"));

    client.check("chain", &a).unwrap();
    assert_eq!(
        f.recorded_stdin("plain", "CHECK")["prevResult"],
        serde_json::to_value(&result).unwrap()
    );
    client.del(Some(&net), "chain", &a).unwrap();
    // DEL ran in reverse order with the cached result: host-local (last) freed the address.
    assert_eq!(
        f.recorded_stdin("plain", "DEL")["prevResult"]["custom"],
        json!({ "kept": true })
    );
    assert!(f.reserved("chain").is_empty());
}

#[test]
fn static_ipam_after_host_local_in_a_chain() {
    let f = Fixture::new();
    let net = list(
        "twoipam",
        "1.0.0",
        &[
            f.host_local("10.25.0.0/24"),
            json!({ "type": "static", "ipam": { "type": "static", "addresses": [{ "address": "10.26.0.9/24", "gateway": "10.26.0.1" }] } }),
        ],
    );
    let client = f.client();
    let result = client.add(&net, &attachment("c1")).unwrap();
    assert_eq!(
        result.ips[0].address, "10.26.0.9/24",
        "the last plugin's result is the chain's"
    );
    assert_eq!(f.reserved("twoipam"), ["10.25.0.2"]);
    client.check("twoipam", &attachment("c1")).unwrap();
    client
        .del(Some(&net), "twoipam", &attachment("c1"))
        .unwrap();
    assert!(f.reserved("twoipam").is_empty());
}

#[test]
fn a_failing_plugin_mid_chain_undoes_the_earlier_plugins_and_reports_its_error() {
    let f = Fixture::new();
    f.script(
        "fails",
        r#"cat >/dev/null; echo 'bridge exploded' >&2
if [ "$CNI_COMMAND" = DEL ]; then exit 0; fi
echo '{"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"10.0.0.0/33"}'; exit 1"#,
    );
    let net = list(
        "fail",
        "1.0.0",
        &[f.host_local("10.27.0.0/24"), json!({ "type": "fails" })],
    );
    let client = f.client();
    let err = client.add(&net, &attachment("c1")).unwrap_err();
    assert_eq!(
        err.plugin_error(),
        Some(("fails", 7, "bad subnet", "10.0.0.0/33"))
    );
    let text = err.to_string();
    assert!(
        text.contains("invalid network config") && text.contains("bridge exploded"),
        "{text}"
    );
    assert!(
        matches!(err, CniError::AddFailed { cleanup: None, .. }),
        "{err:?}"
    );
    assert!(
        f.reserved("fail").is_empty(),
        "host-local kept {:?}",
        f.reserved("fail")
    );
    assert!(client.cache().load("fail", "c1", "eth0").unwrap().is_none());
}

#[test]
fn a_hanging_plugin_is_killed_at_the_timeout() {
    let f = Fixture::new();
    f.script("hangs", "exec sleep 60");
    let net = list("hang", "1.0.0", &[json!({ "type": "hangs" })]);
    let client = f.client_with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = client.add(&net, &attachment("c1")).unwrap_err();
    let CniError::AddFailed { add, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(add.as_ref(), CniError::Exec { source, .. } if matches!(**source, ExecError::Timeout { .. })),
        "{err}"
    );
    // ADD and the undoing DEL each time out: well under the plugin's 60 seconds.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_timeout_also_kills_what_the_plugin_started() {
    let f = Fixture::new();
    let pid_file = f.path("helper.pid");
    f.script(
        "forks",
        &format!("sleep 60 & echo $! > '{}'; wait", pid_file.display()),
    );
    let client = f.client_with_timeout(Duration::from_millis(300));
    let net = list("forks", "1.0.0", &[json!({ "type": "forks" })]);
    client.add(&net, &attachment("c1")).unwrap_err();
    let pid = fs::read_to_string(&pid_file).unwrap();
    let stat = Path::new("/proc").join(pid.trim()).join("stat");
    let deadline = Instant::now() + Duration::from_secs(5);
    // Gone, or a zombie waiting for a parent that does not reap (PID 1 in some sandboxes).
    while fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            Instant::now() < deadline,
            "the plugin's helper {} still runs",
            pid.trim()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn endless_output_is_cut_at_the_limit() {
    let f = Fixture::new();
    f.script("chatty", "exec yes '{\"cniVersion\":\"1.0.0\"}'");
    let mut exec = PluginExec::new(vec![f.path("bin")]);
    exec.stdout_limit = 64 * 1024;
    let invocation = pane_net::cni::Invocation {
        command: "ADD",
        ..Default::default()
    };
    let err = exec.run("chatty", &invocation, b"{}").unwrap_err();
    assert!(
        matches!(err, ExecError::OutputTooLarge { limit: 65536, .. }),
        "{err}"
    );
}

#[test]
fn an_old_plugins_0_4_0_result_is_converted_to_the_configurations_version() {
    let f = Fixture::new();
    f.script(
        "old",
        r#"cat >/dev/null; echo '{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"x"}],"ips":[{"version":"4","address":"10.28.0.5/24","interface":0},{"version":"6","address":"fd00::5/64"}],"dns":{"nameservers":["1.1.1.1"]}}'"#,
    );
    let client = f.client();
    let result = client
        .add(
            &list("old", "1.0.0", &[json!({ "type": "old" })]),
            &attachment("c1"),
        )
        .unwrap();
    assert_eq!(result.cni_version, "1.0.0");
    assert_eq!(result.ips[0].interface, Some(0));
    assert!(
        result
            .ips
            .iter()
            .all(|ip| !ip.other.contains_key("version"))
    );
    assert_eq!(result.dns.nameservers, ["1.1.1.1"]);

    // And the other way: a 0.4.0 list reads a 1.0 result with the IP versions added.
    f.script(
        "new",
        r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":[{"address":"fd00::7/64"}]}'"#,
    );
    let result = client
        .add(
            &list("new", "0.4.0", &[json!({ "type": "new" })]),
            &attachment("c1"),
        )
        .unwrap();
    assert_eq!(result.ips[0].other["version"], "6");

    // The real host-local speaking 0.4.0 keeps its `version`.
    let net = list("hl04", "0.4.0", &[f.host_local("10.29.0.0/24")]);
    let result = client.add(&net, &attachment("c1")).unwrap();
    assert_eq!(result.cni_version, "0.4.0");
    assert_eq!(result.ips[0].other["version"], "4");
    client.check("hl04", &attachment("c1")).unwrap();
    client.del(Some(&net), "hl04", &attachment("c1")).unwrap();
    assert!(f.reserved("hl04").is_empty());
}

#[test]
fn version_asks_the_real_plugin_what_it_speaks() {
    let f = Fixture::new();
    let versions = f.client().plugin_versions("host-local").unwrap();
    // Debian's 1.1.1 plugins speak up to 1.0.0, not 1.1.0.
    assert!(
        versions.iter().any(|v| v == "0.4.0") && versions.iter().any(|v| v == "1.0.0"),
        "{versions:?}"
    );
    f.script("noversion", "cat >/dev/null; echo '{}'");
    let err = f
        .client()
        .plugin_versions("noversion")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("noversion") && err.contains("VERSION"),
        "{err}"
    );
}

#[test]
fn malformed_plugin_output_is_refused_with_the_plugins_name() {
    let f = Fixture::new();
    f.script("garbage", "cat >/dev/null; echo 'this is not json'");
    f.script(
        "wrongtype",
        r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":"nope"}'"#,
    );
    f.script(
        "ancient",
        r#"cat >/dev/null; echo '{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}'"#,
    );
    let client = f.client();
    for (plugin, expected) in [
        ("garbage", "not valid JSON"),
        ("wrongtype", "malformed"),
        ("ancient", "0.2.0 is not supported"),
    ] {
        let err = client
            .add(
                &list("bad", "1.0.0", &[json!({ "type": plugin })]),
                &attachment("c1"),
            )
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(plugin) && text.contains(expected),
            "{plugin}: {text}"
        );
    }
}

#[test]
fn a_plugin_that_exits_non_zero_without_an_error_object_keeps_its_stderr() {
    let f = Fixture::new();
    f.script(
        "crashes",
        "cat >/dev/null; echo 'segfault at 0' >&2; exit 2",
    );
    let err = f
        .client()
        .add(
            &list("crash", "1.0.0", &[json!({ "type": "crashes" })]),
            &attachment("c1"),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("segfault at 0") && text.contains("without an error object"),
        "{text}"
    );
}

#[test]
fn status_and_gc_only_from_1_1_0_and_gc_names_the_valid_attachments() {
    let f = Fixture::new();
    f.recorder("modern", r#"{"cniVersion":"1.1.0"}"#);
    let client = f.client();
    let net = list("modern", "1.1.0", &[json!({ "type": "modern" })]);
    client.add(&net, &attachment("keep")).unwrap();
    client.add(&net, &attachment("stale")).unwrap();
    client.status(&net).unwrap();
    let env = fs::read_to_string(f.path("modern.STATUS.env")).unwrap();
    assert!(
        env.contains("CNI_COMMAND=STATUS") && !env.contains("CNI_CONTAINERID"),
        "{env}"
    );

    client.gc(&net, &[("keep".into(), "eth0".into())]).unwrap();
    let gc = f.recorded_stdin("modern", "GC");
    assert_eq!(
        gc["cni.dev/valid-attachments"],
        json!([{ "containerID": "keep", "ifname": "eth0" }])
    );
    let left: Vec<String> = client
        .cache()
        .list("modern")
        .unwrap()
        .into_iter()
        .map(|a| a.container_id)
        .collect();
    assert_eq!(left, ["keep"]);

    let old = list("older", "1.0.0", &[json!({ "type": "modern" })]);
    assert!(matches!(
        client.status(&old),
        Err(CniError::Unsupported {
            command: "STATUS",
            ..
        })
    ));
    assert!(matches!(
        client.gc(&old, &[]),
        Err(CniError::Unsupported { command: "GC", .. })
    ));
}

#[test]
fn a_status_error_carries_the_well_known_code() {
    let f = Fixture::new();
    f.script(
        "down",
        r#"cat >/dev/null; echo '{"cniVersion":"1.1.0","code":50,"msg":"no uplink"}'; exit 1"#,
    );
    let err = f
        .client()
        .status(&list("down", "1.1.0", &[json!({ "type": "down" })]))
        .unwrap_err();
    assert_eq!(err.plugin_error(), Some(("down", 50, "no uplink", "")));
    assert!(
        err.to_string().contains("the plugin is not available"),
        "{err}"
    );
}

#[test]
fn configuration_directory_loading_and_located_errors() {
    let f = Fixture::new();
    let dir = f.path("conf");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("10-a.conflist"),
        r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    fs::write(
        dir.join("20-b.conf"),
        r#"{"cniVersion":"0.4.0","name":"b","type":"host-local","ipam":{}}"#,
    )
    .unwrap();
    fs::write(dir.join("README.md"), "not a config").unwrap();
    let lists = load_dir(&dir).unwrap();
    assert_eq!(
        lists.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let b = find_network(&dir, "b").unwrap().unwrap();
    assert_eq!(b.plugins[0].plugin_type, "host-local");
    assert_eq!(b.cni_version, "0.4.0");
    assert!(find_network(&dir, "nope").unwrap().is_none());
    assert!(load_dir(&f.path("missing")).unwrap().is_empty());

    let bad = |file: &str, contents: &str, expected: &str| {
        let bad_dir = f.path(&format!("bad-{file}"));
        fs::create_dir(&bad_dir).unwrap();
        fs::write(bad_dir.join(file), contents).unwrap();
        let text = load_dir(&bad_dir).unwrap_err().to_string();
        assert!(
            text.contains(file) && text.contains(expected),
            "{file}: {text}"
        );
    };
    bad(
        "x.conflist",
        r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../../bin/sh"}]}"#,
        "field `plugins[0].type`",
    );
    bad(
        "y.conflist",
        r#"{"cniVersion":"1.0.0","name":"y","plugins":[{"ipam":{}}]}"#,
        "field `plugins[0].type`: missing",
    );
    bad(
        "z.conflist",
        r#"{"cniVersion":"9.9.9","name":"z","plugins":[{"type":"a"}]}"#,
        "field `cniVersion`",
    );
    bad(
        "n.conflist",
        r#"{"cniVersion":"1.0.0","name":"bad/name","plugins":[{"type":"a"}]}"#,
        "field `name`",
    );
    bad(
        "c.conflist",
        r#"{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"a","capabilities":{"ips":"yes"}}]}"#,
        "capabilities.ips",
    );
    bad("j.conf", "{ not json", "not valid JSON");
    bad("big.conflist", &" ".repeat(1024 * 1024 + 1), "larger than");
}

#[test]
fn attachment_names_that_could_escape_the_cache_are_refused() {
    let f = Fixture::new();
    let net = list("safe", "1.0.0", &[f.host_local("10.30.0.0/24")]);
    let client = f.client();
    for (container, ifname) in [
        ("../etc", "eth0"),
        ("c1", "../x"),
        ("c1", "a/b"),
        ("", "eth0"),
        ("c1", "waytoolonginterface"),
    ] {
        let mut a = attachment(container);
        a.ifname = ifname.into();
        assert!(
            matches!(client.add(&net, &a), Err(CniError::Invalid { .. })),
            "{container:?} {ifname:?}"
        );
    }
    let mut a = attachment("c1");
    a.args = vec![("A".into(), "1;B=2".into())];
    assert!(matches!(
        client.add(&net, &a),
        Err(CniError::Invalid { .. })
    ));
    assert!(f.reserved("safe").is_empty());
    let missing = list("missing", "1.0.0", &[json!({ "type": "no-such-plugin" })]);
    let err = client
        .add(&missing, &attachment("c1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-plugin") && err.contains("not found"),
        "{err}"
    );
}

/// loopback then tuning in a real network namespace, when this machine lets us make one.
#[test]
fn loopback_and_tuning_in_a_real_network_namespace() {
    let f = Fixture::new();
    let name = format!("pane-cni-test-{}", std::process::id());
    let made = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status();
    if !matches!(made, Ok(s) if s.success()) {
        eprintln!("skipped: `ip netns add` is not possible here (needs root and the ip tool)");
        return;
    }
    let mut a = attachment("c1");
    a.netns = format!("/var/run/netns/{name}");
    a.ifname = "lo".into();
    // tuning changes the interface the previous plugin reported, inside the namespace.
    let net = list(
        "lo",
        "1.0.0",
        &[
            json!({ "type": "loopback" }),
            json!({ "type": "tuning", "mtu": 9000 }),
        ],
    );
    let client = f.client();
    let mtu = |netns: &str| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", netns, "cat", "/sys/class/net/lo/mtu"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut mtu_after_add = String::new();
    let outcome = client.add(&net, &a).and_then(|result| {
        mtu_after_add = mtu(&name);
        client.check("lo", &a)?;
        client.del(Some(&net), "lo", &a)?;
        Ok(result)
    });
    let mtu_after_del = mtu(&name);
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &name])
        .status();
    let result = outcome.unwrap();
    assert_eq!(mtu_after_add, "9000", "tuning set the MTU in the namespace");
    assert_eq!(mtu_after_del, "65536", "tuning's DEL restored it");
    assert_eq!(result.interfaces[0].name, "lo");
    assert_eq!(
        result.interfaces[0].sandbox.as_deref(),
        Some(a.netns.as_str())
    );
}

#[test]
fn a_second_add_of_one_attachment_is_refused_so_the_first_address_is_not_lost() {
    let f = Fixture::new();
    let net = list("twice", "1.0.0", &[f.host_local("10.23.0.0/24")]);
    let client = f.client();
    let a = attachment("c1");
    client.add(&net, &a).unwrap();
    let err = client.add(&net, &a).unwrap_err();
    assert!(matches!(err, CniError::AlreadyAttached { .. }), "{err}");
    assert_eq!(f.reserved("twice"), ["10.23.0.2"], "no second address");
    client.del(None, "twice", &a).unwrap();
    assert!(f.reserved("twice").is_empty());
}

#[test]
fn an_unusable_file_does_not_hide_other_networks_unless_it_claims_the_name() {
    let f = Fixture::new();
    let dir = f.path("conf");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("10-broken.conflist"), "{ not json").unwrap();
    fs::write(
        dir.join("20-claims.conflist"),
        r#"{"cniVersion":"9.9.9","name":"wanted","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    fs::write(
        dir.join("30-good.conflist"),
        r#"{"cniVersion":"1.0.0","name":"good","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    fs::write(
        dir.join("40-wanted.conflist"),
        r#"{"cniVersion":"1.0.0","name":"wanted","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    assert_eq!(find_network(&dir, "good").unwrap().unwrap().name, "good");
    // The first file naming `wanted` is broken; libcni would have used it, so its error
    // is the answer rather than the later file.
    let err = find_network(&dir, "wanted").unwrap_err();
    assert!(
        err.file.ends_with("20-claims.conflist") && err.field == "cniVersion",
        "{err}"
    );
    let scan = pane_net::cni::scan_dir(&dir).unwrap();
    assert_eq!(scan.lists.len(), 2);
    assert_eq!(scan.broken.len(), 2);
    assert!(load_dir(&dir).is_err(), "the strict load still fails");
}

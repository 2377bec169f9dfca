//! The spec read end to end from YAML text and from the example files.

use std::path::PathBuf;

use pane_spec::{
    Diagnostic, GpuSharing, GpuVendor, IsolationMode, Protocol, PullPolicy, RegistryAuthRef,
    SpecError, SpecFile, parse, parse_deployment, parse_service,
};

fn problems(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Err(SpecError::Invalid(diagnostics)) => diagnostics,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

fn paths(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics.iter().map(|d| d.path.to_string()).collect()
}

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_is_valid() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            pane_spec::load(&path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected the three examples, found {seen}");
}

#[test]
fn reads_every_field_of_a_deployment() {
    let SpecFile::Deployment(deployment) =
        pane_spec::load(&examples_dir().join("iis-servercore.yaml")).unwrap()
    else {
        panic!("iis-servercore.yaml is a deployment");
    };
    assert_eq!(deployment.deployment, "storefront");
    let web = &deployment.services["web"];
    assert_eq!(
        web.image.name.to_string(),
        "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022"
    );
    assert_eq!(web.image.pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(
        web.command.entrypoint.as_deref(),
        Some(&[r"C:\ServiceMonitor.exe".to_owned()][..])
    );
    assert_eq!(web.command.args.as_deref(), Some(&["w3svc".to_owned()][..]));
    assert_eq!(web.command.workdir.as_deref(), Some(r"C:\inetpub\wwwroot"));
    assert_eq!(web.env["APP_MODE"], "production");
    assert_eq!(web.hostname.as_deref(), Some("storefront-web"));
    assert_eq!(web.isolation, IsolationMode::Auto);
    assert_eq!(web.resources.cpu.unwrap().millicores(), 2000);
    assert_eq!(web.resources.memory.unwrap().bytes(), 2 << 30);
    assert!(web.mounts[0].read_only);
    assert_eq!(web.ports[0].host_port, Some(8080));
    assert_eq!(web.ports[0].protocol, Protocol::Tcp);
    assert_eq!(web.networks, ["frontend"]);
}

#[test]
fn reads_a_single_service_file_with_defaults() {
    let spec = parse_service("image: mcr.microsoft.com/windows/nanoserver:ltsc2022\n").unwrap();
    assert_eq!(spec.isolation, IsolationMode::Auto);
    assert_eq!(spec.image.pull_policy, PullPolicy::IfNotPresent);
    assert!(spec.command.is_empty() && spec.env.is_empty() && spec.mounts.is_empty());
    assert!(
        !spec.tty && !spec.stdin_open,
        "no console and no open input by default"
    );
}

#[test]
fn an_interactive_service_keeps_its_console_and_input() {
    let spec = parse_service(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\ntty: true\nstdin_open: true\n",
    )
    .unwrap();
    assert!(spec.tty && spec.stdin_open);
    let found = problems("image: mcr.microsoft.com/windows/nanoserver:ltsc2022\ntty: on-demand\n");
    assert_eq!(paths(&found), ["tty"], "{found:?}");
}

#[test]
fn reads_gpu_auth_and_numeric_env_values() {
    let SpecFile::Deployment(deployment) =
        pane_spec::load(&examples_dir().join("gpu-hyperv.yaml")).unwrap()
    else {
        panic!("gpu-hyperv.yaml is a deployment");
    };
    let render = &deployment.services["render"];
    let gpu = render.resources.gpu.as_ref().unwrap();
    assert_eq!(
        (gpu.count, gpu.vendor, gpu.sharing),
        (1, GpuVendor::Nvidia, GpuSharing::Exclusive)
    );
    assert_eq!(gpu.model.as_deref(), Some("A6000"));
    assert_eq!(render.env["RENDER_THREADS"], "8");
    assert_eq!(
        render.image.auth,
        Some(RegistryAuthRef::Env {
            username_env: "RENDERS_REGISTRY_USER".into(),
            password_env: "RENDERS_REGISTRY_TOKEN".into()
        })
    );
}

#[test]
fn five_mistakes_give_five_located_problems() {
    let text = "\
version: v1
deployment: shop
services:
  web:
    image: Nginx:latest
    isolation: hyper-v
    resouces:
      memory: 12XB
    ports:
      - 70000
  worker:
    image: mcr.microsoft.com/windows/nanoserver:ltsc2022
    resources:
      cpu: -1
";
    let found = problems(text);
    assert_eq!(
        paths(&found),
        [
            "services.web.image",
            "services.web.isolation",
            "services.web.resouces",
            "services.web.ports[0]",
            "services.worker.resources.cpu",
        ],
        "{found:#?}"
    );
    assert!(found.iter().all(|d| d.position.is_some()));
    assert_eq!(found[0].position.unwrap().line, 5);
    assert!(
        found[1].fix.contains("did you mean \"hyperv\""),
        "{}",
        found[1]
    );
    assert!(
        found[2].fix.contains("did you mean \"resources\""),
        "{}",
        found[2]
    );
    assert!(found[4].problem.contains("negative"), "{}", found[4]);
}

#[test]
fn bad_sizes_name_the_field_the_value_and_the_fix() {
    let found = problems("image: nginx\nresources:\n  memory: 12XB\n");
    assert_eq!(found.len(), 1);
    let message = found[0].to_string();
    assert_eq!(found[0].path.as_str(), "resources.memory");
    assert!(message.contains("\"12XB\""), "{message}");
    assert!(message.contains("expected a size like 512Mi"), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn required_fields_and_wrong_types_are_reported() {
    let found = problems("version: v2\nservices:\n  web:\n    command: {args: run}\n");
    assert_eq!(
        paths(&found),
        [
            "deployment",
            "version",
            "services.web.image",
            "services.web.command.args"
        ],
        "{found:#?}"
    );
}

#[test]
fn unknown_fields_without_a_near_match_list_the_known_ones() {
    let found = problems("image: nginx\nreplicas: 3\n");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].fix.contains("known fields here: image, command"),
        "{}",
        found[0]
    );
}

#[test]
fn mounts_ports_and_env_are_checked_as_a_whole() {
    let text = r#"
image: nginx
env:
  Path: 'C:\bin'
  PATH: 'C:\other'
  EMPTY:
mounts:
  - {source: 'C:\a', target: 'C:\data'}
  - {source: 'C:\b', target: 'c:\DATA'}
  - {source: relative, target: 'C:\'}
  - {source: '\\.\pipe\docker_engine', target: 'C:\pipe'}
ports:
  - "8080:80"
  - {container_port: 81, host_port: 8080}
  - "8080:80/udp"
  - "x:80"
networks: [backend, backend, Bad_Name]
"#;
    let found = problems(text);
    assert_eq!(
        paths(&found),
        [
            "env.PATH",
            "env.EMPTY",
            "mounts[1].target",
            "mounts[2].source",
            "mounts[2].target",
            "mounts[3].target",
            "ports[1]",
            "ports[3]",
            "networks[1]",
            "networks[2]",
        ],
        "{found:#?}"
    );
}

#[test]
fn auth_must_name_exactly_one_source() {
    let found = problems("image: {name: nginx, auth: {username_env: U}}\n");
    assert_eq!(paths(&found), ["image.auth"]);
    let found = problems(
        "image: {name: nginx, auth: {username_env: U, password_env: P, docker_config: x}}\n",
    );
    assert_eq!(paths(&found), ["image.auth"]);
    let spec = parse_service("image: {name: nginx, auth: docker_config}\n").unwrap();
    assert_eq!(
        spec.image.auth,
        Some(RegistryAuthRef::DockerConfig { path: None })
    );
}

#[test]
fn yaml_syntax_errors_are_one_located_problem() {
    let err = parse("image: [nginx\n").unwrap_err();
    assert!(matches!(err, SpecError::Syntax(_)));
    let diagnostics = err.diagnostics();
    assert_eq!(diagnostics.len(), 1);
    assert!(diagnostics[0].position.is_some());
}

#[test]
fn empty_and_non_mapping_documents_are_refused() {
    assert_eq!(paths(&problems("")), ["(document)"]);
    assert_eq!(paths(&problems("- a\n- b\n")), ["(document)"]);
    assert!(parse_deployment("image: nginx\n").is_err());
}

#[test]
fn serialised_specs_parse_back_to_the_same_spec() {
    for name in [
        "iis-servercore.yaml",
        "gpu-hyperv.yaml",
        "nanoserver-batch.yaml",
    ] {
        let original = pane_spec::load(&examples_dir().join(name)).unwrap();
        let json = match &original {
            SpecFile::Deployment(d) => serde_json::to_string(d).unwrap(),
            SpecFile::Service(s) => serde_json::to_string(s).unwrap(),
        };
        // JSON is YAML, so the serialised form goes back through the same validating parser.
        assert_eq!(parse(&json).unwrap(), original, "{name}: {json}");
    }
}

#[test]
fn storage_sizes_the_scratch_disk_and_cannot_shrink_it() {
    let SpecFile::Service(spec) = parse("image: nginx\nresources:\n  storage: 40Gi\n").unwrap()
    else {
        panic!("a single-service file");
    };
    assert_eq!(spec.resources.storage.unwrap().bytes(), 40 << 30);
    let found = problems("image: nginx\nresources:\n  storage: 10Gi\n");
    assert_eq!(paths(&found), ["resources.storage"]);
    assert!(found[0].fix.contains("20Gi or more"), "{}", found[0]);
    let found = problems("image: nginx\nresources:\n  storage: 40GB\n");
    assert!(found[0].fix.contains("binary units"), "{}", found[0]);
}

#[test]
fn a_utility_vm_keeps_the_hosts_time_zone_unless_told_utc() {
    let default = parse_service("image: nanoserver\n").unwrap();
    assert_eq!(default.time_zone, pane_spec::TimeZoneMode::Host);
    let utc = parse_service("image: nanoserver\ntime_zone: utc\n").unwrap();
    assert_eq!(utc.time_zone, pane_spec::TimeZoneMode::Utc);
    // A recorded spec is read back the same way.
    let again = parse_service(&serde_json::to_string(&utc).unwrap()).unwrap();
    assert_eq!(again.time_zone, pane_spec::TimeZoneMode::Utc);
    let wrong = problems("image: nanoserver\ntime_zone: pst\n");
    assert_eq!(paths(&wrong), ["time_zone"]);
}

//! `pane plan`: what pane would ask HCS and the guest to do for a spec, without a host.

use std::path::Path;
use std::process::ExitCode;

use pane_oci::OciLayout;
use pane_runtime::gpu::GpuAdapter;
use pane_runtime::host_files::LocalFiles;
use pane_runtime::plan::{HostValues, Plan, PlanInput, plan};
use pane_runtime::{ContainerId, host};
use pane_spec::{OsVersion, ServiceSpec, SpecFile};

use crate::cli::{GlobalArgs, PlanArgs};
use crate::exit;

type Failure = Box<dyn std::error::Error>;

pub fn run(global: &GlobalArgs, args: &PlanArgs) -> Result<ExitCode, Failure> {
    let services = match pane_spec::load(&args.file) {
        Ok(file) => select_services(file, args)?,
        Err(e) => {
            eprintln!("pane: {e}");
            for problem in match &e {
                pane_spec::LoadError::Spec { source, .. } => source.diagnostics(),
                pane_spec::LoadError::Read { .. } => Vec::new(),
            } {
                eprintln!("  {problem}");
            }
            return Ok(ExitCode::from(exit::INVALID_INPUT));
        }
    };
    let host_build = host_build(args)?;
    let gpu_adapters = args
        .gpu_adapters
        .as_deref()
        .map(read_adapters)
        .transpose()?;
    let root = windows_root(global);
    let on_windows = cfg!(windows);
    // Off Windows the host is described, not asked: its time zone is left as a placeholder.
    let host_time_zone = on_windows.then(host::time_zone);
    let host_processors = args.host_processors.unwrap_or_else(|| {
        if on_windows {
            host::processor_count()
        } else {
            4
        }
    });
    let cni = pane_runtime::cni_networks::CniNetworks::open(
        &global.root,
        &global.owner,
        crate::host_runtime::cni_settings(global),
    );
    let mut plans = Vec::new();
    for (name, mut spec) in services {
        if let Some(isolation) = args.isolation {
            spec.isolation = isolation.into();
        }
        let image = resolve_image(global, args, &spec, host_build.as_ref())?;
        let id = ContainerId::new(name, args.replica);
        let input = PlanInput {
            id: &id,
            spec: &spec,
            image: &image,
            host_build,
            host_processors,
            host_time_zone: host_time_zone.as_ref(),
            gpu_adapters: gpu_adapters.as_deref(),
            files: &LocalFiles,
            root: &root,
            owner: &global.owner,
            host: HostValues::default(),
            cni: Some(&cni),
        };
        match plan(&input) {
            Ok(plan) => plans.push(plan),
            Err(e) => {
                eprintln!("pane: cannot plan {id}: {e}");
                return Ok(ExitCode::from(exit::INVALID_INPUT));
            }
        }
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    } else {
        for plan in &plans {
            print_plan(plan, args.brief);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The spec's image from `--image-layout`, else from the local store.
fn resolve_image(
    global: &GlobalArgs,
    args: &PlanArgs,
    spec: &ServiceSpec,
    host_build: Option<&OsVersion>,
) -> Result<pane_oci::ImageFacts, Failure> {
    if let Some(dir) = &args.image_layout {
        let mut image =
            OciLayout::open(dir)?.resolve(spec.image.name.tag(), "amd64", host_build)?;
        image.reference = format!("{} (from {})", spec.image.name, dir.display());
        return Ok(image);
    }
    let store = super::images::store(&global.root)?;
    let record = store.image(&spec.image.name.to_string()).map_err(|_| {
        format!(
            "{} is not in the local store under {}; run `pane pull {}` or pass --image-layout DIR",
            spec.image.name,
            global.root.display(),
            spec.image.name.familiar()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    Ok(runtime.block_on(store.image_facts(&record))?)
}

fn select_services(file: SpecFile, args: &PlanArgs) -> Result<Vec<(String, ServiceSpec)>, Failure> {
    let services: Vec<(String, ServiceSpec)> = match file {
        SpecFile::Service(spec) => {
            let stem = args
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("service");
            vec![(super::container_source::sanitize(stem), spec)]
        }
        SpecFile::Deployment(deployment) => deployment.services.into_iter().collect(),
    };
    match &args.service {
        None => Ok(services),
        Some(wanted) => {
            let names: Vec<String> = services.iter().map(|(n, _)| n.clone()).collect();
            let found: Vec<_> = services.into_iter().filter(|(n, _)| n == wanted).collect();
            if found.is_empty() {
                return Err(format!(
                    "no service {wanted:?} in {}; it has: {}",
                    args.file.display(),
                    names.join(", ")
                )
                .into());
            }
            Ok(found)
        }
    }
}

fn host_build(args: &PlanArgs) -> Result<Option<OsVersion>, Failure> {
    if let Some(text) = &args.host_build {
        return Ok(Some(
            text.parse().map_err(|e| format!("--host-build: {e}"))?,
        ));
    }
    Ok(host::probe().os_version)
}

fn read_adapters(path: &Path) -> Result<Vec<GpuAdapter>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --gpu-adapters {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("--gpu-adapters {}: {e}; expected a JSON list of {{description, vendor_id, device_id, luid}}", path.display()).into())
}

/// Plans describe a Windows host, so the root is a Windows path even when planning on Linux.
fn windows_root(global: &GlobalArgs) -> String {
    let root = global.root.to_string_lossy();
    if cfg!(windows) || root.contains('\\') || root.contains(':') {
        root.into_owned()
    } else {
        r"C:\ProgramData\pane".to_owned()
    }
}

fn print_plan(plan: &Plan, brief: bool) {
    println!("plan for {}", plan.container);
    println!("  image      {} ({})", plan.image, plan.manifest);
    println!(
        "  built for  {}",
        plan.image_build
            .as_deref()
            .unwrap_or("unknown Windows build")
    );
    println!(
        "  host       {}",
        plan.host_build.as_deref().unwrap_or("unknown build")
    );
    println!("  isolation  {}", plan.isolation);
    if !plan.gpus.is_empty() {
        let names: Vec<&str> = plan.gpus.iter().map(|g| g.description.as_str()).collect();
        println!("  gpus       {}", names.join(", "));
    }
    println!("  process    {}", plan.process.command_line);
    println!("  steps");
    for (number, step) in plan.steps.iter().enumerate() {
        println!(
            "  {:>3}. [{}] {} {} — {}",
            number + 1,
            step.api,
            step.call,
            step.target,
            step.why
        );
        if let (Some(document), false) = (&step.document, brief) {
            let text = serde_json::to_string_pretty(document).unwrap_or_default();
            for line in text.lines() {
                println!("         {line}");
            }
        }
    }
    for note in &plan.notes {
        println!("  note: {note}");
    }
    println!();
}

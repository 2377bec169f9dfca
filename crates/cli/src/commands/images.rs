//! Image commands: `pull`, `images`, `rmi`, `tag`, `image prune`.

use std::path::Path;
use std::process::ExitCode;

use pane_oci::credentials::CredentialSource;
use pane_oci::pull::{PullOptions, Puller, Quiet};
use pane_oci::registry::{RegistryClient, RegistryOptions};
use pane_oci::store::ContentStore;
use pane_runtime::images::{ImageService, ImageSettings};
use pane_runtime::records::RecordStore;
use pane_spec::ImageReference;
use serde::Serialize;

use crate::cli::{GlobalArgs, LoadArgs, PullArgs, RmiArgs, SaveArgs, TagArgs};
use crate::exit;
use crate::progress::PullProgress;

type Failure = Box<dyn std::error::Error>;

pub fn store(root: &Path) -> Result<ContentStore, Failure> {
    // The root is secured before its first child: `layers/` beside the content store is
    // trusted as much as the blobs.
    pane_oci::store::secure_root(root)?;
    Ok(ContentStore::open(&root.join("content"))?)
}

/// The image service over the stores under `root`, for removals: its prune keeps what
/// image references, containers and pulls in progress use, blobs and layers alike.
fn image_service(root: &Path) -> Result<ImageService, Failure> {
    Ok(ImageService::open(root, ImageSettings::default())?)
}

fn parse_reference(text: &str) -> Result<ImageReference, String> {
    text.parse::<ImageReference>()
        .map_err(|e| format!("{text:?} is not an image reference: {e}; {}", e.fix()))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn pull(global: &GlobalArgs, args: &PullArgs) -> Result<ExitCode, Failure> {
    let reference = match parse_reference(&args.reference) {
        Ok(reference) => reference,
        Err(message) => {
            eprintln!("pane: {message}");
            return Ok(ExitCode::from(exit::INVALID_INPUT));
        }
    };
    let host_build = match &args.host_build {
        Some(text) => Some(text.parse().map_err(|e| format!("--host-build: {e}"))?),
        None => pane_runtime::host::probe().os_version,
    };
    let mut credentials = CredentialSource::standard();
    if let Some(path) = &args.docker_config {
        credentials.docker_config = Some(path.clone());
    }
    let client = RegistryClient::new(RegistryOptions {
        insecure: args.insecure_registry.clone(),
        credentials,
        read_timeout: std::time::Duration::from_secs(global.registry_timeout),
        ..RegistryOptions::default()
    })?;
    let images = ImageService::open(
        &global.root,
        ImageSettings {
            read_timeout: std::time::Duration::from_secs(global.registry_timeout),
            ..ImageSettings::default()
        },
    )?;
    let puller = Puller::new(client, store(&global.root)?).unpacking_into(images.layer_sink());
    let options = PullOptions {
        host_build,
        concurrency: args.concurrency,
        allow_foreign_layers: args.allow_nondistributable_artifacts,
        ..PullOptions::default()
    };
    let progress = PullProgress::new(global.json || global.quiet > 0);
    let runtime = runtime()?;
    let record = runtime.block_on(async {
        if global.json {
            puller.pull(&reference, &options, &Quiet).await
        } else {
            puller.pull(&reference, &options, &progress).await
        }
    })?;
    // The pull ends with a runnable image: on Windows its layers are imported into HCS
    // (base first; minutes for a base layer), elsewhere this checks they are unpacked.
    if cfg!(windows) && !global.json && global.quiet == 0 {
        eprintln!("importing layers into HCS…");
    }
    runtime.block_on(async {
        let facts = images.content().image_facts(&record).await?;
        images.chain(&facts).await?;
        Ok::<_, Failure>(())
    })?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        println!(
            "pulled {} ({}, Windows {})",
            record.reference,
            record.manifest,
            record.os_version.as_deref().unwrap_or("build unknown")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ImageRow {
    reference: String,
    manifest: String,
    os_version: Option<String>,
    size_bytes: u64,
}

pub fn images(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let store = store(&global.root)?;
    let rows: Vec<ImageRow> = store
        .images()?
        .into_iter()
        .map(|record| ImageRow {
            size_bytes: store.image_size(&record),
            reference: record.reference,
            manifest: record.manifest,
            os_version: record.os_version,
        })
        .collect();
    if global.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<60} {:<19} {:<18} {:>10}",
        "REFERENCE", "MANIFEST", "OS VERSION", "SIZE"
    );
    for row in rows {
        let manifest = row.manifest.get(..19).unwrap_or(&row.manifest);
        println!(
            "{:<60} {manifest:<19} {:<18} {:>10}",
            row.reference,
            row.os_version.unwrap_or_default(),
            human(row.size_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes references, then the blobs and layers nothing else uses. A reference whose
/// image a container was made from is refused unless forced, as `docker rmi` refuses.
pub fn rmi(global: &GlobalArgs, args: &RmiArgs) -> Result<ExitCode, Failure> {
    let store = store(&global.root)?;
    let runtime = runtime()?;
    let containers = RecordStore::open(&global.root)?.list()?;
    let references: Vec<String> = args
        .references
        .iter()
        .map(|text| parse_reference(text).map_or_else(|_| text.clone(), |r| r.to_string()))
        .collect();
    // Every reference is checked before any is removed: a refusal leaves all of them.
    for reference in &references {
        let record = store.image(reference)?;
        let users: Vec<String> = containers
            .iter()
            .filter(|c| c.image_manifest.as_deref() == Some(record.manifest.as_str()))
            .map(|c| c.id.to_string())
            .collect();
        if !users.is_empty() && !args.force {
            eprintln!(
                "pane: {reference} is the image of container(s) {}: remove them first (`pane \
                 rm`), or remove the reference anyway with --force (what they use stays until \
                 they are removed)",
                users.join(", ")
            );
            return Ok(ExitCode::from(exit::FAILURE));
        }
    }
    for reference in &references {
        runtime.block_on(store.untag(reference))?;
    }
    let in_use = RecordStore::open(&global.root)?.images_in_use()?;
    let pruned = runtime.block_on(image_service(&global.root)?.prune(&in_use))?;
    if global.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "untagged": references,
                "deleted": pruned.content.blobs,
                "layers_removed": pruned.layers,
                "space_reclaimed": pruned.content.bytes
            }))?
        );
    } else {
        for reference in references {
            println!("untagged {reference}");
        }
        println!(
            "deleted {} blobs, {} reclaimed",
            pruned.content.blobs.len(),
            human(pruned.content.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn tag(global: &GlobalArgs, args: &TagArgs) -> Result<ExitCode, Failure> {
    let (source, target) = match (parse_reference(&args.source), parse_reference(&args.target)) {
        (Ok(source), Ok(target)) => (source.to_string(), target.to_string()),
        (Err(message), _) | (_, Err(message)) => {
            eprintln!("pane: {message}");
            return Ok(ExitCode::from(exit::INVALID_INPUT));
        }
    };
    runtime()?.block_on(store(&global.root)?.tag(&source, &target))?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({"source": source, "target": target})
        );
    } else {
        println!("tagged {source} as {target}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the blobs and layers that no image reference, no container and no pull in
/// progress uses.
pub fn prune(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let runtime = runtime()?;
    let in_use = RecordStore::open(&global.root)?.images_in_use()?;
    let pruned = runtime
        .block_on(image_service(&global.root)?.prune(&in_use))?
        .content;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&pruned)?);
    } else {
        println!(
            "deleted {} blobs, {} reclaimed",
            pruned.blobs.len(),
            human(pruned.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn load(global: &GlobalArgs, args: &LoadArgs) -> Result<ExitCode, Failure> {
    let host_build = match &args.host_build {
        Some(text) => Some(text.parse().map_err(|e| format!("--host-build: {e}"))?),
        None => pane_runtime::host::probe().os_version,
    };
    let reference = match args.reference.as_deref().map(parse_reference).transpose() {
        Ok(reference) => reference.map(|r| r.to_string()),
        Err(message) => {
            eprintln!("pane: --as: {message}");
            return Ok(ExitCode::from(exit::INVALID_INPUT));
        }
    };
    let store = store(&global.root)?;
    let layout = pane_oci::OciLayout::open(&args.dir)?;
    let loaded = runtime()?.block_on(layout.import(
        &store,
        args.tag.as_deref(),
        reference.as_deref(),
        "amd64",
        host_build.as_ref(),
    ))?;
    let record = &loaded.record;
    if let Some(previous) = &loaded.replaced {
        eprintln!(
            "pane: {} named {previous} until now; it names the loaded image from here on",
            record.reference
        );
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(record)?);
    } else {
        println!("loaded {} ({})", record.reference, record.manifest);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn save(global: &GlobalArgs, args: &SaveArgs) -> Result<ExitCode, Failure> {
    let store = store(&global.root)?;
    let reference =
        parse_reference(&args.reference).map_or_else(|_| args.reference.clone(), |r| r.to_string());
    let record = store.image(&reference)?;
    runtime()?.block_on(pane_oci::layout::export(&store, &record, &args.dir))?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({"reference": record.reference, "dir": args.dir})
        );
    } else {
        println!("saved {} to {}", record.reference, args.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024 * 10 && unit < UNITS.len() - 1 {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

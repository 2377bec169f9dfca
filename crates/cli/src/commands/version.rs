//! `pane version`: pane's version and what this host supports.

use std::process::ExitCode;

use pane_runtime::host::{self, HcsSupport, HostInfo};
use serde::Serialize;

use crate::cli::GlobalArgs;

#[derive(Serialize)]
struct VersionReport<'a> {
    version: &'static str,
    host: &'a HostInfo,
    root: &'a std::path::Path,
}

pub fn run(global: &GlobalArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let host = host::probe();
    tracing::debug!(?host, "host probed");
    let report = VersionReport {
        version: env!("CARGO_PKG_VERSION"),
        host: &host,
        root: &global.root,
    };
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("pane {}", report.version);
    println!("host:  {} {}", host.os, host.arch);
    let build = match (&host.os_version, &host.product_name) {
        (Some(version), Some(product)) => format!("{version} ({product})"),
        (Some(version), None) => version.to_string(),
        (None, _) if host.os == "windows" => "unknown (Windows did not report it)".to_owned(),
        (None, _) => "none (not Windows)".to_owned(),
    };
    println!("build: {build}");
    match &host.hcs {
        HcsSupport::Available => println!("hcs:   usable"),
        HcsSupport::Unavailable { reason, fix } => {
            println!("hcs:   not usable: {reason}");
            println!("       {fix}");
        }
    }
    println!("root:  {}", global.root.display());
    Ok(ExitCode::SUCCESS)
}

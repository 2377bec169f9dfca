//! `pane spec check`: validate spec files, printing every problem.

use std::path::Path;
use std::process::ExitCode;

use pane_spec::{Diagnostic, LoadError, SpecFile};
use serde::Serialize;

use crate::cli::{GlobalArgs, SpecCheckArgs};
use crate::exit;

#[derive(Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<Finding>,
    /// Set when the file could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Finding {
    path: String,
    line: Option<u64>,
    column: Option<u64>,
    value: Option<String>,
    problem: String,
    fix: String,
}

impl From<&Diagnostic> for Finding {
    fn from(d: &Diagnostic) -> Self {
        Self {
            path: d.path.to_string(),
            line: d.position.map(|p| p.line),
            column: d.position.map(|p| p.column),
            value: d.value.clone(),
            problem: d.problem.clone(),
            fix: d.fix.clone(),
        }
    }
}

pub fn run(
    global: &GlobalArgs,
    args: &SpecCheckArgs,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let reports: Vec<FileReport> = args.files.iter().map(|path| check(path)).collect();
    if global.json {
        #[derive(Serialize)]
        struct Output<'a> {
            files: &'a [FileReport],
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Output { files: &reports })?
        );
    } else {
        for report in &reports {
            print_text(report);
        }
    }
    let code = if reports.iter().any(|r| r.error.is_some()) {
        ExitCode::from(exit::FAILURE)
    } else if reports.iter().all(|r| r.valid) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INVALID_INPUT)
    };
    Ok(code)
}

fn check(path: &Path) -> FileReport {
    let mut report = FileReport {
        file: path.display().to_string(),
        valid: false,
        kind: None,
        deployment: None,
        services: Vec::new(),
        problems: Vec::new(),
        error: None,
    };
    match pane_spec::load(path) {
        Ok(SpecFile::Deployment(deployment)) => {
            report.valid = true;
            report.kind = Some("deployment");
            report.services = deployment.services.keys().cloned().collect();
            report.deployment = Some(deployment.deployment);
        }
        Ok(SpecFile::Service(_)) => {
            report.valid = true;
            report.kind = Some("service");
        }
        Err(LoadError::Spec { source, .. }) => {
            report.problems = source.diagnostics().iter().map(Finding::from).collect();
        }
        Err(e @ LoadError::Read { .. }) => report.error = Some(e.to_string()),
    }
    report
}

fn print_text(report: &FileReport) {
    if let Some(error) = &report.error {
        println!("{}: error: {error}", report.file);
        return;
    }
    if report.valid {
        match &report.deployment {
            Some(name) => println!(
                "{}: OK (deployment {name}: {})",
                report.file,
                plural(report.services.len(), "service")
            ),
            None => println!("{}: OK (single service)", report.file),
        }
        return;
    }
    println!(
        "{}: {}",
        report.file,
        plural(report.problems.len(), "problem")
    );
    for p in &report.problems {
        let location = match (p.line, p.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", report.file),
            _ => report.file.clone(),
        };
        let value = p
            .value
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        println!("  {location}: {}:{value} {}; {}", p.path, p.problem, p.fix);
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

//! `pane`: run Windows containers on the Host Compute Service.

mod cli;
mod commands;
mod host_runtime;
mod logging;
mod progress;
mod shim;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ImageCommand, NetworkCommand, SpecCommand};

/// Exit codes scripts can rely on.
pub mod exit {
    /// The command failed for a reason other than bad input (I/O, host errors).
    pub const FAILURE: u8 = 1;
    /// The input (a spec, an argument) is invalid; the output says where and how to fix it.
    pub const INVALID_INPUT: u8 = 2;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.global.verbose, cli.global.quiet);
    let result = match &cli.command {
        Command::Spec {
            command: SpecCommand::Check(args),
        } => commands::spec_check::run(&cli.global, args),
        Command::Pull(args) => commands::images::pull(&cli.global, args),
        Command::Images => commands::images::images(&cli.global),
        Command::Rmi(args) => commands::images::rmi(&cli.global, args),
        Command::Tag(args) => commands::images::tag(&cli.global, args),
        Command::Image {
            command: ImageCommand::Prune,
        } => commands::images::prune(&cli.global),
        Command::Image {
            command: ImageCommand::Load(args),
        } => commands::images::load(&cli.global, args),
        Command::Image {
            command: ImageCommand::Save(args),
        } => commands::images::save(&cli.global, args),
        Command::Plan(args) => commands::plan::run(&cli.global, args),
        Command::Run(args) => commands::containers::run(&cli.global, args),
        Command::Create(args) => commands::containers::create(&cli.global, args),
        Command::Start(args) => commands::containers::start(&cli.global, args),
        Command::Reconcile => commands::containers::reconcile(&cli.global),
        Command::Supervise(args) => commands::containers::supervise(&cli.global, args),
        Command::Stop(args) => commands::containers::stop(&cli.global, args),
        Command::Kill(args) => commands::containers::kill(&cli.global, args),
        Command::Rm(args) => commands::containers::rm(&cli.global, args),
        Command::Wait(args) => commands::containers::wait(&cli.global, args),
        Command::Ps(args) => commands::container_info::ps(&cli.global, args),
        Command::Inspect(args) => commands::container_info::inspect(&cli.global, args),
        Command::Logs(args) => commands::container_info::logs(&cli.global, args),
        Command::Stats(args) => commands::container_info::stats(&cli.global, args),
        Command::Exec(args) => commands::container_info::exec(&cli.global, args),
        Command::Attach(args) => commands::containers::attach(&cli.global, args),
        Command::Version => commands::version::run(&cli.global),
        Command::Network {
            command: NetworkCommand::Ls,
        } => commands::network::ls(&cli.global),
        Command::Network {
            command: NetworkCommand::Inspect(args),
        } => commands::network::inspect(&cli.global, args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pane: {}", printable(&error.to_string()));
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// An error as it may reach a terminal: it can quote what a registry, an image or a layout
/// sent (an index's platform, a manifest's URL, a digest that does not parse), so control
/// characters other than line breaks and tabs are shown escaped, never sent raw (an escape
/// sequence could rewrite the screen or hide the message).
fn printable(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_reach_the_terminal_without_escape_sequences() {
        let shown = super::printable("bad platform \u{1b}[2Jwindows\r\nnext line\tend");
        assert_eq!(
            shown,
            "bad platform \\u{1b}[2Jwindows\\u{d}\nnext line\tend"
        );
    }
}

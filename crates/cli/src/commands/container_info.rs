//! Commands that look at containers: `ps`, `inspect`, `logs`, `stats`, and `exec`.

use std::io::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use pane_runtime::logs::LogFollower;
use pane_runtime::{ExecEvent, ExecOptions, LogOptions, Runtime};

use super::container_source::parse_env;
use super::containers::{FOLLOW_INTERVAL, parse_ids, print_entry, report};
use crate::cli::{ExecArgs, GlobalArgs, IdsArgs, LogsArgs, PsArgs};
use crate::exit;
use crate::host_runtime::Host;

type Failure = Box<dyn std::error::Error>;

pub fn ps(global: &GlobalArgs, args: &PsArgs) -> Result<ExitCode, Failure> {
    let host = Host::open(global)?;
    let containers = match host.tokio.block_on(host.runtime.list_containers()) {
        Ok(containers) => containers,
        Err(e) => return Ok(report(&e)),
    };
    let shown: Vec<_> = containers
        .into_iter()
        .filter(|c| args.all || !c.state.is_terminal())
        .collect();
    if global.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<24} {:<52} {:<14} CREATED", "ID", "IMAGE", "STATUS");
    for container in shown {
        println!(
            "{:<24} {:<52} {:<14} {}",
            container.id.to_string(),
            container.image,
            container.state.to_string(),
            container.created_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(global: &GlobalArgs, args: &IdsArgs) -> Result<ExitCode, Failure> {
    let ids = match parse_ids(&args.ids) {
        Ok(ids) => ids,
        Err(code) => return Ok(code),
    };
    let host = Host::open(global)?;
    let mut found = Vec::new();
    let mut status = ExitCode::SUCCESS;
    for id in &ids {
        match host.tokio.block_on(host.runtime.inspect_container(id)) {
            Ok(inspect) => found.push(inspect),
            Err(e) => status = report(&e),
        }
    }
    // Always JSON, as `docker inspect`: it is a document, not a table.
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(status)
}

/// `--since`: RFC 3339, or an age such as `90s`, `10m`, `2h`.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(unit_at);
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => 0,
    };
    match digits.parse::<i64>() {
        Ok(n) if seconds_per_unit > 0 => n
            .checked_mul(seconds_per_unit)
            .and_then(chrono::TimeDelta::try_seconds)
            .and_then(|age| now.checked_sub_signed(age))
            .ok_or_else(|| format!("--since {text:?} reaches too far back")),
        _ => Err(format!(
            "--since {text:?} is neither RFC 3339 (2026-11-29T10:00:00Z) nor an age (90s, 10m, 2h)"
        )),
    }
}

pub fn logs(global: &GlobalArgs, args: &LogsArgs) -> Result<ExitCode, Failure> {
    let id = match parse_ids(std::slice::from_ref(&args.id)) {
        Ok(mut ids) => ids.remove(0),
        Err(code) => return Ok(code),
    };
    let since = match args
        .since
        .as_deref()
        .map(|s| parse_since(s, Utc::now()))
        .transpose()
    {
        Ok(since) => since,
        Err(message) => {
            eprintln!("pane: {message}");
            return Ok(ExitCode::from(exit::INVALID_INPUT));
        }
    };
    let host = Host::open(global)?;
    let runtime = &host.runtime;
    // Opened before reading, so a line written in between is not lost (it may show twice).
    let mut follower = LogFollower::from_end(&runtime.log_dir(&id));
    let options = LogOptions {
        tail: args.tail,
        since,
    };
    let entries = match host.tokio.block_on(runtime.container_logs(&id, &options)) {
        Ok(entries) => entries,
        Err(e) => return Ok(report(&e)),
    };
    let emit = |entry: &pane_runtime::LogEntry| {
        if global.json {
            println!("{}", serde_json::to_string(entry).unwrap_or_default());
        } else {
            print_entry(entry, args.timestamps);
        }
    };
    entries.iter().for_each(emit);
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    host.tokio.block_on(async {
        loop {
            let ended = runtime
                .container_state(&id)
                .await
                .map_or(true, |state| state.is_terminal());
            follower.poll().unwrap_or_default().iter().for_each(emit);
            if ended {
                break;
            }
            tokio::time::sleep(FOLLOW_INTERVAL).await;
        }
    });
    Ok(ExitCode::SUCCESS)
}

pub fn stats(global: &GlobalArgs, args: &IdsArgs) -> Result<ExitCode, Failure> {
    let ids = match parse_ids(&args.ids) {
        Ok(ids) => ids,
        Err(code) => return Ok(code),
    };
    let host = Host::open(global)?;
    let mut status = ExitCode::SUCCESS;
    let mut rows = Vec::new();
    for id in ids {
        match host.tokio.block_on(host.runtime.container_stats(&id)) {
            Ok(reading) => rows.push((id, reading)),
            Err(e) => status = report(&e),
        }
    }
    if global.json {
        let json: Vec<_> = rows
            .iter()
            .map(|(id, stats)| serde_json::json!({ "id": id.to_string(), "stats": stats }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(status);
    }
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>7}",
        "ID", "CPU (s)", "MEMORY", "LIMIT", "MEM %"
    );
    for (id, stats) in rows {
        #[allow(clippy::cast_precision_loss)] // seconds for display
        let cpu = stats.cpu_usage_usec as f64 / 1e6;
        println!(
            "{:<24} {cpu:>12.2} {:>12} {:>12} {:>7}",
            id.to_string(),
            super::images::human(stats.memory_bytes),
            stats
                .memory_limit_bytes
                .map_or_else(|| "-".to_owned(), super::images::human),
            stats
                .memory_percent()
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%"))
        );
    }
    Ok(status)
}

/// The exec through the container's live shim, or `None` when it has none.
async fn exec_through_shim(
    global: &GlobalArgs,
    id: &pane_runtime::ContainerId,
    args: &ExecArgs,
    env: &[(String, String)],
) -> Option<Result<crate::shim::Ended, pane_shim::ShimClientError>> {
    let shim = crate::shim::connect(global, id).await?;
    let request = pane_shim::ExecRequest {
        command: args.command.clone(),
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        // The terminal's size now; a window that cannot say keeps HCS's default.
        terminal: args.tty.then(|| {
            crate::terminal::size().unwrap_or(pane_shim::ConsoleSize {
                rows: 25,
                columns: 80,
            })
        }),
        stdin: args.interactive,
    };
    let interaction = crate::shim::Interaction {
        input: args.interactive,
        console: args.tty,
        detach_keys: args.detach_keys.clone(),
        close_input_at_end: true,
    };
    Some(match shim.exec(request).await {
        Ok(session) => crate::shim::drive(&shim, session, interaction).await,
        Err(e) => Err(e),
    })
}

pub fn exec(global: &GlobalArgs, args: &ExecArgs) -> Result<ExitCode, Failure> {
    let id = match parse_ids(std::slice::from_ref(&args.id)) {
        Ok(mut ids) => ids.remove(0),
        Err(code) => return Ok(code),
    };
    let env = match parse_env("--env", &args.env) {
        Ok(env) => env,
        Err(message) => {
            eprintln!("pane: {message}");
            return Ok(ExitCode::from(exit::INVALID_INPUT));
        }
    };
    if args.tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!(
            "pane: -t asks for a console, and pane's standard input is not a terminal; drop -t (keep -i to send input), or run pane from a terminal"
        );
        return Ok(ExitCode::from(exit::INVALID_INPUT));
    }
    let host = Host::open(global)?;
    // A live supervisor holds the container (for Hyper-V, its one guest connection):
    // through it, not by name, when it lives.
    let through_shim = host
        .tokio
        .block_on(exec_through_shim(global, &id, args, &env));
    match through_shim {
        Some(Ok(ended)) => {
            let (code, message) = ended.outcome(&format!("the command in {id}"), None);
            if let Some(message) = message {
                eprintln!("pane: {message}");
            }
            return Ok(ExitCode::from(code));
        }
        Some(Err(e)) => {
            eprintln!("pane: exec in {id} through its supervisor: {e}");
            return Ok(ExitCode::from(exit::FAILURE));
        }
        None => {}
    }
    let stdin = if args.interactive {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
        Some(bytes)
    } else {
        None
    };
    let options = ExecOptions {
        stdin,
        command: args.command.clone(),
        env,
        working_dir: args.workdir.clone(),
        user: args.user.clone(),
        tty: args.tty,
        // Through HCS by name the console has the terminal's size but is not live: input
        // is what was read before the command started, and the window is not followed.
        console_size: args.tty.then(crate::terminal::size).flatten().map(|size| {
            pane_runtime::ConsoleSize {
                rows: size.rows,
                columns: size.columns,
            }
        }),
    };
    let result = host.tokio.block_on(async {
        let mut stream = host.runtime.exec_stream(&id, &options).await?;
        let mut code = pane_runtime::WaitOutcome::LOST_EXIT_CODE;
        while let Some(event) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            match event {
                ExecEvent::Stdout(bytes) => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&bytes).and_then(|()| out.flush());
                }
                ExecEvent::Stderr(bytes) => {
                    let _ = std::io::stderr().write_all(&bytes);
                }
                ExecEvent::Exit(exit_code) => {
                    code = exit_code;
                    break;
                }
            }
        }
        Ok::<i32, pane_runtime::RuntimeError>(code)
    });
    Ok(match result {
        Ok(code) => ExitCode::from(code.to_le_bytes()[0]),
        Err(e) => report(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_an_age() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("10m", now).unwrap().to_rfc3339(),
            "2026-11-29T11:50:00+00:00"
        );
        assert_eq!(
            parse_since("2026-11-29T10:00:00+01:00", now)
                .unwrap()
                .to_rfc3339(),
            "2026-11-29T09:00:00+00:00"
        );
        for bad in ["", "10", "10d", "m", "-5s", "99999999999999999999h"] {
            assert!(parse_since(bad, now).is_err(), "{bad:?}");
        }
    }
}

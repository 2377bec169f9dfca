//! A workload's end as the host sees it, from HCS events: a process-isolated workload's
//! own exit ([`host_workload_exit`]), or only its compute system's end when the workload
//! cannot be watched from here ([`host_system_exit`]: it lives in a utility VM's guest, or
//! had gone before it could be opened). Both isolations use these.
//!
//! Each HCS handle (the system's, each process's) reports through its own callback and
//! forwarding task, so the system's `SystemExited` can arrive before its workload's
//! `ProcessExited`. HCS still sends the process's exit when its system ends: hcsshim waits on
//! the process's own notification alone (internal/hcs/process.go `waitBackground`). So the
//! system's exit does not end the wait; it only bounds how much longer the process's exit
//! may take, in case that event never comes.

use std::time::Duration;

use pane_hcs::HcsEvent;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::WorkloadExit;
use crate::backend::ComputeEvent;
use crate::records::WaitOutcome;

/// How long the workload's exit may trail its system's. Both are queued by HCS at once;
/// seconds cover a loaded host's thread pool without holding up a lost exit for long.
const PROCESS_EXIT_AFTER_SYSTEM: Duration = Duration::from_secs(5);

/// The exit of process `pid` of the system whose events these are, whichever of its exit
/// events comes first. `None` when its exit cannot be known: the service disconnected, the
/// events ended, or the system exited and the process's exit did not follow in time.
pub(crate) fn host_workload_exit(
    events: UnboundedReceiver<ComputeEvent>,
    pid: u32,
) -> WorkloadExit {
    Box::pin(workload_exit(events, pid, PROCESS_EXIT_AFTER_SYSTEM))
}

/// The end of a system whose workload cannot be watched from here (it lives in a utility
/// VM's guest, or it had gone before it could be opened): always `None`, once the system
/// exits.
pub(crate) fn host_system_exit(mut events: UnboundedReceiver<ComputeEvent>) -> WorkloadExit {
    Box::pin(async move {
        while let Some(event) = events.recv().await {
            if let ComputeEvent::System(
                HcsEvent::SystemExited { .. } | HcsEvent::ServiceDisconnect,
            ) = event
            {
                break;
            }
        }
        None
    })
}

async fn workload_exit(
    mut events: UnboundedReceiver<ComputeEvent>,
    pid: u32,
    grace: Duration,
) -> Option<i32> {
    // Set once the system has exited: the process's exit must come by then.
    let mut deadline: Option<Instant> = None;
    loop {
        let event = match deadline {
            None => events.recv().await,
            Some(deadline) => tokio::time::timeout_at(deadline, events.recv())
                .await
                .ok()
                .flatten(),
        };
        match event? {
            ComputeEvent::Process {
                pid: p,
                event: HcsEvent::ProcessExited { exit_code },
            } if p == pid => {
                return Some(exit_code.map_or(WaitOutcome::LOST_EXIT_CODE, |c| {
                    i32::from_ne_bytes(c.to_ne_bytes())
                }));
            }
            ComputeEvent::System(HcsEvent::SystemExited { .. }) => {
                deadline.get_or_insert_with(|| Instant::now() + grace);
            }
            ComputeEvent::System(HcsEvent::ServiceDisconnect) => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    fn system_exited() -> ComputeEvent {
        ComputeEvent::System(HcsEvent::SystemExited {
            status: None,
            exit_type: None,
        })
    }

    fn process_exited(pid: u32, code: u32) -> ComputeEvent {
        ComputeEvent::Process {
            pid,
            event: HcsEvent::ProcessExited {
                exit_code: Some(code),
            },
        }
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn the_process_exit_counts_in_either_order() {
        for system_first in [false, true] {
            let (sender, events) = mpsc::unbounded_channel();
            let mut sequence = vec![process_exited(9, 4), process_exited(7, 0xC000_013A)];
            if system_first {
                sequence.insert(0, system_exited());
            } else {
                sequence.push(system_exited());
            }
            for event in sequence {
                sender.send(event).unwrap();
            }
            // The other process's exit is not the workload's; a negative NTSTATUS survives.
            assert_eq!(
                workload_exit(events, 7, GRACE).await,
                Some(i32::from_ne_bytes(0xC000_013A_u32.to_ne_bytes())),
                "system first: {system_first}"
            );
        }
    }

    #[tokio::test]
    async fn a_process_exit_that_never_follows_the_system_is_lost_after_the_grace() {
        let (sender, events) = mpsc::unbounded_channel();
        sender.send(system_exited()).unwrap();
        let started = std::time::Instant::now();
        let exit = tokio::time::timeout(
            Duration::from_secs(10),
            workload_exit(events, 7, Duration::from_millis(50)),
        )
        .await
        .expect("the grace ends the wait");
        assert_eq!(exit, None);
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(sender);
    }

    #[tokio::test]
    async fn a_disconnect_or_the_end_of_events_ends_the_wait() {
        let (sender, events) = mpsc::unbounded_channel();
        sender
            .send(ComputeEvent::System(HcsEvent::ServiceDisconnect))
            .unwrap();
        assert_eq!(workload_exit(events, 7, GRACE).await, None);
        let (sender, events) = mpsc::unbounded_channel::<ComputeEvent>();
        drop(sender);
        assert_eq!(workload_exit(events, 7, GRACE).await, None);
    }

    #[tokio::test]
    async fn a_system_watch_ends_with_the_system() {
        let (sender, events) = mpsc::unbounded_channel();
        sender.send(process_exited(7, 3)).unwrap();
        sender.send(system_exited()).unwrap();
        assert_eq!(host_system_exit(events).await, None);
    }
}

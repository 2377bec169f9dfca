//! `PrepareLayer` one call at a time on the whole host.
//!
//! hcsshim serialises `PrepareLayer` behind a process-wide mutex, "a temporary workaround
//! for a Windows bug" that makes concurrent calls time out (`internal/wclayer/
//! preparelayer.go`). A host runs several `pane` processes at once (the CLI, one supervisor
//! per detached container, an agent), so pane holds a host-wide named mutex as well as the
//! in-process one. A named mutex whose holder dies is handed to the next waiter as
//! abandoned, so a killed `pane` never wedges the others.
#![allow(unsafe_code)]

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use windows::Win32::Foundation::{
    CloseHandle, HANDLE, WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows::Win32::System::Threading::{CreateMutexW, ReleaseMutex, WaitForSingleObject};
use windows::core::{PCWSTR, w};

use crate::error::LayerError;

const HOST_MUTEX: PCWSTR = w!("Global\\pane-PrepareLayer");
/// A `PrepareLayer` that has not returned after this long is stuck; waiting on it forever
/// would only move the hang to this caller.
const HOST_WAIT: Duration = Duration::from_secs(300);

static IN_PROCESS: Mutex<()> = Mutex::new(());

/// Runs `prepare` while no other thread or process on this host runs one.
pub fn one_at_a_time<T>(prepare: impl FnOnce() -> T) -> Result<T, LayerError> {
    let _local = IN_PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
    let _host = HostMutex::acquire(HOST_MUTEX, HOST_WAIT)?;
    Ok(prepare())
}

/// A named kernel mutex, owned by the calling thread until dropped (on the same thread:
/// callers hold it across one synchronous call).
struct HostMutex(HANDLE);

impl HostMutex {
    fn acquire(name: PCWSTR, wait: Duration) -> Result<Self, LayerError> {
        // SAFETY: `name` is a static NUL-terminated string; no security attributes (the
        // default for an elevated process), not initially owned.
        let handle = unsafe { CreateMutexW(None, false, name) }.map_err(|e| {
            LayerError::Unavailable(format!(
                "cannot open the host-wide PrepareLayer lock: {e}; run pane elevated"
            ))
        })?;
        let milliseconds = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        // SAFETY: `handle` is the mutex just opened.
        let waited = unsafe { WaitForSingleObject(handle, milliseconds) };
        if waited == WAIT_OBJECT_0 || waited == WAIT_ABANDONED {
            return Ok(Self(handle));
        }
        // SAFETY: the handle was opened above and is not used after this.
        unsafe {
            let _ = CloseHandle(handle);
        }
        Err(LayerError::Unavailable(if waited == WAIT_TIMEOUT {
            format!(
                "another PrepareLayer on this host has not finished in {} s",
                wait.as_secs()
            )
        } else {
            "waiting for the host-wide PrepareLayer lock failed".to_owned()
        }))
    }
}

impl Drop for HostMutex {
    fn drop(&mut self) {
        // SAFETY: this thread owns the mutex (acquired above), and the handle is closed once.
        unsafe {
            let _ = ReleaseMutex(self.0);
            let _ = CloseHandle(self.0);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Threads that each hold `lock` for a moment, counting how many are inside at once.
    fn most_at_once(lock: impl Fn(&dyn Fn()) + Send + Sync + 'static) -> usize {
        let lock = Arc::new(lock);
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (lock, inside, most) = (lock.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        lock(&|| {
                            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                            inside.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        most.load(Ordering::SeqCst)
    }

    #[test]
    fn prepares_run_one_at_a_time() {
        assert_eq!(most_at_once(|work| one_at_a_time(work).unwrap()), 1);
    }

    #[test]
    fn the_host_mutex_alone_excludes_other_holders() {
        // Another process's holder is another thread as far as a kernel mutex is concerned.
        let most = most_at_once(|work| {
            let name = w!("Global\\pane-test-host-mutex");
            let _held = HostMutex::acquire(name, Duration::from_secs(30)).unwrap();
            work();
        });
        assert_eq!(most, 1);
    }
}

//! The open HCS handles of the Windows backend, by system id, behind a `std::sync::Mutex`.
//!
//! Dropping a system or process handle closes it, and `HcsCloseComputeSystem` /
//! `HcsCloseProcess` wait for HCS callbacks still running on that handle. A callback that
//! wants this table's lock (the event forwarders do) would then wait for the closer, which
//! holds the lock: a deadlock, on a tokio worker. So handles only ever leave the table
//! under the lock and are dropped after the guard is gone; every change that can let go of
//! a handle is one of the functions here, which the backend uses and the tests hold to that.
//! Generic over the handle types so the rule is tested on any host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::backend::ComputeEvent;

/// A handle shared by the calls that use it; the last clone dropped closes it.
pub type Shared<T> = Arc<tokio::sync::Mutex<T>>;

pub struct HandleTable<S, P> {
    pub systems: HashMap<String, Shared<S>>,
    pub processes: HashMap<(String, u32), Shared<P>>,
    pub subscribers: HashMap<String, Vec<mpsc::UnboundedSender<ComputeEvent>>>,
}

impl<S, P> Default for HandleTable<S, P> {
    fn default() -> Self {
        Self {
            systems: HashMap::new(),
            processes: HashMap::new(),
            subscribers: HashMap::new(),
        }
    }
}

/// Handles taken out of the table, to be dropped once its lock is released.
#[must_use = "dropped only after the table's guard is gone"]
pub struct Released<S, P> {
    _systems: Vec<Shared<S>>,
    _processes: Vec<Shared<P>>,
}

/// Forgets the system `id`, its processes and its subscribers. The handles are dropped here,
/// after the lock is released.
pub fn remove_system<S, P>(table: &Mutex<HandleTable<S, P>>, id: &str) {
    let released = table.lock().ok().map(|mut table| {
        let systems: Vec<Shared<S>> = table.systems.remove(id).into_iter().collect();
        let keys: Vec<(String, u32)> = table
            .processes
            .keys()
            .filter(|(system, _)| system == id)
            .cloned()
            .collect();
        let processes = keys
            .iter()
            .filter_map(|key| table.processes.remove(key))
            .collect();
        table.subscribers.remove(id);
        Released {
            _systems: systems,
            _processes: processes,
        }
    });
    drop(released);
}

/// Keeps `system` as `id`; a handle it replaces is dropped after the lock is released.
pub fn insert_system<S, P>(table: &Mutex<HandleTable<S, P>>, id: &str, system: S) {
    let replaced = table.lock().ok().and_then(|mut table| {
        table
            .systems
            .insert(id.to_owned(), Arc::new(tokio::sync::Mutex::new(system)))
    });
    drop(replaced);
}

/// Keeps `process` as process `pid` of system `id`; a handle it replaces is dropped after
/// the lock is released.
pub fn insert_process<S, P>(table: &Mutex<HandleTable<S, P>>, id: &str, pid: u32, process: P) {
    let replaced = table.lock().ok().and_then(|mut table| {
        table.processes.insert(
            (id.to_owned(), pid),
            Arc::new(tokio::sync::Mutex::new(process)),
        )
    });
    drop(replaced);
}

#[cfg(test)]
mod tests {
    use std::sync::Weak;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A handle that, when closed, checks whether the table's lock is free, as an HCS
    /// callback wanting the lock would need it to be.
    struct Probe {
        table: Weak<Mutex<HandleTable<Probe, Probe>>>,
        closed: Arc<AtomicUsize>,
        closed_under_lock: Arc<AtomicUsize>,
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.closed.fetch_add(1, Ordering::SeqCst);
            if let Some(table) = self.table.upgrade()
                && matches!(table.try_lock(), Err(std::sync::TryLockError::WouldBlock))
            {
                self.closed_under_lock.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    struct Fixture {
        table: Arc<Mutex<HandleTable<Probe, Probe>>>,
        closed: Arc<AtomicUsize>,
        closed_under_lock: Arc<AtomicUsize>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                table: Arc::new(Mutex::new(HandleTable::default())),
                closed: Arc::default(),
                closed_under_lock: Arc::default(),
            }
        }

        fn probe(&self) -> Probe {
            Probe {
                table: Arc::downgrade(&self.table),
                closed: Arc::clone(&self.closed),
                closed_under_lock: Arc::clone(&self.closed_under_lock),
            }
        }

        fn counts(&self) -> (usize, usize) {
            (
                self.closed.load(Ordering::SeqCst),
                self.closed_under_lock.load(Ordering::SeqCst),
            )
        }
    }

    #[test]
    fn removing_a_system_closes_its_handles_after_the_lock_is_released() {
        let f = Fixture::new();
        insert_system(&f.table, "a", f.probe());
        insert_system(&f.table, "b", f.probe());
        insert_process(&f.table, "a", 4, f.probe());
        insert_process(&f.table, "a", 8, f.probe());
        insert_process(&f.table, "b", 4, f.probe());
        remove_system(&f.table, "a");
        assert_eq!(
            f.counts(),
            (3, 0),
            "a's system and two processes, none under the lock"
        );
        let table = f.table.lock().unwrap();
        assert!(table.systems.contains_key("b") && !table.systems.contains_key("a"));
        assert_eq!(table.processes.len(), 1);
    }

    #[test]
    fn a_replaced_handle_is_closed_after_the_lock_is_released() {
        let f = Fixture::new();
        insert_system(&f.table, "a", f.probe());
        insert_system(&f.table, "a", f.probe());
        insert_process(&f.table, "a", 4, f.probe());
        insert_process(&f.table, "a", 4, f.probe());
        assert_eq!(f.counts(), (2, 0));
    }

    #[test]
    fn a_handle_still_in_use_is_closed_by_its_last_user() {
        let f = Fixture::new();
        insert_system(&f.table, "a", f.probe());
        let in_use = f.table.lock().unwrap().systems.get("a").cloned();
        remove_system(&f.table, "a");
        assert_eq!(f.counts(), (0, 0));
        drop(in_use);
        assert_eq!(f.counts(), (1, 0));
    }
}

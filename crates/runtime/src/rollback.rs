//! Undo on failure: every create step that makes something on the host registers how to
//! take it away *before* it runs, and a failure takes everything away in reverse order.

use std::future::Future;
use std::pin::Pin;

use crate::error::RuntimeError;

type Undo =
    Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<(), RuntimeError>> + Send>> + Send>;

/// The undo actions of a create in progress.
#[derive(Default)]
pub struct Rollback {
    undo: Vec<(String, Undo)>,
    /// Undo failures, kept so the caller can report what may be left behind.
    pub leftovers: Vec<String>,
}

impl std::fmt::Debug for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollback")
            .field(
                "steps",
                &self
                    .undo
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("leftovers", &self.leftovers)
            .finish()
    }
}

impl Rollback {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `action` as step `name`, with `undo` registered first so that even a step that
    /// fails half way is cleaned up (undo actions must tolerate "not there").
    pub async fn step<T, A, U, UF>(
        &mut self,
        name: &str,
        action: A,
        undo: U,
    ) -> Result<T, RuntimeError>
    where
        A: Future<Output = Result<T, RuntimeError>>,
        U: FnOnce() -> UF + Send + 'static,
        UF: Future<Output = Result<(), RuntimeError>> + Send + 'static,
    {
        self.undo
            .push((name.to_owned(), Box::new(move || Box::pin(undo()))));
        action.await.map_err(|e| step_error(name, e))
    }

    /// Runs a step that creates nothing (a query, a guest setting whose removal is part of
    /// an earlier step's undo).
    pub async fn check<T>(
        &mut self,
        name: &str,
        action: impl Future<Output = Result<T, RuntimeError>>,
    ) -> Result<T, RuntimeError> {
        action.await.map_err(|e| step_error(name, e))
    }

    /// Undoes every registered step, newest first; failures are collected, not fatal.
    pub async fn unwind(&mut self) {
        while let Some((name, undo)) = self.undo.pop() {
            if let Err(e) = undo().await {
                tracing::warn!(step = %name, error = %e, "undo failed; something may be left behind");
                self.leftovers.push(format!("{name}: {e}"));
            }
        }
    }

    /// The create succeeded: keep everything.
    pub fn commit(mut self) {
        self.undo.clear();
    }

    /// Names of the registered steps, oldest first.
    pub fn steps(&self) -> Vec<&str> {
        self.undo.iter().map(|(name, _)| name.as_str()).collect()
    }
}

/// Names the failed step in the error, keeping host error details (the HRESULT).
fn step_error(name: &str, error: RuntimeError) -> RuntimeError {
    match error {
        RuntimeError::Host {
            step,
            hresult,
            message,
        } if step != name => RuntimeError::Host {
            step: format!("{name}: {step}"),
            hresult,
            message,
        },
        other @ RuntimeError::Host { .. } => other,
        other => RuntimeError::Host {
            step: name.to_owned(),
            hresult: None,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn log() -> Arc<Mutex<Vec<String>>> {
        Arc::default()
    }

    fn undo(
        log: &Arc<Mutex<Vec<String>>>,
        what: &'static str,
    ) -> impl FnOnce() -> Pin<Box<dyn Future<Output = Result<(), RuntimeError>> + Send>> + Send + 'static
    {
        let log = Arc::clone(log);
        move || {
            Box::pin(async move {
                log.lock().unwrap().push(what.to_owned());
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_failure_undoes_every_step_in_reverse_including_the_failed_one() {
        let undone = log();
        let mut rollback = Rollback::new();
        rollback
            .step(
                "create scratch",
                async { Ok(()) },
                undo(&undone, "destroy scratch"),
            )
            .await
            .unwrap();
        rollback
            .step(
                "activate scratch",
                async { Ok(()) },
                undo(&undone, "deactivate scratch"),
            )
            .await
            .unwrap();
        let err = rollback
            .step(
                "create compute system",
                async {
                    Err::<(), _>(RuntimeError::Host {
                        step: "HcsCreateComputeSystem".into(),
                        hresult: Some(0x8037_010D),
                        message: "invalid JSON".into(),
                    })
                },
                undo(&undone, "terminate compute system"),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "create compute system: HcsCreateComputeSystem failed with HRESULT 0x8037010D: invalid JSON"
        );
        rollback.unwind().await;
        assert_eq!(
            *undone.lock().unwrap(),
            [
                "terminate compute system",
                "deactivate scratch",
                "destroy scratch"
            ]
        );
        assert!(rollback.leftovers.is_empty());
    }

    #[tokio::test]
    async fn undo_failures_are_collected_and_the_rest_still_runs() {
        let undone = log();
        let mut rollback = Rollback::new();
        rollback
            .step("a", async { Ok(()) }, undo(&undone, "undo a"))
            .await
            .unwrap();
        rollback
            .step("b", async { Ok(()) }, || async {
                Err(RuntimeError::Host {
                    step: "undo b".into(),
                    hresult: None,
                    message: "busy".into(),
                })
            })
            .await
            .unwrap();
        rollback.unwind().await;
        assert_eq!(*undone.lock().unwrap(), ["undo a"]);
        assert_eq!(rollback.leftovers.len(), 1);
        assert!(
            rollback.leftovers[0].starts_with("b: "),
            "{:?}",
            rollback.leftovers
        );
    }

    #[tokio::test]
    async fn commit_keeps_everything() {
        let undone = log();
        let mut rollback = Rollback::new();
        rollback
            .step("a", async { Ok(()) }, undo(&undone, "undo a"))
            .await
            .unwrap();
        assert_eq!(rollback.steps(), ["a"]);
        rollback.commit();
        assert!(undone.lock().unwrap().is_empty());
    }
}

//! Failures the guest peer can be told to produce, so tests can reach every error path.

use std::sync::Mutex;

use crate::rpc::Rpc;

/// What the peer does instead of answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this failure HRESULT.
    Fail(i32),
    /// Close the connection without answering, as a crashed guest would.
    DropConnection,
    /// Never answer (the request times out on the host).
    Stall,
}

#[derive(Debug)]
struct Rule {
    rpc: Rpc,
    fault: Fault,
    /// `None`: every time; `Some(n)`: the next `n` times.
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
pub(crate) struct Faults(Mutex<Vec<Rule>>);

impl Faults {
    pub(crate) fn add(&self, rpc: Rpc, fault: Fault, times: Option<u32>) {
        if let Ok(mut rules) = self.0.lock() {
            rules.push(Rule {
                rpc,
                fault,
                remaining: times,
            });
        }
    }

    /// The fault to apply to this request, consuming one use of a counted rule.
    pub(crate) fn take(&self, rpc: Rpc) -> Option<Fault> {
        let mut rules = self.0.lock().ok()?;
        let index = rules
            .iter()
            .position(|r| r.rpc == rpc && r.remaining != Some(0))?;
        let rule = &mut rules[index];
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        let fault = rule.fault;
        rules.retain(|r| r.remaining != Some(0));
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_run_out_and_permanent_ones_do_not() {
        let faults = Faults::default();
        faults.add(Rpc::Start, Fault::Fail(5), Some(1));
        faults.add(Rpc::Create, Fault::Stall, None);
        assert_eq!(faults.take(Rpc::Start), Some(Fault::Fail(5)));
        assert_eq!(faults.take(Rpc::Start), None);
        assert_eq!(faults.take(Rpc::Create), Some(Fault::Stall));
        assert_eq!(faults.take(Rpc::Create), Some(Fault::Stall));
        assert_eq!(faults.take(Rpc::ExecuteProcess), None);
    }
}

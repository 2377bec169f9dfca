//! The seams on Windows: [`Compute`](crate::backend::Compute) over computecore,
//! [`Layers`](crate::backend::Layers) over vmcompute, the guest connector over Hyper-V
//! sockets and [`Network`](crate::backend::Network) over HCN. Thin by design: state,
//! rollback and reconciliation live in the portable runtime. Run under wine against the
//! simulated host (`.ci/wine-e2e`); not yet on a real host.

mod compute;
mod guests;
mod layers;
mod network;

pub use compute::HcsCompute;
pub use guests::HvSocketGuests;
pub use layers::VmcomputeLayers;
pub use network::{HcnNetwork, hcn_networks};

//! Container identity: a service's replica.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One replica of a service. Its display form (`web-2`) names the container everywhere: in
/// the state directory, in `pane` output, and as the HCS compute-system id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContainerId {
    pub service: String,
    pub replica: u32,
}

impl ContainerId {
    pub fn new(service: impl Into<String>, replica: u32) -> Self {
        Self {
            service: service.into(),
            replica,
        }
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.service, self.replica)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a container id; expected SERVICE-REPLICA, e.g. web-1")]
pub struct ContainerIdError(String);

impl FromStr for ContainerId {
    type Err = ContainerIdError;

    /// The inverse of `Display`. Service names may hold '-', so the replica is what follows
    /// the last one.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ContainerIdError(text.to_owned());
        let (service, replica) = text.rsplit_once('-').ok_or_else(error)?;
        if service.is_empty() || replica.is_empty() || !replica.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(error());
        }
        let replica = replica.parse().map_err(|_| error())?;
        Ok(Self::new(service, replica))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_are_inverse() {
        for id in [
            ContainerId::new("web", 0),
            ContainerId::new("api-v2", 13),
            ContainerId::new("a-1", 2),
        ] {
            assert_eq!(id.to_string().parse::<ContainerId>(), Ok(id));
        }
        assert_eq!(ContainerId::new("web", 3).to_string(), "web-3");
    }

    #[test]
    fn rejects_ids_without_a_replica() {
        for text in ["web", "web-", "-1", "web-x", "web-+1", "web-99999999999"] {
            assert!(text.parse::<ContainerId>().is_err(), "{text}");
        }
    }
}

//! The bridge's RPCs and their ids (message type without the kind bits).

/// Every RPC of protocol version 4, as hcsshim numbers them: category | index << 8 | 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    Create,
    Start,
    ShutdownGraceful,
    ShutdownForced,
    ExecuteProcess,
    WaitForProcess,
    SignalProcess,
    ResizeConsole,
    GetProperties,
    ModifySettings,
    NegotiateProtocol,
    DumpStacks,
    DeleteContainerState,
    UpdateContainer,
    LifecycleNotification,
    ModifyServiceSettings,
}

const COMPUTE_SYSTEM: u32 = 0x0010_0000;
const COMPUTE_SERVICE: u32 = 0x0020_0000;

/// Compute-system RPCs in index order (index 1 first).
const COMPUTE_SYSTEM_RPCS: [Rpc; 15] = [
    Rpc::Create,
    Rpc::Start,
    Rpc::ShutdownGraceful,
    Rpc::ShutdownForced,
    Rpc::ExecuteProcess,
    Rpc::WaitForProcess,
    Rpc::SignalProcess,
    Rpc::ResizeConsole,
    Rpc::GetProperties,
    Rpc::ModifySettings,
    Rpc::NegotiateProtocol,
    Rpc::DumpStacks,
    Rpc::DeleteContainerState,
    Rpc::UpdateContainer,
    Rpc::LifecycleNotification,
];

impl Rpc {
    pub fn id(self) -> u32 {
        if self == Rpc::ModifyServiceSettings {
            return COMPUTE_SERVICE | (1 << 8) | 1;
        }
        let index = COMPUTE_SYSTEM_RPCS
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0);
        // At most 15 entries: the index always fits.
        #[allow(clippy::cast_possible_truncation)]
        let index = index as u32 + 1;
        COMPUTE_SYSTEM | (index << 8) | 1
    }

    pub fn from_id(id: u32) -> Option<Self> {
        if id == Rpc::ModifyServiceSettings.id() {
            return Some(Rpc::ModifyServiceSettings);
        }
        if id & 0xFFF0_00FF != COMPUTE_SYSTEM | 1 {
            return None;
        }
        let index = ((id >> 8) & 0xFFF) as usize;
        index
            .checked_sub(1)
            .and_then(|i| COMPUTE_SYSTEM_RPCS.get(i))
            .copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Rpc::Create => "Create",
            Rpc::Start => "Start",
            Rpc::ShutdownGraceful => "ShutdownGraceful",
            Rpc::ShutdownForced => "ShutdownForced",
            Rpc::ExecuteProcess => "ExecuteProcess",
            Rpc::WaitForProcess => "WaitForProcess",
            Rpc::SignalProcess => "SignalProcess",
            Rpc::ResizeConsole => "ResizeConsole",
            Rpc::GetProperties => "GetProperties",
            Rpc::ModifySettings => "ModifySettings",
            Rpc::NegotiateProtocol => "NegotiateProtocol",
            Rpc::DumpStacks => "DumpStacks",
            Rpc::DeleteContainerState => "DeleteContainerState",
            Rpc::UpdateContainer => "UpdateContainer",
            Rpc::LifecycleNotification => "LifecycleNotification",
            Rpc::ModifyServiceSettings => "ModifyServiceSettings",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_reference_table() {
        let table = [
            (Rpc::Create, 0x0010_0101),
            (Rpc::Start, 0x0010_0201),
            (Rpc::ShutdownGraceful, 0x0010_0301),
            (Rpc::ShutdownForced, 0x0010_0401),
            (Rpc::ExecuteProcess, 0x0010_0501),
            (Rpc::WaitForProcess, 0x0010_0601),
            (Rpc::SignalProcess, 0x0010_0701),
            (Rpc::ResizeConsole, 0x0010_0801),
            (Rpc::GetProperties, 0x0010_0901),
            (Rpc::ModifySettings, 0x0010_0A01),
            (Rpc::NegotiateProtocol, 0x0010_0B01),
            (Rpc::DumpStacks, 0x0010_0C01),
            (Rpc::DeleteContainerState, 0x0010_0D01),
            (Rpc::UpdateContainer, 0x0010_0E01),
            (Rpc::LifecycleNotification, 0x0010_0F01),
            (Rpc::ModifyServiceSettings, 0x0020_0101),
        ];
        for (rpc, id) in table {
            assert_eq!(rpc.id(), id, "{rpc:?}");
            assert_eq!(Rpc::from_id(id), Some(rpc));
        }
        for unknown in [
            0,
            0x0010_0001,
            0x0010_1001,
            0x0010_0102,
            0x0030_0101,
            0x0020_0201,
        ] {
            assert_eq!(Rpc::from_id(unknown), None, "0x{unknown:08x}");
        }
    }
}

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How to start a process in a container (`HcsCreateProcess`, or the guest's
/// `ExecuteProcess`).
// The flags are HCS's wire format, one JSON boolean each.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// The whole command line, quoted by the `CommandLineToArgvW` rules.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command_line: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emulate_console: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_std_in_pipe: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_std_out_pipe: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_std_err_pipe: bool,
    /// `[height, width]` of the console, when `EmulateConsole` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u16; 2]>,
}

/// `HcsGetProcessProperties`' answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessStatus {
    pub process_id: u32,
    #[serde(default)]
    pub exited: bool,
    #[serde(default)]
    pub exit_code: u32,
    /// Non-zero means the exit code could not be read and must be treated as unknown.
    #[serde(default)]
    pub last_wait_result: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsoleSize {
    pub height: u16,
    pub width: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_parameters_use_hcs_field_names_and_omit_defaults() {
        let params = ProcessParameters {
            command_line: r#"cmd /c "echo hi""#.into(),
            working_directory: Some(r"C:\".into()),
            environment: BTreeMap::from([("A".into(), "1".into())]),
            create_std_out_pipe: true,
            ..ProcessParameters::default()
        };
        let json = serde_json::to_value(&params).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "CommandLine": "cmd /c \"echo hi\"",
                "WorkingDirectory": "C:\\",
                "Environment": {"A": "1"},
                "CreateStdOutPipe": true
            })
        );
        assert_eq!(
            serde_json::from_value::<ProcessParameters>(json).unwrap(),
            params
        );
    }
}

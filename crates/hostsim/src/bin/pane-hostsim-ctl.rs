//! `pane-hostsim-ctl`: talks to a running `pane-hostsim-service` directly (no DLL), so a test
//! script can set the host up and look at it. Portable: the service listens on loopback, so
//! this runs natively beside wine. The address comes from `PANE_HOSTSIM_ADDR`.
//!
//! ```text
//! pane-hostsim-ctl create ID OWNER [--start]   a container system (it outlives this tool)
//! pane-hostsim-ctl create-document ID FILE      HcsCreateComputeSystem with FILE's document
//! pane-hostsim-ctl list [OWNER]                 HcsEnumerateComputeSystems, as JSON
//! pane-hostsim-ctl consoles ID                  console sizes of ID's console processes
//!                                               by pid ([height, width], first as created)
//! pane-hostsim-ctl fault CALL NTH fail HRESULT   the NTH next CALL fails with HRESULT (hex)
//! pane-hostsim-ctl fault CALL NTH stall MS       … is answered MS milliseconds late
//! pane-hostsim-ctl fault CALL NTH crash          … makes the service exit
//! ```
//! CALL is a request's name: `Create`, `Open`, `Start`, `Shutdown`, `Terminate`,
//! `Properties`, `Modify`, `Enumerate`, `CreateProcess`, `OpenProcess`, `Signal`,
//! `TerminateProcess`, …, or a layer call (`ActivateLayer`, `PrepareLayer`,
//! `GetLayerMountPath`, `CreateSandboxLayer`, `DestroyLayer`, …), or a computenetwork call
//! (`HcnCreateNamespace`, `HcnCreateEndpoint`, `HcnModifyNamespace`, …).
//! Prints the HRESULT and result document of failed calls; exits 1 on a failure.

use std::io::BufReader;
use std::net::TcpStream;
use std::process::ExitCode;

use computecore::protocol::{self, ADDRESS_ENV, Request, Response};

fn call(request: &Request) -> Result<Response, String> {
    let address = std::env::var(ADDRESS_ENV).map_err(|_| format!("{ADDRESS_ENV} is not set"))?;
    let stream = TcpStream::connect(&address).map_err(|e| format!("{address}: {e}"))?;
    protocol::send(&stream, request).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(&stream);
    protocol::receive::<Response>(&mut reader)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the service closed the connection".to_owned())
}

fn checked(request: &Request) -> Result<Response, String> {
    let response = call(request)?;
    if response.hresult & 0x8000_0000 != 0 {
        return Err(format!(
            "HRESULT 0x{:08X}: {}",
            response.hresult,
            response.document.unwrap_or_default()
        ));
    }
    Ok(response)
}

fn document(owner: &str) -> String {
    serde_json::json!({
        "Owner": owner,
        "SchemaVersion": {"Major": 2, "Minor": 1},
        "Container": {},
    })
    .to_string()
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [command, id, owner, rest @ ..] if command == "create" => {
            checked(&Request::Create {
                id: id.clone(),
                document: document(owner),
            })?;
            if rest.iter().any(|a| a == "--start") {
                checked(&Request::Start {
                    id: id.clone(),
                    options: None,
                })?;
            }
            Ok(())
        }
        [command, id, file] if command == "create-document" => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            checked(&Request::Create {
                id: id.clone(),
                document: text,
            })
            .map(drop)
        }
        [command, owner @ ..] if command == "list" => {
            let query = owner
                .first()
                .map(|o| serde_json::json!({ "Owners": [o] }).to_string());
            let response = checked(&Request::Enumerate { query })?;
            println!("{}", response.document.unwrap_or_default());
            Ok(())
        }
        [command, id] if command == "consoles" => {
            let response = checked(&Request::Consoles { id: id.clone() })?;
            println!("{}", response.document.unwrap_or_default());
            Ok(())
        }
        [command] if command == "hcn-list" => {
            let response = checked(&Request::Hcn {
                call: "HcnList".to_owned(),
                id: None,
                parent: None,
                settings: None,
            })?;
            println!("{}", response.document.unwrap_or_default());
            Ok(())
        }
        [command, call, nth, kind, rest @ ..] if command == "fault" => {
            let nth: u32 = nth.parse().map_err(|_| format!("{nth:?} is not a count"))?;
            let argument = rest.first().map(String::as_str).unwrap_or_default();
            let (hresult, stall_ms, crash) = match kind.as_str() {
                "fail" => {
                    let hex = argument.trim_start_matches("0x");
                    let hr = u32::from_str_radix(hex, 16)
                        .map_err(|_| format!("{argument:?} is not a hex HRESULT"))?;
                    (Some(hr), None, false)
                }
                "stall" => {
                    let ms = argument
                        .parse()
                        .map_err(|_| format!("{argument:?} is not milliseconds"))?;
                    (None, Some(ms), false)
                }
                "crash" => (None, None, true),
                other => return Err(format!("{other:?}: a fault is fail, stall or crash")),
            };
            checked(&Request::Fault {
                call: call.clone(),
                nth,
                hresult,
                stall_ms,
                crash,
            })
            .map(drop)
        }
        _ => Err("usage: pane-hostsim-ctl create ID OWNER [--start] | create-document ID FILE | list [OWNER] | consoles ID | hcn-list | fault CALL NTH fail HRESULT|stall MS|crash".to_owned()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pane-hostsim-ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

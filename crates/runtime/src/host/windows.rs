//! Windows host facts: the build from the kernel, HCS from the system directory.
//!
//! HCS lives in `computecore.dll`, which only exists with the Containers feature; pane-hcs
//! loads it at run time so pane starts on any Windows and can say what to enable.
#![allow(unsafe_code)]

use windows::Wdk::System::SystemServices::RtlGetVersion;
use windows::Win32::Foundation::ERROR_SUCCESS;
use windows::Win32::System::Registry::{
    HKEY_LOCAL_MACHINE, REG_VALUE_TYPE, RRF_RT_REG_DWORD, RRF_RT_REG_SZ, RegGetValueW,
};
use windows::Win32::System::SystemInformation::OSVERSIONINFOW;
use windows::core::{HSTRING, PCWSTR, w};

use pane_spec::OsVersion;

use super::{HcsSupport, HostInfo};

const CURRENT_VERSION_KEY: PCWSTR = w!(r"SOFTWARE\Microsoft\Windows NT\CurrentVersion");

pub fn probe() -> HostInfo {
    HostInfo {
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        os_version: read_os_version(),
        product_name: read_string("ProductName"),
        hcs: probe_hcs(),
    }
}

/// The build from `RtlGetVersion`, which, unlike `GetVersionEx`, is not bent by the
/// executable's compatibility manifest; the update revision (UBR) exists only in the registry.
fn read_os_version() -> Option<OsVersion> {
    let mut info = OSVERSIONINFOW {
        dwOSVersionInfoSize: u32::try_from(std::mem::size_of::<OSVERSIONINFOW>()).ok()?,
        ..OSVERSIONINFOW::default()
    };
    // SAFETY: `info` is a writable OSVERSIONINFOW whose size field is set, as the call requires.
    let status = unsafe { RtlGetVersion(&raw mut info) };
    if status.is_err() {
        return None;
    }
    Some(OsVersion {
        major: info.dwMajorVersion,
        minor: info.dwMinorVersion,
        build: info.dwBuildNumber,
        revision: read_dword("UBR"),
    })
}

fn read_dword(name: &str) -> Option<u32> {
    let name = HSTRING::from(name);
    let mut value = 0u32;
    let mut size = u32::try_from(std::mem::size_of::<u32>()).ok()?;
    // SAFETY: the key and value names are NUL-terminated wide strings that outlive the call;
    // `value` is a writable u32 and `size` holds its size in bytes, as RegGetValueW requires.
    let status = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            CURRENT_VERSION_KEY,
            &name,
            RRF_RT_REG_DWORD,
            None,
            Some((&raw mut value).cast()),
            Some(&raw mut size),
        )
    };
    (status == ERROR_SUCCESS).then_some(value)
}

fn read_string(name: &str) -> Option<String> {
    let name = HSTRING::from(name);
    let mut buffer = [0u16; 256];
    let mut size = u32::try_from(std::mem::size_of_val(&buffer)).ok()?;
    let mut kind = REG_VALUE_TYPE::default();
    // SAFETY: as in `read_dword`; `buffer` is writable for `size` bytes, and RegGetValueW
    // NUL-terminates what it writes there.
    let status = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            CURRENT_VERSION_KEY,
            &name,
            RRF_RT_REG_SZ,
            Some(&raw mut kind),
            Some(buffer.as_mut_ptr().cast()),
            Some(&raw mut size),
        )
    };
    if status != ERROR_SUCCESS {
        return None;
    }
    let len = buffer.iter().position(|&c| c == 0).unwrap_or(buffer.len());
    String::from_utf16(&buffer[..len]).ok()
}

fn probe_hcs() -> HcsSupport {
    match pane_hcs::sys::available() {
        Ok(()) => HcsSupport::Available,
        Err(e @ pane_hcs::HcsError::MissingFunction { .. }) => HcsSupport::Unavailable {
            reason: e.to_string(),
            fix: "use Windows Server 2019 / Windows 10 1809 or later".to_owned(),
        },
        Err(e) => HcsSupport::Unavailable {
            reason: e.to_string(),
            fix: "enable the Containers feature (`Enable-WindowsOptionalFeature -Online -FeatureName \
                  Containers`, and Microsoft-Hyper-V for Hyper-V isolation), then reboot"
                .to_owned(),
        },
    }
}

/// The host's display adapters, as DXGI enumerates them.
pub fn gpu_adapters() -> Result<Vec<crate::gpu::GpuAdapter>, String> {
    use windows::Win32::Graphics::Dxgi::{CreateDXGIFactory1, DXGI_ERROR_NOT_FOUND, IDXGIFactory1};

    // SAFETY: creates a COM factory object; no arguments, the result is reference counted.
    let factory: IDXGIFactory1 =
        unsafe { CreateDXGIFactory1() }.map_err(|e| format!("CreateDXGIFactory1: {e}"))?;
    let mut adapters = Vec::new();
    for index in 0.. {
        // SAFETY: `factory` is a live IDXGIFactory1; out-of-range indexes return NOT_FOUND.
        let adapter = match unsafe { factory.EnumAdapters1(index) } {
            Ok(adapter) => adapter,
            Err(e) if e.code() == DXGI_ERROR_NOT_FOUND => break,
            Err(e) => return Err(format!("EnumAdapters1({index}): {e}")),
        };
        // SAFETY: `adapter` is a live IDXGIAdapter1 returned just above.
        let desc = unsafe { adapter.GetDesc1() }.map_err(|e| format!("GetDesc1: {e}"))?;
        let len = desc
            .Description
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(desc.Description.len());
        adapters.push(crate::gpu::GpuAdapter {
            description: String::from_utf16_lossy(&desc.Description[..len]),
            vendor_id: desc.VendorId,
            device_id: desc.DeviceId,
            luid: crate::gpu::Luid {
                low_part: desc.AdapterLuid.LowPart,
                high_part: desc.AdapterLuid.HighPart,
            },
            device_path: None,
        });
    }
    Ok(adapters)
}

/// Logical processors in every processor group: `available_parallelism` sees only this
/// process's group (at most 64), and hcsshim counts them all.
pub fn processor_count() -> Option<u32> {
    use windows::Win32::System::Threading::{ALL_PROCESSOR_GROUPS, GetActiveProcessorCount};
    // SAFETY: takes a group number by value and touches no memory of ours.
    let count = unsafe { GetActiveProcessorCount(ALL_PROCESSOR_GROUPS) };
    (count > 0).then_some(count)
}

/// The host's time zone as `GetTimeZoneInformation` reports it (hcsshim's `getTimezone`).
pub fn time_zone() -> Option<pane_gcs::messages::TimeZoneInformation> {
    use pane_gcs::messages::{SystemTime, TimeZoneInformation};
    use windows::Win32::Foundation::SYSTEMTIME;
    use windows::Win32::System::Time::{
        GetTimeZoneInformation, TIME_ZONE_ID_INVALID, TIME_ZONE_INFORMATION,
    };
    let mut zone = TIME_ZONE_INFORMATION::default();
    // SAFETY: `zone` is a writable TIME_ZONE_INFORMATION the call fills in.
    if unsafe { GetTimeZoneInformation(&raw mut zone) } == TIME_ZONE_ID_INVALID {
        return None;
    }
    let name = |wide: &[u16]| {
        let end = wide.iter().position(|&c| c == 0).unwrap_or(wide.len());
        String::from_utf16_lossy(&wide[..end])
    };
    let date = |t: SYSTEMTIME| SystemTime {
        year: t.wYear,
        month: t.wMonth,
        day_of_week: t.wDayOfWeek,
        day: t.wDay,
        hour: t.wHour,
        minute: t.wMinute,
        second: t.wSecond,
        milliseconds: t.wMilliseconds,
    };
    Some(TimeZoneInformation {
        bias: zone.Bias,
        standard_name: name(&zone.StandardName),
        standard_date: Some(date(zone.StandardDate)),
        standard_bias: zone.StandardBias,
        daylight_name: name(&zone.DaylightName),
        daylight_date: Some(date(zone.DaylightDate)),
        daylight_bias: zone.DaylightBias,
    })
}

//! Statistics of a process-isolated container read from its silo's job object, as hcsshim
//! does: HCS's own `Statistics` query computes the private working set from a snapshot of
//! every process on the machine and is slow; the job names the container's processes.
//!
//! The silo is the job object `\Container_<id>` in the NT namespace (an HCS implementation
//! detail hcsshim relies on too), so it is opened with `NtOpenJobObject`, which ntdll
//! exports but the Win32 API does not wrap. Callers fall back to HCS when this fails.
#![allow(unsafe_code)]

use std::io;

use windows::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows::Win32::Foundation::{CloseHandle, HANDLE, NTSTATUS, UNICODE_STRING};
use windows::Win32::System::JobObjects::{
    IsProcessInJob, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECTINFOCLASS,
    JobObjectBasicAccountingInformation, JobObjectBasicProcessIdList, QueryInformationJobObject,
};
use windows::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows::Win32::System::ProcessStatus::{
    K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS, PROCESS_MEMORY_COUNTERS_EX2,
};
use windows::Win32::System::SystemServices::JOB_OBJECT_QUERY;
use windows::Win32::System::Threading::{OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION};
use windows::core::{BOOL, PWSTR, s, w};

/// `JobObjectMemoryUsageInformation` (winnt.h), which the windows crate does not define.
const JOB_OBJECT_MEMORY_USAGE_INFORMATION: JOBOBJECTINFOCLASS = JOBOBJECTINFOCLASS(28);

/// `JOBOBJECT_MEMORY_USAGE_INFORMATION`: two 64-bit counters.
#[repr(C)]
#[derive(Default)]
struct JobMemoryUsage {
    job_memory: u64,
    peak_job_memory_used: u64,
}

/// A container's CPU time and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiloStatistics {
    pub user_100ns: u64,
    pub kernel_100ns: u64,
    /// Committed memory of the job.
    pub commit_bytes: u64,
    pub commit_peak_bytes: u64,
    /// Summed over the job's processes.
    pub private_working_set_bytes: u64,
}

type NtOpenJobObject =
    unsafe extern "system" fn(*mut HANDLE, u32, *const OBJECT_ATTRIBUTES) -> NTSTATUS;

/// An open job handle, closed on drop.
struct Job(HANDLE);

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: the handle was returned open by NtOpenJobObject and is closed once.
        let _ = unsafe { CloseHandle(self.0) };
    }
}

fn open_silo(container_id: &str) -> io::Result<Job> {
    // SAFETY: ntdll is mapped into every process; the module name is a static wide string.
    let ntdll = unsafe { GetModuleHandleW(w!("ntdll.dll")) }.map_err(io::Error::other)?;
    // SAFETY: `ntdll` is a loaded module and the export name a static C string.
    let address = unsafe { GetProcAddress(ntdll, s!("NtOpenJobObject")) }
        .ok_or_else(|| io::Error::other("ntdll has no NtOpenJobObject"))?;
    // SAFETY: the export's signature is (PHANDLE, ACCESS_MASK, POBJECT_ATTRIBUTES) -> NTSTATUS.
    let open = unsafe {
        std::mem::transmute::<unsafe extern "system" fn() -> isize, NtOpenJobObject>(address)
    };
    let mut name: Vec<u16> = format!(r"\Container_{container_id}")
        .encode_utf16()
        .collect();
    let bytes = u16::try_from(name.len() * 2)
        .map_err(|_| io::Error::other("the container id is too long for a silo name"))?;
    let unicode = UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: PWSTR(name.as_mut_ptr()),
    };
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(std::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(48),
        ObjectName: &raw const unicode,
        ..OBJECT_ATTRIBUTES::default()
    };
    let mut handle = HANDLE::default();
    // SAFETY: `handle` is writable; `attributes` points at `unicode`, whose buffer `name`
    // outlives the call.
    let status = unsafe { open(&raw mut handle, JOB_OBJECT_QUERY, &raw const attributes) };
    if status.is_err() {
        return Err(io::Error::other(format!(
            r"cannot open the silo \Container_{container_id}: NTSTATUS 0x{:08X}",
            status.0
        )));
    }
    Ok(Job(handle))
}

fn query<T: Default>(job: &Job, class: JOBOBJECTINFOCLASS) -> io::Result<T> {
    let mut info = T::default();
    let size = u32::try_from(std::mem::size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: `info` is a writable `T` of `size` bytes, the layout `class` fills.
    unsafe { QueryInformationJobObject(Some(job.0), class, (&raw mut info).cast(), size, None) }
        .map_err(io::Error::other)?;
    Ok(info)
}

/// The ids of the job's processes.
fn process_ids(job: &Job) -> io::Result<Vec<usize>> {
    // JOBOBJECT_BASIC_PROCESS_ID_LIST: two u32 counts, then ULONG_PTR ids. As u64 words on
    // x64 the counts fill the first word; grow until every id fits.
    let mut capacity = 256usize;
    loop {
        let mut words = vec![0u64; capacity + 1];
        let size = u32::try_from(words.len() * 8).map_err(io::Error::other)?;
        // SAFETY: `words` is a writable buffer of `size` bytes, 8-aligned as the list needs.
        let result = unsafe {
            QueryInformationJobObject(
                Some(job.0),
                JobObjectBasicProcessIdList,
                words.as_mut_ptr().cast(),
                size,
                None,
            )
        };
        let assigned = usize::try_from(words[0] & 0xFFFF_FFFF).unwrap_or(usize::MAX);
        let listed = usize::try_from(words[0] >> 32).unwrap_or(0);
        if result.is_ok() && listed >= assigned.min(capacity) && assigned <= capacity {
            return Ok(words[1..=listed.min(capacity)]
                .iter()
                .filter_map(|&id| usize::try_from(id).ok())
                .collect());
        }
        if capacity >= 1 << 16 {
            return result
                .map_err(io::Error::other)
                .and(Err(io::Error::other("too many processes in the silo")));
        }
        capacity = (assigned.max(capacity) * 2).min(1 << 16);
    }
}

/// A process's private working set, or 0 if it left the job (or exited) meanwhile.
fn private_working_set(job: &Job, pid: usize) -> u64 {
    let Ok(pid) = u32::try_from(pid) else {
        return 0;
    };
    // SAFETY: plain call; an invalid handle is reported as an error.
    let Ok(process) = (unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) })
    else {
        return 0;
    };
    let process = Job(process);
    let mut in_job = BOOL(0);
    // SAFETY: both handles are open; `in_job` is writable. A pid reused by a process outside
    // the silo must not be counted.
    let checked = unsafe { IsProcessInJob(process.0, Some(job.0), &raw mut in_job) };
    if checked.is_err() || !in_job.as_bool() {
        return 0;
    }
    let mut counters = PROCESS_MEMORY_COUNTERS_EX2 {
        cb: u32::try_from(std::mem::size_of::<PROCESS_MEMORY_COUNTERS_EX2>()).unwrap_or(0),
        ..PROCESS_MEMORY_COUNTERS_EX2::default()
    };
    // SAFETY: `counters` is a writable EX2 structure whose `cb` says its size, which the
    // call accepts in place of the base structure.
    let ok = unsafe {
        K32GetProcessMemoryInfo(
            process.0,
            (&raw mut counters).cast::<PROCESS_MEMORY_COUNTERS>(),
            counters.cb,
        )
    };
    if ok.as_bool() {
        counters.PrivateWorkingSetSize as u64
    } else {
        0
    }
}

/// The container's statistics from its silo.
pub fn silo_statistics(container_id: &str) -> io::Result<SiloStatistics> {
    let job = open_silo(container_id)?;
    let cpu: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION =
        query(&job, JobObjectBasicAccountingInformation)?;
    let memory: JobMemoryUsage = query(&job, JOB_OBJECT_MEMORY_USAGE_INFORMATION)?;
    let private_working_set_bytes = process_ids(&job)?
        .into_iter()
        .map(|pid| private_working_set(&job, pid))
        .sum();
    Ok(SiloStatistics {
        user_100ns: u64::try_from(cpu.TotalUserTime).unwrap_or(0),
        kernel_100ns: u64::try_from(cpu.TotalKernelTime).unwrap_or(0),
        commit_bytes: memory.job_memory,
        commit_peak_bytes: memory.peak_job_memory_used,
        private_working_set_bytes,
    })
}

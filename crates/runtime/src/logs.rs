//! Container logs: output lines persisted as JSON lines (timestamp, stream, message) in the
//! container's directory, rotated at a size limit, read back with `tail` and `since`, and
//! the pumps that copy a process's pipes into them.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use crate::backend::ProcessOutput;
use crate::types::{LogEntry, LogOptions, LogStream};

/// Rotate the current file when it passes this size; keep this many old files.
pub const DEFAULT_LIMIT: u64 = 10 << 20;
pub const DEFAULT_KEEP: usize = 3;

/// Appends log lines to `<dir>/log.json`, rotating to `log.json.1`, `.2`, …
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    limit: u64,
    keep: usize,
}

impl LogWriter {
    pub fn open(dir: &Path, limit: u64, keep: usize) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log.json");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file,
            size,
            limit,
            keep,
        })
    }

    pub fn append(&mut self, entry: &LogEntry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.limit {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        for index in (1..self.keep).rev() {
            let from = rotated(&self.path, index);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, index + 1))?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// Splits a stream's bytes into lines; a partial last line waits for more.
#[derive(Debug)]
pub struct LineSplitter {
    stream: LogStream,
    pending: Vec<u8>,
    exec_id: Option<String>,
}

impl LineSplitter {
    pub fn new(stream: LogStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            exec_id: None,
        }
    }

    /// The complete lines in `bytes` (plus what was pending), as entries.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<LogEntry> {
        self.pending.extend_from_slice(bytes);
        let mut entries = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            entries.push(self.entry(&line));
        }
        entries
    }

    /// What is left when the stream ends.
    pub fn finish(&mut self) -> Option<LogEntry> {
        (!self.pending.is_empty()).then(|| {
            let line = std::mem::take(&mut self.pending);
            self.entry(&line)
        })
    }

    /// Entries of an exec's output carry its id, so `logs` can tell them from the workload's.
    #[must_use]
    pub fn for_exec(mut self, exec_id: String) -> Self {
        self.exec_id = Some(exec_id);
        self
    }

    fn entry(&self, line: &[u8]) -> LogEntry {
        let text = String::from_utf8_lossy(line);
        LogEntry {
            timestamp: Utc::now(),
            stream: self.stream,
            message: text.trim_end_matches(['\n', '\r']).to_owned(),
            exec_id: self.exec_id.clone(),
        }
    }
}

/// Reads the lines appended to a container's log since the last call (`logs -f`). A
/// rotation between two calls is noticed by the file shrinking; the rest of the rotated
/// file is read first, so no line is skipped.
#[derive(Debug)]
pub struct LogFollower {
    current: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LogFollower {
    /// Follows from the end of what is there now.
    pub fn from_end(dir: &Path) -> Self {
        let current = dir.join("log.json");
        let offset = std::fs::metadata(&current).map_or(0, |m| m.len());
        Self {
            current,
            offset,
            partial: Vec::new(),
        }
    }

    /// The complete entries written since the last call.
    pub fn poll(&mut self) -> io::Result<Vec<LogEntry>> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let length = std::fs::metadata(&self.current).map_or(0, |m| m.len());
        let mut bytes = Vec::new();
        if length < self.offset {
            if let Ok(mut rotated) = File::open(rotated(&self.current, 1)) {
                rotated.seek(SeekFrom::Start(self.offset))?;
                rotated.read_to_end(&mut bytes)?;
            }
            self.offset = 0;
        }
        if let Ok(mut file) = File::open(&self.current) {
            file.seek(SeekFrom::Start(self.offset))?;
            self.offset += file.read_to_end(&mut bytes)? as u64;
        }
        self.partial.extend_from_slice(&bytes);
        let mut entries = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if let Ok(entry) = serde_json::from_slice::<LogEntry>(&line) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

/// Reads a container's logs, oldest first, as `options` asks (`tail` 0 or absent: all).
pub fn read_logs(dir: &Path, options: &LogOptions, keep: usize) -> io::Result<Vec<LogEntry>> {
    let current = dir.join("log.json");
    let mut files: Vec<PathBuf> = (1..=keep).rev().map(|i| rotated(&current, i)).collect();
    files.push(current);
    let mut entries = Vec::new();
    for path in files.iter().filter(|p| p.exists()) {
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line?;
            // A line cut by a crash mid-write is skipped rather than failing the read.
            if let Ok(entry) = serde_json::from_str::<LogEntry>(&line)
                && options.since.is_none_or(|since| entry.timestamp >= since)
            {
                entries.push(entry);
            }
        }
    }
    if let Some(tail) = options.tail.filter(|t| *t > 0)
        && entries.len() > tail
    {
        entries.drain(..entries.len() - tail);
    }
    Ok(entries)
}

/// A container's log writer, shared by the workload's and the execs' pumps so rotation
/// happens in one place.
pub(crate) type SharedLog = Arc<Mutex<LogWriter>>;

/// Hands a pipe's bytes to `sink` as they arrive, until the pipe closes or `sink` returns
/// false.
async fn drain(mut reader: Box<dyn ProcessOutput>, mut sink: impl FnMut(&[u8]) -> bool) {
    use tokio::io::AsyncReadExt as _;
    let mut buffer = vec![0u8; 64 << 10];
    while let Ok(n) = reader.read(&mut buffer).await {
        if n == 0 || !sink(&buffer[..n]) {
            break;
        }
    }
}

/// Persists a pipe as log lines until it closes, handing each chunk to `forward` too (an
/// exec's stream); the log keeps going if `forward`'s reader has gone.
pub(crate) async fn log_pump(
    reader: Box<dyn ProcessOutput>,
    mut splitter: LineSplitter,
    writer: SharedLog,
    mut forward: impl FnMut(&[u8]) + Send,
) {
    let append = |entries: Vec<LogEntry>| {
        if let Ok(mut writer) = writer.lock() {
            for entry in &entries {
                if let Err(e) = writer.append(entry) {
                    tracing::warn!(error = %e, "a log line was not persisted");
                }
            }
        }
    };
    drain(reader, |bytes| {
        forward(bytes);
        append(splitter.push(bytes));
        true
    })
    .await;
    append(splitter.finish().into_iter().collect());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(message: &str) -> LogEntry {
        LogEntry {
            timestamp: Utc::now(),
            stream: LogStream::Stdout,
            message: message.into(),
            exec_id: None,
        }
    }

    #[test]
    fn lines_are_split_across_chunks_and_the_rest_is_flushed() {
        let mut splitter = LineSplitter::new(LogStream::Stderr);
        assert!(splitter.push(b"hel").is_empty());
        let lines: Vec<String> = splitter
            .push(b"lo\r\nworld\npart")
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(lines, ["hello", "world"]);
        assert_eq!(
            splitter.finish().map(|e| (e.message, e.stream)),
            Some(("part".into(), LogStream::Stderr))
        );
        assert!(splitter.finish().is_none());
    }

    #[test]
    fn rotation_keeps_the_newest_files_and_reads_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), 200, 2).unwrap();
        for i in 0..20 {
            writer.append(&entry(&format!("line {i:02}"))).unwrap();
        }
        assert!(dir.path().join("log.json.1").exists() && dir.path().join("log.json.2").exists());
        assert!(
            !dir.path().join("log.json.3").exists(),
            "only `keep` old files"
        );
        let all = read_logs(dir.path(), &LogOptions::default(), 2).unwrap();
        let messages: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.last(), Some(&"line 19"));
        assert!(
            messages.windows(2).all(|w| w[0] < w[1]),
            "oldest first: {messages:?}"
        );
        assert!(messages.len() < 20, "the oldest lines were rotated away");
        let tail = read_logs(
            dir.path(),
            &LogOptions {
                tail: Some(3),
                since: None,
            },
            2,
        )
        .unwrap();
        assert_eq!(
            tail.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["line 17", "line 18", "line 19"]
        );
    }

    #[test]
    fn a_follower_sees_new_lines_once_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), 200, 2).unwrap();
        writer.append(&entry("before")).unwrap();
        let mut follower = LogFollower::from_end(dir.path());
        assert!(follower.poll().unwrap().is_empty(), "starts at the end");
        let mut written = Vec::new();
        for i in 0..6 {
            let message = format!("line {i}");
            writer.append(&entry(&message)).unwrap();
            written.push(message);
        }
        // Several rotations happened (200-byte limit); lines since the last poll in the
        // rotated file are still delivered when only one rotation separates two polls.
        let mut seen: Vec<String> = follower
            .poll()
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        for i in 6..9 {
            let message = format!("line {i}");
            writer.append(&entry(&message)).unwrap();
            written.push(message.clone());
            seen.extend(follower.poll().unwrap().into_iter().map(|e| e.message));
        }
        assert_eq!(seen[seen.len() - 3..], written[written.len() - 3..]);
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(unique, seen, "no line twice");
    }

    #[test]
    fn since_filters_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), DEFAULT_LIMIT, DEFAULT_KEEP).unwrap();
        writer.append(&entry("old")).unwrap();
        let cut = Utc::now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        writer.append(&entry("new")).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("log.json"))
            .unwrap()
            .write_all(b"{\"torn")
            .unwrap();
        let since = read_logs(
            dir.path(),
            &LogOptions {
                tail: None,
                since: Some(cut),
            },
            DEFAULT_KEEP,
        )
        .unwrap();
        assert_eq!(
            since.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["new"]
        );
    }
}

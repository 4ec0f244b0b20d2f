//! Container logs of a pod, in the CRI log format that kubelet, CRI-O (conmon, conmon-rs) and
//! containerd write and `kubectl logs` reads.
//!
//! # On-disk layout
//!
//! ```text
//! <pod_dir>/logs/<container>/<N>.log      live file of instance N (the Nth start, from 0)
//! <pod_dir>/logs/<container>/<N>.log.1    previous file of instance N after a rotation
//! <pod_dir>/logs/<container>/<N>.log.4    oldest kept file (MAX_FILES = 5 files per instance)
//! ```
//!
//! One record per line: `<timestamp> <stream> <tag> <content>\n`, where
//! - `timestamp` is RFC 3339 in UTC with exactly nine fractional digits
//!   (`2026-01-02T03:04:05.123456789Z`);
//! - `stream` is `stdout` or `stderr`;
//! - `tag` is `F` for the (last piece of a) full line and `P` for a piece of a line longer
//!   than [`MAX_LINE_SIZE`] (conmon's limit); the pieces of one line are `P P … F` in that
//!   stream, possibly interleaved with records of the other stream;
//! - `content` is the raw bytes of the line without its newline (not necessarily UTF-8).
//!
//! A line the container never terminated (its last output before EOF) is written by
//! [`LogWriter::flush_partial`] as a `F` record too, as conmon does; readers print every
//! logical line with a newline, as kubelet does.
//!
//! The writer rotates before a record would make the live file larger than [`MAX_FILE_SIZE`]:
//! `<N>.log.3` → `<N>.log.4`, …, `<N>.log` → `<N>.log.1`, dropping the oldest. A reader that
//! follows the live file notices the rename by its inode and catches up through the rotated
//! files it has not read.
//!
//! Writes are plain blocking `std::fs` writes: the pod supervisor is single-threaded and a
//! log write is a page-cache copy (crates.md §5: `tokio::fs` would add blocking-pool threads).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Directory under the pod directory that holds one directory of logs per container.
pub const LOGS_DIR: &str = "logs";
/// Rotate when a record would make the live file larger than this (kubelet's
/// `containerLogMaxSize` default).
pub const MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;
/// Files kept per instance: the live one plus `MAX_FILES - 1` rotated ones (kubelet's
/// `containerLogMaxFiles` default).
pub const MAX_FILES: usize = 5;
/// Longest content of one record; longer lines are split into `P` records (conmon's
/// `STDIO_BUF_SIZE`-based limit, 16 KiB).
pub const MAX_LINE_SIZE: usize = 16 * 1024;
/// How often `read_logs` with `follow` looks for new data.
pub const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(150);

/// Log files hold whatever the containers print, secrets included: owner read-write, group
/// read, as containerd creates them.
const LOG_FILE_MODE: u32 = 0o640;
const LOG_DIR_MODE: u32 = 0o750;
const LIVE_SUFFIX: &str = "log";
const READ_CHUNK: usize = 64 * 1024;
/// A reader drops a "record" longer than this without a newline: the writer never produces
/// one (its records are at most `MAX_LINE_SIZE` plus a small header), so it is garbage, and
/// keeping it would let a corrupt file grow the reader's memory without bound.
const MAX_RECORD: usize = 1024 * 1024;
/// A reassembled `P … F` line longer than this is printed in pieces, each on its own line,
/// so that a container printing endless output without a newline cannot make `pod logs -f`
/// hold it all in memory.
const MAX_REASSEMBLED_LINE: usize = 4 * 1024 * 1024;
/// humantime cannot format beyond the last nanosecond of year 9999 (and panics before 1970).
const LAST_FORMATTABLE_SECOND: u64 = 253_402_300_799;

/// Errors of the pod log module. Messages are lowercase and name the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "invalid container name `{0}` for a log directory: it must be one non-empty path \
         component"
    )]
    InvalidContainerName(String),
    #[error("{op} `{}`: {source}{}", .path.display(), hint(.source))]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("rotate log file `{}` to `{}`: {source}{}", .from.display(), .to.display(), hint(.source))]
    Rotate {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error(
        "container \"{container}\" in pod \"{pod}\" is waiting to start: no log files in `{}`",
        .dir.display()
    )]
    NotStarted {
        container: String,
        pod: String,
        dir: PathBuf,
    },
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    PreviousNotFound { container: String, pod: String },
    #[error("write logs to the output: {0}")]
    Output(#[source] io::Error),
}

fn hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(28) => "; hint: the file system holding the pod directory is full (ENOSPC)",
        Some(122) => "; hint: the disk quota of the pod directory's owner is exhausted (EDQUOT)",
        _ => "",
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The output stream a piece of log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The name used in the CRI log format.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn parse(name: &[u8]) -> Option<Stream> {
        match name {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Partial,
    Full,
}

impl Tag {
    fn as_str(self) -> &'static str {
        match self {
            Tag::Partial => "P",
            Tag::Full => "F",
        }
    }
}

/// Size limits of a [`LogWriter`]; the defaults are the module constants, tests use small ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Rotate before a record would make the live file larger than this many bytes (a single
    /// record larger than this still goes to an empty file).
    pub max_file_size: u64,
    /// Files kept per instance, the live one included (at least 1).
    pub max_files: usize,
    /// Longest content of one record in bytes (at least 1).
    pub max_line_size: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_file_size: MAX_FILE_SIZE,
            max_files: MAX_FILES,
            max_line_size: MAX_LINE_SIZE,
        }
    }
}

/// `<pod_dir>/logs/<container>`, refusing names that would leave that directory.
fn container_dir(pod_dir: &Path, container: &str) -> Result<PathBuf, LogError> {
    // Container names are DNS-1123 labels once the manifest is validated; this check keeps
    // the module safe on its own (no `..`, no `/`, no NUL that the kernel would reject late).
    if container.is_empty()
        || container == "."
        || container == ".."
        || container.contains('/')
        || container.contains('\0')
    {
        return Err(LogError::InvalidContainerName(container.to_owned()));
    }
    Ok(pod_dir.join(LOGS_DIR).join(container))
}

fn live_path(dir: &Path, instance: u32) -> PathBuf {
    dir.join(format!("{instance}.{LIVE_SUFFIX}"))
}

fn rotated_path(dir: &Path, instance: u32, generation: usize) -> PathBuf {
    dir.join(format!("{instance}.{LIVE_SUFFIX}.{generation}"))
}

/// Decimal without sign or leading zeros, so that each number has exactly one file name.
fn parse_number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// `<N>.log` → `(N, None)`, `<N>.log.<k>` (k ≥ 1) → `(N, Some(k))`, anything else → `None`.
fn parse_file_name(name: &str) -> Option<(u32, Option<u32>)> {
    let (instance, rest) = name.split_once('.')?;
    let instance = parse_number(instance)?;
    if rest == LIVE_SUFFIX {
        return Some((instance, None));
    }
    let generation = parse_number(rest.strip_prefix(LIVE_SUFFIX)?.strip_prefix('.')?)?;
    (generation >= 1).then_some((instance, Some(generation)))
}

/// All `(instance, generation)` pairs in a container's log directory; empty when it is missing.
fn list_files(dir: &Path) -> Result<Vec<(u32, Option<u32>)>, LogError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read log directory", dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read log directory", dir))?;
        if let Some(parsed) = entry.file_name().to_str().and_then(parse_file_name) {
            found.push(parsed);
        }
    }
    Ok(found)
}

/// Rotated files of one instance, oldest (highest generation) first.
fn rotated_files(dir: &Path, instance: u32) -> Result<Vec<PathBuf>, LogError> {
    let mut generations: Vec<u32> = list_files(dir)?
        .into_iter()
        .filter_map(|(n, generation)| if n == instance { generation } else { None })
        .collect();
    generations.sort_unstable_by(|a, b| b.cmp(a));
    Ok(generations
        .into_iter()
        .map(|g| rotated_path(dir, instance, g as usize))
        .collect())
}

/// The instances (starts) of a container that have log files, in ascending order. Empty when
/// there are none or the directory cannot be read.
pub fn instances(pod_dir: &Path, container: &str) -> Vec<u32> {
    let Ok(dir) = container_dir(pod_dir, container) else {
        return Vec::new();
    };
    let mut found: Vec<u32> = list_files(&dir)
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// Removes every log of the pod (`pod rm`). A missing log directory is not an error.
pub fn remove_all(pod_dir: &Path) -> Result<(), LogError> {
    let dir = pod_dir.join(LOGS_DIR);
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_err("remove log directory", &dir)(e))
        }
        _ => Ok(()),
    }
}

/// Removes the log files of all but the newest `keep` instances of a container, as kubelet's
/// container garbage collection drops the logs of old dead containers (it keeps the current
/// and the previous one: `keep = 2` gives `--previous` something to show). Without it a
/// crash-looping container adds a file per restart until `pod rm`.
pub fn prune_instances(pod_dir: &Path, container: &str, keep: usize) -> Result<(), LogError> {
    let dir = container_dir(pod_dir, container)?;
    let all = instances(pod_dir, container);
    let Some(&last_removed) = all.len().checked_sub(keep + 1).and_then(|i| all.get(i)) else {
        return Ok(());
    };
    for (instance, generation) in list_files(&dir)? {
        if instance > last_removed {
            continue;
        }
        let path = match generation {
            None => live_path(&dir, instance),
            Some(g) => rotated_path(&dir, instance, g as usize),
        };
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove log file", &path)(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// RFC 3339 in UTC with nine fractional digits. A clock before 1970 or after 9999 is clamped:
/// humantime panics on the former and fails on the latter, and a wrong clock must not take
/// the supervisor down.
fn format_timestamp(now: SystemTime) -> String {
    let last = UNIX_EPOCH + Duration::new(LAST_FORMATTABLE_SECOND, 999_999_999);
    humantime::format_rfc3339_nanos(now.clamp(UNIX_EPOCH, last)).to_string()
}

/// Splits `start..end` (content of one line) into records of at most `max` bytes: `P` pieces
/// and a final `F` (an empty line is one empty `F`).
fn split_line(records: &mut Vec<(Tag, Range<usize>)>, mut start: usize, end: usize, max: usize) {
    while end - start > max {
        records.push((Tag::Partial, start..start + max));
        start += max;
    }
    records.push((Tag::Full, start..end));
}

fn open_live(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_FILE_MODE)
        .open(path)
        .map_err(io_err("open log file", path))
}

/// Writes the output of one instance of one container as CRI log records.
///
/// Feed it whatever `read(2)` returned from the container's stdout and stderr pipes; it keeps
/// the unterminated tail of each stream until its newline arrives (or until it exceeds the
/// line limit, which makes `P` records). Call [`LogWriter::flush_partial`] at EOF.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    path: PathBuf,
    instance: u32,
    file: File,
    /// Bytes in the live file, `batch` included.
    size: u64,
    /// Records of the current call, written with one `write(2)` so that a reader polling the
    /// file rarely sees half a record.
    batch: Vec<u8>,
    /// Unterminated tail of stdout and stderr.
    tails: [Vec<u8>; 2],
    limits: LogLimits,
}

impl LogWriter {
    /// Creates `<pod_dir>/logs/<container>/` if needed and opens `<instance>.log` for appending
    /// (appending, so that a restarted supervisor that reopens an instance loses nothing).
    pub fn create(pod_dir: &Path, container: &str, instance: u32) -> Result<LogWriter, LogError> {
        Self::create_with_limits(pod_dir, container, instance, LogLimits::default())
    }

    /// [`LogWriter::create`] with other size limits.
    pub fn create_with_limits(
        pod_dir: &Path,
        container: &str,
        instance: u32,
        limits: LogLimits,
    ) -> Result<LogWriter, LogError> {
        let dir = container_dir(pod_dir, container)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(LOG_DIR_MODE)
            .create(&dir)
            .map_err(io_err("create log directory", &dir))?;
        let path = live_path(&dir, instance);
        let file = open_live(&path)?;
        let size = file
            .metadata()
            .map_err(io_err("stat log file", &path))?
            .len();
        Ok(LogWriter {
            dir,
            path,
            instance,
            file,
            size,
            batch: Vec::new(),
            tails: [Vec::new(), Vec::new()],
            limits: LogLimits {
                max_files: limits.max_files.max(1),
                max_line_size: limits.max_line_size.max(1),
                ..limits
            },
        })
    }

    /// The live log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The instance this writer writes.
    pub fn instance(&self) -> u32 {
        self.instance
    }

    /// Appends a chunk of `stream`'s output, stamping every record it completes with `now`.
    ///
    /// On an I/O error the records of this chunk that were not written yet are lost (the
    /// container keeps running; the caller decides whether to report it).
    pub fn write(&mut self, stream: Stream, data: &[u8], now: SystemTime) -> Result<(), LogError> {
        if data.is_empty() {
            return Ok(());
        }
        let max = self.limits.max_line_size;
        let mut buf = std::mem::take(&mut self.tails[stream.index()]);
        buf.extend_from_slice(data);

        let mut records = Vec::new();
        let mut start = 0;
        while let Some(offset) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            split_line(&mut records, start, end, max);
            start = end + 1;
        }
        // The unterminated tail waits for its newline, except whole pieces of a line that is
        // already too long: those go out as `P` now, so the tail stays below one record.
        while buf.len() - start > max {
            records.push((Tag::Partial, start..start + max));
            start += max;
        }
        // Keep the tail before doing I/O, so that a write error does not lose it.
        self.tails[stream.index()] = buf.split_off(start);
        if records.is_empty() {
            return Ok(());
        }
        self.emit(stream, &format_timestamp(now), &buf, &records)
    }

    /// Writes the unterminated tails of both streams as `F` records (at EOF of the pipes).
    pub fn flush_partial(&mut self, now: SystemTime) -> Result<(), LogError> {
        self.flush_stream(Stream::Stdout, now)?;
        self.flush_stream(Stream::Stderr, now)
    }

    /// Writes the unterminated tail of one stream as a `F` record (at EOF of that pipe).
    pub fn flush_stream(&mut self, stream: Stream, now: SystemTime) -> Result<(), LogError> {
        let buf = std::mem::take(&mut self.tails[stream.index()]);
        if buf.is_empty() {
            return Ok(());
        }
        let mut records = Vec::new();
        split_line(&mut records, 0, buf.len(), self.limits.max_line_size);
        self.emit(stream, &format_timestamp(now), &buf, &records)
    }

    fn emit(
        &mut self,
        stream: Stream,
        timestamp: &str,
        buf: &[u8],
        records: &[(Tag, Range<usize>)],
    ) -> Result<(), LogError> {
        for (tag, range) in records {
            let content = &buf[range.clone()];
            // "<ts> <stream> <tag> <content>\n"
            let len = timestamp.len() + stream.as_str().len() + content.len() + 5;
            let len = len as u64;
            if self.size > 0 && self.size + len > self.limits.max_file_size {
                self.write_batch()?;
                self.rotate()?;
            }
            self.batch.extend_from_slice(timestamp.as_bytes());
            self.batch.push(b' ');
            self.batch.extend_from_slice(stream.as_str().as_bytes());
            self.batch.push(b' ');
            self.batch.extend_from_slice(tag.as_str().as_bytes());
            self.batch.push(b' ');
            self.batch.extend_from_slice(content);
            self.batch.push(b'\n');
            self.size += len;
        }
        self.write_batch()
    }

    fn write_batch(&mut self) -> Result<(), LogError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.batch);
        self.batch.clear();
        if let Err(e) = result {
            // Part of the batch may be in the file: trust the file, not the count.
            self.size = self.file.metadata().map_or(self.size, |m| m.len());
            return Err(io_err("write log file", &self.path)(e));
        }
        Ok(())
    }

    /// `<N>.log.{k}` → `<N>.log.{k+1}` from the oldest down, then `<N>.log` → `<N>.log.1` and
    /// a fresh `<N>.log`. Renames keep the inode, which is how a following reader notices.
    fn rotate(&mut self) -> Result<(), LogError> {
        let max_files = self.limits.max_files;
        if max_files <= 1 {
            // Nothing rotated is kept: unlink and start over (a new inode, like a rotation).
            fs::remove_file(&self.path).map_err(io_err("remove log file", &self.path))?;
        } else {
            let oldest = rotated_path(&self.dir, self.instance, max_files - 1);
            match fs::remove_file(&oldest) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove log file", &oldest)(e));
                }
                _ => {}
            }
            for generation in (1..max_files - 1).rev() {
                let from = rotated_path(&self.dir, self.instance, generation);
                let to = rotated_path(&self.dir, self.instance, generation + 1);
                match fs::rename(&from, &to) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(LogError::Rotate {
                            from,
                            to,
                            source: e,
                        });
                    }
                    _ => {}
                }
            }
            let to = rotated_path(&self.dir, self.instance, 1);
            fs::rename(&self.path, &to).map_err(|source| LogError::Rotate {
                from: self.path.clone(),
                to,
                source,
            })?;
        }
        self.file = open_live(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// What `pod logs` prints; the fields mirror `kubectl logs` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOpts {
    /// `--previous`: the instance before the latest one.
    pub previous: bool,
    /// `--tail N`: only the last N lines (across rotated files) of what exists when reading
    /// starts; everything that follows with `follow` is printed.
    pub tail: Option<usize>,
    /// `--timestamps`: prefix each line with its RFC 3339 timestamp and a space.
    pub timestamps: bool,
    /// `-f`: keep printing new lines until the instance is done.
    pub follow: bool,
    /// `--since-time`: only lines stamped at or after this time.
    pub since: Option<SystemTime>,
}

/// One parsed record; borrowed from the line it came from.
struct Record<'a> {
    timestamp: &'a str,
    time: SystemTime,
    stream: Stream,
    tag: Tag,
    content: &'a [u8],
}

fn split_at_space(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

/// Parses `<timestamp> <stream> <tag>[:<more tags>] <content>` (the line without its `\n`);
/// `None` for anything else, which readers skip.
fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let (timestamp, rest) = split_at_space(line)?;
    let (stream, rest) = split_at_space(rest)?;
    // An empty `F` record may have lost its trailing space (hand-edited or other writers).
    let (tags, content) = split_at_space(rest).unwrap_or((rest, &[]));
    let timestamp = std::str::from_utf8(timestamp).ok()?;
    let time = humantime::parse_rfc3339(timestamp).ok()?;
    let stream = Stream::parse(stream)?;
    // The CRI tag field is `:`-separated; the first tag is P or F.
    let tag = match tags.split(|&b| b == b':').next()? {
        b"P" => Tag::Partial,
        b"F" => Tag::Full,
        _ => return None,
    };
    Some(Record {
        timestamp,
        time,
        stream,
        tag,
        content,
    })
}

/// A logical (reassembled) line, stamped with the time of its first record.
struct LogLine {
    timestamp: String,
    time: SystemTime,
    content: Vec<u8>,
}

/// Turns records into output lines: reassembly of `P … F` per stream, `since`, `tail`,
/// `timestamps`.
struct Printer<'o> {
    since: Option<SystemTime>,
    timestamps: bool,
    pending: [Option<LogLine>; 2],
    /// The last `tail` lines, while reading what existed at the start.
    ring: Option<(VecDeque<LogLine>, usize)>,
    out: &'o mut dyn Write,
}

impl<'o> Printer<'o> {
    fn new(opts: &ReadOpts, out: &'o mut dyn Write) -> Self {
        Printer {
            since: opts.since,
            timestamps: opts.timestamps,
            pending: [None, None],
            ring: opts.tail.map(|n| (VecDeque::with_capacity(n.min(4096)), n)),
            out,
        }
    }

    fn record(&mut self, raw: &[u8]) -> Result<(), LogError> {
        let Some(record) = parse_record(raw) else {
            return Ok(());
        };
        let slot = record.stream.index();
        let mut line = match self.pending[slot].take() {
            Some(mut line) => {
                line.content.extend_from_slice(record.content);
                line
            }
            None => LogLine {
                timestamp: record.timestamp.to_owned(),
                time: record.time,
                content: record.content.to_vec(),
            },
        };
        if record.tag == Tag::Full {
            return self.line(line);
        }
        if line.content.len() >= MAX_REASSEMBLED_LINE {
            // Print what we have as a line and start a new one with this record's stamp.
            self.line(LogLine {
                timestamp: line.timestamp,
                time: line.time,
                content: std::mem::take(&mut line.content),
            })?;
            line.timestamp = record.timestamp.to_owned();
            line.time = record.time;
        }
        self.pending[slot] = Some(line);
        Ok(())
    }

    fn line(&mut self, line: LogLine) -> Result<(), LogError> {
        if self.since.is_some_and(|since| line.time < since) {
            return Ok(());
        }
        if let Some((ring, n)) = &mut self.ring {
            if *n > 0 {
                if ring.len() == *n {
                    ring.pop_front();
                }
                ring.push_back(line);
            }
            return Ok(());
        }
        self.print(&line)
    }

    fn print(&mut self, line: &LogLine) -> Result<(), LogError> {
        let mut write = || -> io::Result<()> {
            if self.timestamps {
                self.out.write_all(line.timestamp.as_bytes())?;
                self.out.write_all(b" ")?;
            }
            self.out.write_all(&line.content)?;
            self.out.write_all(b"\n")
        };
        write().map_err(LogError::Output)
    }

    /// Prints the lines kept for `tail`; from now on lines are printed as they come.
    fn end_tail(&mut self) -> Result<(), LogError> {
        if let Some((ring, _)) = self.ring.take() {
            for line in &ring {
                self.print(line)?;
            }
        }
        Ok(())
    }

    /// Lines left unfinished by a writer that died mid-line are printed as complete lines.
    fn finish(&mut self) -> Result<(), LogError> {
        let mut left: Vec<LogLine> = self.pending.iter_mut().filter_map(Option::take).collect();
        left.sort_by_key(|line| line.time);
        for line in left {
            self.line(line)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        self.out.flush().map_err(LogError::Output)
    }
}

/// `(st_dev, st_ino)`: what stays with a file across a rename.
type FileId = (u64, u64);

fn file_id(meta: &fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// An open log file read up to some point; `carry` holds an incomplete last record.
struct Cursor {
    path: PathBuf,
    file: File,
    id: FileId,
    carry: Vec<u8>,
    /// Dropping a runaway record up to its newline.
    discarding: bool,
    buf: Vec<u8>,
}

impl Cursor {
    /// `None` when the file does not exist (any more): a rotation renamed it meanwhile.
    fn open(path: &Path) -> Result<Option<Cursor>, LogError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open log file", path)(e)),
        };
        let id = file_id(&file.metadata().map_err(io_err("stat log file", path))?);
        Ok(Some(Cursor {
            path: path.to_path_buf(),
            file,
            id,
            carry: Vec::new(),
            discarding: false,
            buf: vec![0; READ_CHUNK],
        }))
    }

    /// Reads to EOF, handing every complete record to `printer`. Returns whether it read
    /// anything.
    fn drain(&mut self, printer: &mut Printer<'_>) -> Result<bool, LogError> {
        let mut got = false;
        loop {
            let n = match self.file.read(&mut self.buf) {
                Ok(0) => return Ok(got),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read log file", &self.path)(e)),
            };
            got = true;
            let mut chunk = &self.buf[..n];
            if self.discarding {
                match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.discarding = false;
                        chunk = &chunk[i + 1..];
                    }
                    None => continue,
                }
            }
            self.carry.extend_from_slice(chunk);
            if let Some(last) = self.carry.iter().rposition(|&b| b == b'\n') {
                for raw in self.carry[..last].split(|&b| b == b'\n') {
                    printer.record(raw)?;
                }
                self.carry.drain(..=last);
            }
            if self.carry.len() > MAX_RECORD {
                self.carry.clear();
                self.discarding = true;
            }
        }
    }

    /// The file will not grow any more: a last record without its newline (a writer killed
    /// mid-write) is used as it is.
    fn finish(mut self, printer: &mut Printer<'_>) -> Result<(), LogError> {
        let carry = std::mem::take(&mut self.carry);
        if !carry.is_empty() && !self.discarding {
            printer.record(&carry)?;
        }
        Ok(())
    }
}

fn pod_name(pod_dir: &Path) -> String {
    pod_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Prints the logs of one instance of a container, as `kubectl logs` does.
///
/// The latest instance, or with `previous` the one before it (`previous terminated container
/// "C" in pod "P" not found` when there is none). The pod name in errors is the last
/// component of `pod_dir`.
///
/// With `follow`, polls every [`FOLLOW_POLL_INTERVAL`] for new records until
/// `still_running()` returns false (it must return false only once the writer of this
/// instance is done, i.e. after the supervisor drained the pipes) or a newer instance has
/// log files, and then prints what was still unread: kubectl follows one instance.
///
/// A closed output (`pod logs | head`) ends reading without an error. Malformed records
/// are skipped.
pub fn read_logs(
    pod_dir: &Path,
    container: &str,
    opts: &ReadOpts,
    out: &mut dyn Write,
    still_running: &dyn Fn() -> bool,
) -> Result<(), LogError> {
    match read_instance(pod_dir, container, opts, out, still_running) {
        Err(LogError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

fn read_instance(
    pod_dir: &Path,
    container: &str,
    opts: &ReadOpts,
    out: &mut dyn Write,
    still_running: &dyn Fn() -> bool,
) -> Result<(), LogError> {
    let dir = container_dir(pod_dir, container)?;
    let all = instances(pod_dir, container);
    let chosen = if opts.previous {
        all.len().checked_sub(2).map(|i| all[i])
    } else {
        all.last().copied()
    };
    let Some(instance) = chosen else {
        let container = container.to_owned();
        let pod = pod_name(pod_dir);
        return Err(if opts.previous {
            LogError::PreviousNotFound { container, pod }
        } else {
            LogError::NotStarted {
                container,
                pod,
                dir,
            }
        });
    };

    let mut printer = Printer::new(opts, out);
    let mut files = rotated_files(&dir, instance)?;
    files.push(live_path(&dir, instance));
    // Open them all before reading any: the handles pin the files, so a rotation while we
    // read does not shift a name under us (and make us skip or repeat a file).
    let mut opened = Vec::with_capacity(files.len());
    for path in &files {
        opened.extend(Cursor::open(path)?);
    }
    // `cur` is the newest file read so far; with `follow` it is the one being watched.
    let mut cur: Option<Cursor> = None;
    for mut next in opened {
        if let Some(done) = cur.take() {
            done.finish(&mut printer)?;
        }
        next.drain(&mut printer)?;
        cur = Some(next);
    }

    if opts.follow {
        printer.end_tail()?;
        printer.flush()?;
        let live = live_path(&dir, instance);
        loop {
            // Sample the stop conditions before reading: if the writer was done at that
            // point, the read that follows gets everything it wrote.
            let running = still_running();
            let superseded = instances(pod_dir, container).iter().any(|&n| n > instance);
            let got = follow_step(&dir, instance, &live, &mut cur, &mut printer)?;
            printer.flush()?;
            if !running || superseded {
                break;
            }
            if !got {
                std::thread::sleep(FOLLOW_POLL_INTERVAL);
            }
        }
    }
    if let Some(done) = cur.take() {
        done.finish(&mut printer)?;
    }
    printer.finish()?;
    printer.end_tail()?;
    printer.flush()
}

/// Reads what was appended to the watched file; if the live path now names another file
/// (rotation), reads the rest of the old one, the rotated files newer than it, and switches
/// to the new live file. Returns whether anything happened.
fn follow_step(
    dir: &Path,
    instance: u32,
    live: &Path,
    cur: &mut Option<Cursor>,
    printer: &mut Printer<'_>,
) -> Result<bool, LogError> {
    let mut got = false;
    loop {
        if let Some(c) = cur.as_mut() {
            got |= c.drain(printer)?;
        }
        let live_id = match fs::metadata(live) {
            Ok(meta) => file_id(&meta),
            // Between a rotation's rename and the new file, or the pod was removed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(got),
            Err(e) => return Err(io_err("stat log file", live)(e)),
        };
        if cur.as_ref().is_some_and(|c| c.id == live_id) {
            return Ok(got);
        }
        got = true;

        // Rotated: the writer renamed our file before it wrote to the new one, so one more
        // drain gets the last records of the old file.
        let mut newer = Vec::new();
        if let Some(mut old) = cur.take() {
            old.drain(printer)?;
            let rotated = rotated_files(dir, instance)?;
            // Open them all first: the handles pin the files against further rotations.
            let mut opened = Vec::with_capacity(rotated.len());
            for path in &rotated {
                if let Some(c) = Cursor::open(path)? {
                    opened.push(c);
                }
            }
            // Files after ours are newer; if ours was rotated out entirely, all of them are.
            // (The listing is one getdents(2) call for a directory this small, which the
            // kernel serialises against rename(2), so ours is not missed by a torn listing.)
            let ours = opened.iter().position(|c| c.id == old.id);
            old.finish(printer)?;
            newer = match ours {
                Some(i) => opened.split_off(i + 1),
                None => opened,
            };
        }
        for mut c in newer {
            if let Some(done) = cur.take() {
                done.finish(printer)?;
            }
            c.drain(printer)?;
            *cur = Some(c);
        }
        match Cursor::open(live)? {
            Some(c) => {
                if let Some(done) = cur.take() {
                    done.finish(printer)?;
                }
                *cur = Some(c);
            }
            // Rotated again meanwhile: the newest rotated file stays watched, and the next
            // round finds its successors.
            None => return Ok(got),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Instant;

    use super::*;

    const C: &str = "app";

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    /// A pod directory named like a pod, so that error messages show a pod name.
    fn pod_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let pod = tmp.path().join("web");
        fs::create_dir(&pod).unwrap();
        (tmp, pod)
    }

    fn read(pod: &Path, opts: &ReadOpts) -> Result<String, LogError> {
        let mut out = Vec::new();
        read_logs(pod, C, opts, &mut out, &|| false)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn read_all(pod: &Path) -> String {
        read(pod, &ReadOpts::default()).unwrap()
    }

    fn file(pod: &Path, name: &str) -> String {
        String::from_utf8(fs::read(pod.join("logs").join(C).join(name)).unwrap()).unwrap()
    }

    fn small(max_file_size: u64) -> LogLimits {
        LogLimits {
            max_file_size,
            ..LogLimits::default()
        }
    }

    #[test]
    fn lines_split_across_chunks() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        w.write(Stream::Stdout, b"hel", t(1)).unwrap();
        w.write(Stream::Stdout, b"lo\nwor", t(2)).unwrap();
        w.write(Stream::Stdout, b"ld\n\nx", t(3)).unwrap();
        w.flush_partial(t(4)).unwrap();
        assert_eq!(
            file(&pod, "0.log"),
            "2023-11-14T22:13:22.000000000Z stdout F hello\n\
             2023-11-14T22:13:23.000000000Z stdout F world\n\
             2023-11-14T22:13:23.000000000Z stdout F \n\
             2023-11-14T22:13:24.000000000Z stdout F x\n"
        );
        assert_eq!(read_all(&pod), "hello\nworld\n\nx\n");
        assert_eq!(w.path(), pod.join("logs/app/0.log"));
        assert_eq!(w.instance(), 0);
    }

    #[test]
    fn nanosecond_timestamps_and_clamped_clock() {
        assert_eq!(
            format_timestamp(UNIX_EPOCH + Duration::new(1, 5)),
            "1970-01-01T00:00:01.000000005Z"
        );
        // A clock before 1970 must not panic.
        assert_eq!(
            format_timestamp(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            format_timestamp(UNIX_EPOCH + Duration::from_secs(400_000_000_000)),
            "9999-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn stdout_and_stderr_interleave_by_line() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        w.write(Stream::Stdout, b"out-a", t(1)).unwrap();
        w.write(Stream::Stderr, b"err-1\nerr-", t(2)).unwrap();
        w.write(Stream::Stdout, b"-end\n", t(3)).unwrap();
        w.write(Stream::Stderr, b"2\n", t(4)).unwrap();
        assert_eq!(
            file(&pod, "0.log"),
            "2023-11-14T22:13:22.000000000Z stderr F err-1\n\
             2023-11-14T22:13:23.000000000Z stdout F out-a-end\n\
             2023-11-14T22:13:24.000000000Z stderr F err-2\n"
        );
        assert_eq!(read_all(&pod), "err-1\nout-a-end\nerr-2\n");
    }

    #[test]
    fn long_lines_become_partial_records_and_are_reassembled() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        let long: Vec<u8> = (0..40_000).map(|i| b'a' + (i % 26) as u8).collect();
        // In odd chunks, with a stderr line in between the pieces.
        for (i, chunk) in long.chunks(999).enumerate() {
            w.write(Stream::Stdout, chunk, t(i as u64)).unwrap();
            if i == 20 {
                w.write(Stream::Stderr, b"between\n", t(i as u64)).unwrap();
            }
        }
        w.write(Stream::Stdout, b"\nshort\n", t(100)).unwrap();
        // A complete line longer than the limit in a single chunk.
        let mut single = vec![b'z'; MAX_LINE_SIZE * 2 + 1];
        single.push(b'\n');
        w.write(Stream::Stderr, &single, t(101)).unwrap();

        let text = file(&pod, "0.log");
        let tags: Vec<(&str, &str, usize)> = text
            .lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let _ = f.next();
                (
                    f.next().unwrap(),
                    f.next().unwrap(),
                    f.next().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            tags,
            vec![
                ("stdout", "P", MAX_LINE_SIZE),
                ("stderr", "F", 7),
                ("stdout", "P", MAX_LINE_SIZE),
                ("stdout", "F", 40_000 - 2 * MAX_LINE_SIZE),
                ("stdout", "F", 5),
                ("stderr", "P", MAX_LINE_SIZE),
                ("stderr", "P", MAX_LINE_SIZE),
                ("stderr", "F", 1),
            ]
        );
        let mut want = b"between\n".to_vec();
        want.extend_from_slice(&long);
        want.extend_from_slice(b"\nshort\n");
        want.extend_from_slice(&single);
        assert_eq!(read_all(&pod).as_bytes(), &want[..]);
        // The reassembled line carries the timestamp of its first piece, and tail counts it
        // as one line.
        let opts = ReadOpts {
            tail: Some(2),
            timestamps: true,
            ..ReadOpts::default()
        };
        let out = read(&pod, &opts).unwrap();
        assert!(out.starts_with("2023-11-14T22:15:00.000000000Z short\n2023-11-14T22:15:01"));
    }

    #[test]
    fn line_of_exactly_the_limit_is_one_full_record() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        w.write(Stream::Stdout, &vec![b'x'; MAX_LINE_SIZE], t(1))
            .unwrap();
        assert_eq!(file(&pod, "0.log"), "");
        w.write(Stream::Stdout, b"\n", t(2)).unwrap();
        let text = file(&pod, "0.log");
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains(" stdout F xxx"));
    }

    #[test]
    fn binary_content_passes_through() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        w.write(Stream::Stdout, b"\xff\x00 tab\t\r\n", t(1))
            .unwrap();
        let mut out = Vec::new();
        read_logs(&pod, C, &ReadOpts::default(), &mut out, &|| false).unwrap();
        assert_eq!(out, b"\xff\x00 tab\t\r\n");
    }

    #[test]
    fn flush_partial_writes_unterminated_tails_as_full_lines() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        w.write(Stream::Stdout, b"done", t(1)).unwrap();
        w.write(Stream::Stderr, b"oops", t(2)).unwrap();
        w.flush_stream(Stream::Stderr, t(3)).unwrap();
        w.flush_partial(t(4)).unwrap();
        w.flush_partial(t(5)).unwrap();
        assert_eq!(
            file(&pod, "0.log"),
            "2023-11-14T22:13:23.000000000Z stderr F oops\n\
             2023-11-14T22:13:24.000000000Z stdout F done\n"
        );
    }

    /// Writes `count` numbered lines (`line-0000`…) with a small file limit.
    fn write_numbered(pod: &Path, instance: u32, count: usize, limits: LogLimits) -> Vec<String> {
        let mut w = LogWriter::create_with_limits(pod, C, instance, limits).unwrap();
        let lines: Vec<String> = (0..count).map(|i| format!("line-{i:04}")).collect();
        for (i, line) in lines.iter().enumerate() {
            w.write(Stream::Stdout, format!("{line}\n").as_bytes(), t(i as u64))
                .unwrap();
        }
        lines
    }

    fn names(pod: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(pod.join("logs").join(C))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotation_keeps_five_files_and_tail_spans_them() {
        let (_tmp, pod) = pod_dir();
        // Each record is 30 + 1 + 6 + 3 + 9 + 1 = 50 bytes: 4 records per 200-byte file.
        let lines = write_numbered(&pod, 0, 100, small(200));
        assert_eq!(
            names(&pod),
            ["0.log", "0.log.1", "0.log.2", "0.log.3", "0.log.4"]
        );
        for name in names(&pod) {
            let len = fs::metadata(pod.join("logs").join(C).join(&name))
                .unwrap()
                .len();
            assert!(len <= 200, "{name} has {len} bytes");
        }
        // Everything kept is the newest 20 lines, oldest first, across the files.
        let all = read_all(&pod);
        let want: String = lines[80..].iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(all, want);
        // The live file holds 4 lines: a tail of 7 reaches into 0.log.1.
        let tail = read(
            &pod,
            &ReadOpts {
                tail: Some(7),
                ..ReadOpts::default()
            },
        )
        .unwrap();
        let want: String = lines[93..].iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(tail, want);
        // More than what is kept, and zero.
        let opts = |n| ReadOpts {
            tail: Some(n),
            ..ReadOpts::default()
        };
        assert_eq!(read(&pod, &opts(1000)).unwrap(), all);
        assert_eq!(read(&pod, &opts(0)).unwrap(), "");
    }

    #[test]
    fn rotation_with_a_single_file_starts_over() {
        let (_tmp, pod) = pod_dir();
        let limits = LogLimits {
            max_file_size: 100,
            max_files: 1,
            ..LogLimits::default()
        };
        let lines = write_numbered(&pod, 0, 9, limits);
        assert_eq!(names(&pod), ["0.log"]);
        assert_eq!(read_all(&pod), format!("{}\n", lines[8]));
    }

    #[test]
    fn a_record_larger_than_the_file_limit_still_goes_to_an_empty_file() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create_with_limits(&pod, C, 0, small(10)).unwrap();
        w.write(Stream::Stdout, b"first\nsecond\n", t(1)).unwrap();
        assert_eq!(names(&pod), ["0.log", "0.log.1"]);
        assert_eq!(read_all(&pod), "first\nsecond\n");
    }

    #[test]
    fn reopening_an_instance_appends() {
        let (_tmp, pod) = pod_dir();
        write_numbered(&pod, 0, 2, LogLimits::default());
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        w.write(Stream::Stdout, b"more\n", t(9)).unwrap();
        assert_eq!(read_all(&pod), "line-0000\nline-0001\nmore\n");
    }

    #[test]
    fn previous_reads_the_instance_before_the_latest() {
        let (_tmp, pod) = pod_dir();
        let mut w0 = LogWriter::create(&pod, C, 0).unwrap();
        w0.write(Stream::Stdout, b"first run\n", t(1)).unwrap();

        let previous = ReadOpts {
            previous: true,
            ..ReadOpts::default()
        };
        let err = read(&pod, &previous).unwrap_err();
        assert_eq!(
            err.to_string(),
            "previous terminated container \"app\" in pod \"web\" not found"
        );

        let mut w1 = LogWriter::create(&pod, C, 1).unwrap();
        w1.write(Stream::Stdout, b"second run\n", t(2)).unwrap();
        assert_eq!(read_all(&pod), "second run\n");
        assert_eq!(read(&pod, &previous).unwrap(), "first run\n");
        assert_eq!(instances(&pod, C), [0, 1]);
    }

    #[test]
    fn no_logs_yet_is_an_error_naming_the_directory() {
        let (_tmp, pod) = pod_dir();
        let err = read(&pod, &ReadOpts::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "container \"app\" in pod \"web\" is waiting to start: no log files in `{}`",
                pod.join("logs/app").display()
            )
        );
    }

    #[test]
    fn timestamps_prefix_each_line() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        let now = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        w.write(Stream::Stdout, b"a\n", now).unwrap();
        w.write(Stream::Stderr, b"b\n", now + Duration::from_secs(1))
            .unwrap();
        let opts = ReadOpts {
            timestamps: true,
            ..ReadOpts::default()
        };
        assert_eq!(
            read(&pod, &opts).unwrap(),
            "2023-11-14T22:13:20.123456789Z a\n2023-11-14T22:13:21.123456789Z b\n"
        );
    }

    #[test]
    fn since_filters_by_line_time() {
        let (_tmp, pod) = pod_dir();
        write_numbered(&pod, 0, 5, LogLimits::default());
        let opts = ReadOpts {
            since: Some(t(3)),
            ..ReadOpts::default()
        };
        assert_eq!(read(&pod, &opts).unwrap(), "line-0003\nline-0004\n");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let (_tmp, pod) = pod_dir();
        let dir = pod.join("logs").join(C);
        fs::create_dir_all(&dir).unwrap();
        let mut text: Vec<u8> = Vec::new();
        text.extend_from_slice(b"2024-01-01T00:00:00.5Z stdout F good one\n");
        text.extend_from_slice(b"\n");
        text.extend_from_slice(b"garbage\n");
        text.extend_from_slice(b"2024-01-01T00:00:00Z stdout\n");
        text.extend_from_slice(b"2024-01-01T00:00:00Z stdin F wrong stream\n");
        text.extend_from_slice(b"2024-01-01T00:00:00Z stdout X wrong tag\n");
        text.extend_from_slice(b"2024-13-01T00:00:00Z stdout F bad month\n");
        text.extend_from_slice(b"2024-01-01T00:00:00+02:00 stdout F local time\n");
        text.extend_from_slice(b"\xff\xfe stdout F not utf-8\n");
        text.extend_from_slice(b"1970 stdout F short\n");
        text.extend_from_slice(b"2024-01-01T00:00:00Z stderr F:extra tagged\n");
        text.extend_from_slice(b"2024-01-01T00:00:00Z stdout F\n");
        text.extend_from_slice(b"2024-01-01T00:00:00.999999999999Z stdout P piece-\n");
        text.extend_from_slice(b"2024-01-01T00:00:01Z stdout F end");
        fs::write(dir.join("0.log"), &text).unwrap();
        assert_eq!(read_all(&pod), "good one\ntagged\n\npiece-end\n");
    }

    #[test]
    fn a_dangling_partial_line_is_printed_at_the_end() {
        let (_tmp, pod) = pod_dir();
        let dir = pod.join("logs").join(C);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("0.log"),
            "2024-01-01T00:00:00Z stdout P cut \n2024-01-01T00:00:01Z stderr F other\n",
        )
        .unwrap();
        assert_eq!(read_all(&pod), "other\ncut \n");
    }

    #[test]
    fn runaway_garbage_without_newlines_is_dropped() {
        let (_tmp, pod) = pod_dir();
        let dir = pod.join("logs").join(C);
        fs::create_dir_all(&dir).unwrap();
        let mut text = vec![b'#'; 3 * MAX_RECORD];
        text.extend_from_slice(b" tail of garbage\n2024-01-01T00:00:00Z stdout F fine\n");
        fs::write(dir.join("0.log"), &text).unwrap();
        assert_eq!(read_all(&pod), "fine\n");
    }

    #[test]
    fn closed_output_ends_reading_quietly() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (_tmp, pod) = pod_dir();
        write_numbered(&pod, 0, 3, LogLimits::default());
        read_logs(&pod, C, &ReadOpts::default(), &mut Closed, &|| false).unwrap();
    }

    #[test]
    fn instances_prune_and_remove_all() {
        let (_tmp, pod) = pod_dir();
        assert!(instances(&pod, C).is_empty());
        for n in [0, 1, 2, 10] {
            write_numbered(&pod, n, 12, small(200));
        }
        let dir = pod.join("logs").join(C);
        // Names that are not ours are ignored.
        for junk in [
            "01.log",
            "+3.log",
            "3.log.0",
            "3.logs",
            "3",
            "x.log",
            "4.log.1.tmp",
        ] {
            fs::write(dir.join(junk), "").unwrap();
        }
        assert_eq!(instances(&pod, C), [0, 1, 2, 10]);
        assert!(instances(&pod, "other").is_empty());
        assert!(instances(&pod, "..").is_empty());

        prune_instances(&pod, C, 2).unwrap();
        assert_eq!(instances(&pod, C), [2, 10]);
        assert!(names(&pod).contains(&"2.log.2".to_owned()));
        prune_instances(&pod, C, 5).unwrap();
        assert_eq!(instances(&pod, C), [2, 10]);
        prune_instances(&pod, C, 0).unwrap();
        assert!(instances(&pod, C).is_empty());

        remove_all(&pod).unwrap();
        assert!(!pod.join("logs").exists());
        remove_all(&pod).unwrap();
    }

    #[test]
    fn container_names_cannot_leave_the_log_directory() {
        let (_tmp, pod) = pod_dir();
        for bad in ["", ".", "..", "a/b", "nul\0"] {
            let err = LogWriter::create(&pod, bad, 0).unwrap_err();
            assert!(matches!(err, LogError::InvalidContainerName(_)), "{bad:?}");
        }
        assert_eq!(
            LogWriter::create(&pod, "..", 0).unwrap_err().to_string(),
            "invalid container name `..` for a log directory: it must be one non-empty path \
             component"
        );
    }

    #[test]
    fn io_errors_name_the_operation_and_path() {
        let (_tmp, pod) = pod_dir();
        // A file where the logs directory should be.
        fs::write(pod.join("logs"), "").unwrap();
        let err = LogWriter::create(&pod, C, 0).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "create log directory `{}`: ",
                pod.join("logs/app").display()
            )),
            "{msg}"
        );
        let enospc = LogError::Io {
            op: "write log file",
            path: PathBuf::from("/p/logs/app/0.log"),
            source: io::Error::from_raw_os_error(28),
        };
        assert!(
            enospc
                .to_string()
                .ends_with("; hint: the file system holding the pod directory is full (ENOSPC)")
        );
    }

    /// A `Write` shared with the test while a follower thread writes to it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        fn wait_for(&self, want: &str) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.text().contains(want) {
                assert!(
                    Instant::now() < deadline,
                    "never saw {want:?} in {:?}",
                    self.text()
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    struct Follower {
        out: Shared,
        running: Arc<AtomicBool>,
        handle: thread::JoinHandle<Result<(), LogError>>,
    }

    fn follow(pod: &Path, opts: ReadOpts) -> Follower {
        let out = Shared::default();
        let running = Arc::new(AtomicBool::new(true));
        let handle = {
            let (pod, mut out, running) = (pod.to_path_buf(), out.clone(), running.clone());
            thread::spawn(move || {
                let opts = ReadOpts {
                    follow: true,
                    ..opts
                };
                read_logs(&pod, C, &opts, &mut out, &|| running.load(Ordering::SeqCst))
            })
        };
        Follower {
            out,
            running,
            handle,
        }
    }

    impl Follower {
        fn stop(self) -> String {
            self.running.store(false, Ordering::SeqCst);
            self.join()
        }

        fn join(self) -> String {
            self.handle.join().unwrap().unwrap();
            self.out.text()
        }
    }

    #[test]
    fn follow_prints_appended_lines_until_the_container_stops() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create(&pod, C, 0).unwrap();
        w.write(Stream::Stdout, b"one\ntwo\n", t(1)).unwrap();
        let f = follow(
            &pod,
            ReadOpts {
                tail: Some(1),
                ..ReadOpts::default()
            },
        );
        f.out.wait_for("two\n");
        w.write(Stream::Stdout, b"thr", t(2)).unwrap();
        w.write(Stream::Stderr, b"four\n", t(3)).unwrap();
        f.out.wait_for("four\n");
        w.write(Stream::Stdout, b"ee\n", t(4)).unwrap();
        f.out.wait_for("three\n");
        // The last output arrives just before the container is reported gone.
        w.write(Stream::Stdout, b"last words", t(5)).unwrap();
        w.flush_partial(t(6)).unwrap();
        assert_eq!(f.stop(), "two\nfour\nthree\nlast words\n");
    }

    #[test]
    fn follow_of_a_finished_instance_returns_at_once() {
        let (_tmp, pod) = pod_dir();
        write_numbered(&pod, 0, 2, LogLimits::default());
        let mut out = Vec::new();
        let opts = ReadOpts {
            follow: true,
            ..ReadOpts::default()
        };
        let started = Instant::now();
        read_logs(&pod, C, &opts, &mut out, &|| false).unwrap();
        assert!(started.elapsed() < FOLLOW_POLL_INTERVAL);
        assert_eq!(out, b"line-0000\nline-0001\n");
    }

    #[test]
    fn follow_continues_across_rotations() {
        let (_tmp, pod) = pod_dir();
        let mut w = LogWriter::create_with_limits(&pod, C, 0, small(200)).unwrap();
        w.write(Stream::Stdout, b"line-0000\n", t(0)).unwrap();
        let f = follow(&pod, ReadOpts::default());
        f.out.wait_for("line-0000\n");
        // Several rotations between polls, and some one poll apart.
        let mut want = String::from("line-0000\n");
        for i in 1..60u64 {
            let line = format!("line-{i:04}\n");
            w.write(Stream::Stdout, line.as_bytes(), t(i)).unwrap();
            want.push_str(&line);
            // Sync now and then, so that no more than two rotations (fewer than the 20 lines
            // kept) happen between two polls, however slow the follower thread is.
            if i % 7 == 0 {
                f.out.wait_for(&line);
            }
        }
        f.out.wait_for("line-0059\n");
        assert_eq!(f.stop(), want);
    }

    #[test]
    fn follow_stops_when_a_newer_instance_starts() {
        let (_tmp, pod) = pod_dir();
        let mut w0 = LogWriter::create(&pod, C, 0).unwrap();
        w0.write(Stream::Stdout, b"run 0\n", t(0)).unwrap();
        let f = follow(&pod, ReadOpts::default());
        f.out.wait_for("run 0\n");
        w0.write(Stream::Stdout, b"crashing", t(1)).unwrap();
        w0.flush_partial(t(2)).unwrap();
        let mut w1 = LogWriter::create(&pod, C, 1).unwrap();
        w1.write(Stream::Stdout, b"run 1\n", t(3)).unwrap();
        // `running` stays true: the new instance alone ends the follow.
        assert_eq!(f.join(), "run 0\ncrashing\n");
    }

    #[test]
    fn follow_with_previous_prints_and_returns() {
        let (_tmp, pod) = pod_dir();
        write_numbered(&pod, 0, 1, LogLimits::default());
        write_numbered(&pod, 1, 2, LogLimits::default());
        let f = follow(
            &pod,
            ReadOpts {
                previous: true,
                ..ReadOpts::default()
            },
        );
        assert_eq!(f.join(), "line-0000\n");
    }

    #[test]
    fn follow_ends_when_the_pod_is_removed() {
        let (_tmp, pod) = pod_dir();
        write_numbered(&pod, 0, 1, LogLimits::default());
        let f = follow(&pod, ReadOpts::default());
        f.out.wait_for("line-0000\n");
        remove_all(&pod).unwrap();
        thread::sleep(2 * FOLLOW_POLL_INTERVAL);
        assert_eq!(f.stop(), "line-0000\n");
    }
}

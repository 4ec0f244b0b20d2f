//! runc-compatible logging: `--log FILE --log-format text|json --debug`, in logrus' formats as
//! runc writes them, to the file or (without `--log`) to stderr.
//!
//! containerd's shim and podman parse the `--log` file as JSON lines `{"level","msg","time"}` and
//! report the last `error` line (containerd `getLastRuntimeError`), so the JSON shape is exact.
//! The text format is logrus' `time="2006-01-02T15:04:05Z" level=debug msg="..."` (values quoted
//! only when they need it, as logrus does); on a terminal, logrus' short `ERRO[0000] msg`.
//! Errors are also printed to stderr when they go to a file, which conmon forwards when
//! `create` fails.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The format of log lines (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// `level: msg` on stderr, for peapod's own (kubectl-like) verbs; a `--log` file gets
    /// logrus text lines.
    Plain,
}

struct Logger {
    file: Option<Mutex<File>>,
    format: Format,
    level: LevelFilter,
    /// stderr is a terminal (and no file is used): logrus' short form.
    tty: bool,
    start: Instant,
}

fn level_name(level: Level) -> &'static str {
    // logrus names, which is what runc writes and callers match on.
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug | Level::Trace => "debug",
    }
}

/// Whether logrus' text formatter quotes `s`: anything but letters, digits and `-._/@^+`
/// (an empty value stays bare, as logrus' default).
fn needs_quoting(s: &str) -> bool {
    !s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c))
}

/// Go's `%q` of a string: `"` and `\` escaped, the usual C escapes, other control characters
/// as `\xNN` (`\uNNNN` past ASCII), printable text as it is.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A logrus text value: bare when it can be, else Go-quoted.
fn logfmt_value(s: &str) -> String {
    if needs_quoting(s) {
        go_quote(s)
    } else {
        s.to_string()
    }
}

/// One log line in the chosen format, without the trailing newline. Times are RFC 3339 in
/// whole seconds, UTC, as logrus writes them by default.
pub fn format_line(format: Format, level: Level, msg: &str, time: SystemTime) -> String {
    let time = humantime::format_rfc3339_seconds(time).to_string();
    match format {
        Format::Plain => format!("{}: {msg}", level_name(level)),
        Format::Json => {
            serde_json::json!({"level": level_name(level), "msg": msg, "time": time}).to_string()
        }
        Format::Text => format!(
            "time={} level={} msg={}",
            logfmt_value(&time),
            level_name(level),
            logfmt_value(msg)
        ),
    }
}

/// logrus' text line on a terminal: `ERRO[0000] msg` (without its colours), the number being
/// the seconds since start-up.
pub fn format_tty_line(level: Level, msg: &str, since_start: std::time::Duration) -> String {
    let name = level_name(level).to_ascii_uppercase();
    format!("{}[{:04}] {msg}", &name[..4], since_start.as_secs())
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) || DETACHED.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let msg = record.args().to_string();
        match &self.file {
            Some(file) => {
                let format = match self.format {
                    Format::Plain => Format::Text,
                    f => f,
                };
                let line = format_line(format, record.level(), &msg, SystemTime::now());
                if let Ok(mut f) = file.lock() {
                    // A failing log write cannot be reported anywhere better than stderr.
                    if writeln!(f, "{line}").is_err() {
                        eprintln!("{msg}");
                    }
                }
            }
            None if self.tty && self.format == Format::Text => {
                eprintln!(
                    "{}",
                    format_tty_line(record.level(), &msg, self.start.elapsed())
                )
            }
            None => eprintln!(
                "{}",
                format_line(self.format, record.level(), &msg, SystemTime::now())
            ),
        }
    }

    fn flush(&self) {}
}

/// Install the global logger. Without `--log`, messages go to stderr (in the same format).
pub fn init(path: Option<&str>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) if !p.is_empty() => Some(Mutex::new(
            OpenOptions::new().create(true).append(true).open(p)?,
        )),
        _ => None,
    };
    let level = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Warn
    };
    log::set_max_level(level);
    // A second init (tests) keeps the first logger, which is harmless.
    let tty = file.is_none() && std::io::stderr().is_terminal();
    let _ = log::set_boxed_logger(Box::new(Logger {
        file,
        format,
        level,
        tty,
        start: Instant::now(),
    }));
    Ok(())
}

static DETACHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stop logging in this process: a forked stage closes the log file's fd (it must not hold
/// it), and its errors travel to the runtime over the channel instead.
pub fn detach() {
    DETACHED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a log file is configured, so fatal errors are also echoed to stderr.
pub fn logs_to_file() -> bool {
    LOGS_TO_FILE.load(std::sync::atomic::Ordering::Relaxed)
}

static LOGS_TO_FILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Remember that a log file is in use.
pub fn set_logs_to_file() {
    LOGS_TO_FILE.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_what_containerd_decodes() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_500_000_000_123);
        let line = format_line(Format::Json, Level::Error, "boom \"x\"", t);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "1970-01-01T00:25:00Z");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    /// Lines as runc 1.5.1 writes them (taken from its `--debug --log` output).
    #[test]
    fn text_line_is_logrus() {
        let t = SystemTime::UNIX_EPOCH;
        assert_eq!(
            format_line(Format::Text, Level::Warn, "a b", t),
            "time=\"1970-01-01T00:00:00Z\" level=warning msg=\"a b\""
        );
        assert_eq!(
            format_line(
                Format::Text,
                Level::Debug,
                "nsexec-0[2681]: spawn stage-1",
                t
            ),
            "time=\"1970-01-01T00:00:00Z\" level=debug msg=\"nsexec-0[2681]: spawn stage-1\""
        );
        // Bare when made of logrus' unquoted characters only.
        assert_eq!(
            format_line(Format::Text, Level::Info, "ready_1.0/x@y^z+w", t),
            "time=\"1970-01-01T00:00:00Z\" level=info msg=ready_1.0/x@y^z+w"
        );
        assert_eq!(
            format_line(Format::Text, Level::Error, "exec: \"/x\": a\\b\nc\u{1b}", t),
            "time=\"1970-01-01T00:00:00Z\" level=error msg=\"exec: \\\"/x\\\": a\\\\b\\nc\\x1b\""
        );
        assert_eq!(
            format_line(Format::Text, Level::Error, "", t),
            "time=\"1970-01-01T00:00:00Z\" level=error msg="
        );
    }

    #[test]
    fn plain_line_names_the_level() {
        let line = format_line(
            Format::Plain,
            Level::Error,
            "a \"b\"",
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(line, "error: a \"b\"");
    }

    #[test]
    fn tty_line_is_logrus_short_form() {
        let d = std::time::Duration::from_millis(2500);
        assert_eq!(format_tty_line(Level::Error, "boom", d), "ERRO[0002] boom");
        assert_eq!(format_tty_line(Level::Warn, "w", d), "WARN[0002] w");
        assert_eq!(format_tty_line(Level::Debug, "d", d), "DEBU[0002] d");
    }
}

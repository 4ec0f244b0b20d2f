//! runc-compatible logging: `--log FILE --log-format text|json`.
//!
//! containerd's shim and podman parse the `--log` file as JSON lines `{"level","msg","time"}` and
//! report the last `error` line (containerd `getLastRuntimeError`), so the JSON shape is exact.
//! Errors are also printed to stderr, which conmon forwards when `create` fails.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The on-disk format of the `--log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<Mutex<File>>,
    format: Format,
    level: LevelFilter,
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

/// One log line in the chosen format, without the trailing newline.
pub fn format_line(format: Format, level: Level, msg: &str, time: SystemTime) -> String {
    let time = humantime::format_rfc3339_nanos(time).to_string();
    match format {
        Format::Json => {
            serde_json::json!({"level": level_name(level), "msg": msg, "time": time}).to_string()
        }
        Format::Text => format!("time={:?} level={} msg={:?}", time, level_name(level), msg),
    }
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
                let line = format_line(self.format, record.level(), &msg, SystemTime::now());
                if let Ok(mut f) = file.lock() {
                    // A failing log write cannot be reported anywhere better than stderr.
                    if writeln!(f, "{line}").is_err() {
                        eprintln!("{msg}");
                    }
                }
            }
            None => eprintln!("{}: {msg}", level_name(record.level())),
        }
    }

    fn flush(&self) {}
}

/// Install the global logger. Without `--log`, messages go to stderr.
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
    let _ = log::set_boxed_logger(Box::new(Logger {
        file,
        format,
        level,
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
        assert_eq!(v["time"], "1970-01-01T00:25:00.000000123Z");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    #[test]
    fn text_line_is_logfmt() {
        let line = format_line(Format::Text, Level::Warn, "a b", SystemTime::UNIX_EPOCH);
        assert_eq!(
            line,
            "time=\"1970-01-01T00:00:00.000000000Z\" level=warning msg=\"a b\""
        );
    }
}

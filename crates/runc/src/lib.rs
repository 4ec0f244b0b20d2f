//! peapod's runc-compatible command line: the OCI verbs' clap definitions ([`cli`]), their glue
//! to `peapod-oci` ([`commands`]), the one output module every verb prints through
//! ([`output`]) and the start-up both binaries share ([`app`]). The `peapod` binary flattens
//! [`cli::OciCommand`] into its own command line, so the verbs are defined once; the lean
//! `peapod-runc` binary is this crate alone.

pub mod app;
pub mod cli;
pub mod commands;
pub mod output;

/// `println!` that returns the write error (a closed stdout is `EPIPE`, handled by
/// [`app::main`]) instead of panicking. Use it in a function returning `anyhow::Result`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        writeln!(::std::io::stdout().lock(), $($arg)*)?
    }};
}

/// `print!` counterpart of [`outln!`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        write!(::std::io::stdout().lock(), $($arg)*)?
    }};
}

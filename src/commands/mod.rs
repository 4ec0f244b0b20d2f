//! Thin glue from parsed flags to the library: each verb loads, calls, adds context.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod image;
pub mod kill;
pub mod list;
pub mod node;
pub mod pause;
pub mod pod;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use crate::cli::oci::CreateFlags;
use peapod_oci::container::create::CreateOpts;

/// Print rows in aligned columns separated by three spaces (runc's and kubectl's look).
pub fn print_table<const N: usize>(rows: &[[String; N]]) -> std::io::Result<()> {
    use std::io::Write;
    let mut width = [0usize; N];
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = std::io::stdout().lock();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

/// `create` and `run` share their flags.
pub fn create_opts(f: &CreateFlags) -> CreateOpts {
    CreateOpts {
        bundle: f.bundle.clone(),
        pid_file: f.pid_file.clone(),
        console_socket: f.console_socket.clone(),
        no_pivot: f.no_pivot,
        no_new_keyring: f.no_new_keyring,
        preserve_fds: f.preserve_fds,
        console_fd: None,
        stdio: None,
        pidfd_socket: f.pidfd_socket.clone(),
    }
}

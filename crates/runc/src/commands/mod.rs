//! Thin glue from parsed OCI verbs to `peapod-oci`: each verb loads, calls, adds context.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use crate::cli::oci::CreateFlags;
use peapod_oci::container::create::CreateOpts;

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
        config: None,
    }
}

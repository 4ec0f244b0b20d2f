//! The forked stages that become a container process.
//!
//! ```text
//! runtime ──fork──► stage 1 ──setns/unshare──fork──► init (stage 2) ──execve──► user process
//!    ▲  places stage 1 in the cgroup, writes id maps,   │ mounts, pivot_root, hostname,
//!    │  runs createRuntime hooks, records the pid        │ caps, user, seccomp; waits for
//!    └──────────────── typed messages (channel) ─────────┘ `start` on exec.fifo (create)
//! ```
//! Stage 1 exists because a new pid or time namespace only applies to children, and
//! joining one by path (`setns`) does too.

pub mod channel;
pub mod features;
pub mod init;
pub mod spawn;

/// The most fds `--preserve-fds` (plus `LISTEN_FDS`) may pass: the kernel's default
/// `fs.nr_open`, far above any real use, so `3 + n` always fits an fd number.
pub const MAX_PRESERVE_FDS: u32 = 1 << 20;

pub use spawn::{Launch, Mode, Spawned, spawn};

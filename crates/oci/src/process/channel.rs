//! The typed protocol between the runtime and the stages it forks, over a
//! `SOCK_SEQPACKET` socketpair: one JSON message per packet, errors sent as data.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, send, sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// runtime → stage 1: the process sits in its cgroup; go on. Also runtime → an exec'd
    /// process once stage 1 is reaped.
    Go,
    /// stage 1 → runtime: I unshared a user namespace; write my id maps.
    WriteIdMaps,
    /// runtime → stage 1: maps are written.
    IdMapsWritten,
    /// stage 1 → runtime: the container process exists, with this host pid.
    Pid(i32),
    /// init → runtime: mounts are done; run prestart/createRuntime hooks now.
    RunCreateRuntimeHooks,
    /// runtime → init: hooks done.
    HooksDone,
    /// init → runtime: set up, waiting for `start`.
    Ready,
    /// init → runtime: the seccomp filter with `SCMP_ACT_NOTIFY` rules is loaded; its listener
    /// fd rides on this message (SCM_RIGHTS): hand it to the seccomp agent.
    SeccompFd,
    /// runtime → init: the agent has the listener fd; close yours.
    SeccompFdDone,
    /// any stage → runtime: what failed.
    Error(String),
}

#[derive(Debug, Error)]
pub enum ChannelError {
    #[error("channel {op}: {errno}")]
    Sys {
        op: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("channel: bad message: {0}")]
    Decode(String),
    #[error("container process exited before it was ready")]
    Closed,
    #[error("container process: {0}")]
    Remote(String),
    #[error("channel: expected {expected}, received {received:?}")]
    Unexpected {
        expected: &'static str,
        received: Message,
    },
}

/// One end of the socketpair.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
    /// The fd that came with the last message received ([`Channel::take_fd`]).
    received: std::cell::RefCell<Option<OwnedFd>>,
}

impl Channel {
    /// A connected pair; both ends are close-on-exec so a successful `execve` closes them
    /// (the runtime then reads EOF, which means "exec succeeded").
    pub fn pair() -> Result<(Channel, Channel), ChannelError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|errno| ChannelError::Sys {
            op: "socketpair",
            errno,
        })?;
        let end = |fd| Channel {
            fd,
            received: Default::default(),
        };
        Ok((end(a), end(b)))
    }

    pub fn send(&self, m: &Message) -> Result<(), ChannelError> {
        let data = serde_json::to_vec(m).map_err(|e| ChannelError::Decode(e.to_string()))?;
        send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .map_err(|errno| ChannelError::Sys { op: "send", errno })?;
        Ok(())
    }

    /// Send `m` with `fd` attached (SCM_RIGHTS); the peer gets it from [`Channel::take_fd`].
    pub fn send_with_fd(&self, m: &Message, fd: RawFd) -> Result<(), ChannelError> {
        let data = serde_json::to_vec(m).map_err(|e| ChannelError::Decode(e.to_string()))?;
        let iov = [std::io::IoSlice::new(&data)];
        let fds = [fd];
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|errno| ChannelError::Sys {
            op: "sendmsg",
            errno,
        })?;
        Ok(())
    }

    /// The fd attached to a message received earlier, if one was.
    pub fn take_fd(&self) -> Option<OwnedFd> {
        self.received.borrow_mut().take()
    }

    /// Receive one message; `Ok(None)` at EOF. An fd attached to it is kept for
    /// [`Channel::take_fd`].
    pub fn recv_opt(&self) -> Result<Option<Message>, ChannelError> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match peapod_sys::recv_with_fd(&self.fd, &mut buf) {
                Ok((n, fd)) => {
                    if fd.is_some() {
                        *self.received.borrow_mut() = fd;
                    }
                    break n;
                }
                // A signal the runtime caught to stop (`sys::catch_interrupts`) ends the wait.
                Err(nix::errno::Errno::EINTR) if peapod_sys::interrupted().is_none() => continue,
                // The peer died with a message of ours unread: the end of the channel, as EOF
                // (an OOM-killed init shows up either way, and gets the same words).
                Err(nix::errno::Errno::ECONNRESET) => break 0,
                Err(errno) => return Err(ChannelError::Sys { op: "recv", errno }),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| ChannelError::Decode(e.to_string()))
    }

    /// Receive one message; EOF and `Error` become errors.
    pub fn recv(&self) -> Result<Message, ChannelError> {
        match self.recv_opt()? {
            None => Err(ChannelError::Closed),
            Some(Message::Error(e)) => Err(ChannelError::Remote(e)),
            Some(m) => Ok(m),
        }
    }

    /// Receive and insist on one message.
    pub fn expect(&self, want: Message, name: &'static str) -> Result<(), ChannelError> {
        let got = self.recv()?;
        if got == want {
            Ok(())
        } else {
            Err(ChannelError::Unexpected {
                expected: name,
                received: got,
            })
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Send `fd` with a text payload over a unix socket (the `--console-socket` protocol: runc
/// sends the pty master with the payload `/dev/ptmx`... callers read only the fd).
pub fn send_fd(sock: &impl AsFd, payload: &str, fd: RawFd) -> nix::Result<()> {
    let iov = [std::io::IoSlice::new(payload.as_bytes())];
    let fds = [fd];
    sendmsg::<()>(
        sock.as_fd().as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// The messages of a create in the order the runtime must handle them. Stage 1 and the init it
/// forks write to the same socket, so the init's `RunCreateRuntimeHooks` or `Ready` can arrive
/// before stage 1's `Pid` (stage 1 preempted right after the fork: seen on a loaded machine,
/// where `create` then saved a state with pid 0 and `start` failed with "cannot start a
/// container in the creating state"). Such a message is held back until the pid came.
#[derive(Debug, Default)]
pub struct CreateMessages {
    pid_seen: bool,
    held: Option<Message>,
}

impl CreateMessages {
    /// The messages of an init cloned without stage 1: its pid, known from the clone, first.
    pub fn with_pid(pid: i32) -> Self {
        CreateMessages {
            pid_seen: false,
            held: Some(Message::Pid(pid)),
        }
    }

    /// The next message, from `recv` or held back.
    pub fn next(
        &mut self,
        mut recv: impl FnMut() -> Result<Message, ChannelError>,
    ) -> Result<Message, ChannelError> {
        if let Some(Message::Pid(pid)) = self.held {
            self.held = None;
            self.pid_seen = true;
            return Ok(Message::Pid(pid));
        }
        if self.pid_seen
            && let Some(m) = self.held.take()
        {
            return Ok(m);
        }
        loop {
            match recv()? {
                m @ Message::Pid(_) => {
                    self.pid_seen = true;
                    return Ok(m);
                }
                m @ (Message::RunCreateRuntimeHooks | Message::Ready | Message::SeccompFd)
                    if !self.pid_seen =>
                {
                    // The init waits for an answer after each: one at most can overtake.
                    if self.held.is_some() {
                        return Err(ChannelError::Unexpected {
                            expected: "the container's pid",
                            received: m,
                        });
                    }
                    self.held = Some(m);
                }
                m => return Ok(m),
            }
        }
    }
}

/// Receive one fd sent by [`send_fd`].
pub fn recv_fd(sock: &impl AsFd) -> nix::Result<Option<OwnedFd>> {
    peapod_sys::recv_fd(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&Message::Pid(42)).unwrap();
        assert_eq!(b.recv().unwrap(), Message::Pid(42));
        a.send(&Message::Error("mount `/x`: EPERM".into())).unwrap();
        assert_eq!(
            b.recv().unwrap_err().to_string(),
            "container process: mount `/x`: EPERM"
        );
        a.send(&Message::Ready).unwrap();
        assert!(matches!(
            b.expect(Message::Go, "go"),
            Err(ChannelError::Unexpected { .. })
        ));
        // An fd rides along and waits for `take_fd`.
        let file = std::fs::File::open("/dev/null").unwrap();
        a.send_with_fd(&Message::SeccompFd, file.as_raw_fd())
            .unwrap();
        assert_eq!(b.recv().unwrap(), Message::SeccompFd);
        let got = b.take_fd().expect("fd attached");
        assert!(got.as_raw_fd() != file.as_raw_fd());
        assert!(b.take_fd().is_none());
        drop(a);
        assert!(matches!(b.recv(), Err(ChannelError::Closed)));
    }

    /// The init's messages that overtake stage 1's `Pid` are handled after it.
    #[test]
    fn the_pid_comes_first_whatever_the_order_of_arrival() {
        let order = |sent: &[Message]| {
            let (a, b) = Channel::pair().unwrap();
            for m in sent {
                a.send(m).unwrap();
            }
            drop(a);
            let mut msgs = CreateMessages::default();
            let mut got = Vec::new();
            while let Ok(m) = msgs.next(|| b.recv()) {
                got.push(m);
            }
            got
        };
        use Message::*;
        for sent in [
            vec![Pid(7), RunCreateRuntimeHooks, Ready],
            vec![RunCreateRuntimeHooks, Pid(7), Ready],
        ] {
            assert_eq!(order(&sent), [Pid(7), RunCreateRuntimeHooks, Ready]);
        }
        assert_eq!(order(&[Ready, Pid(7)]), [Pid(7), Ready]);
        // The listener fd's message needs the pid too (it goes into the agent's JSON).
        assert_eq!(order(&[SeccompFd, Pid(7)]), [Pid(7), SeccompFd]);
        assert_eq!(
            order(&[WriteIdMaps, Ready, Pid(7)]),
            [WriteIdMaps, Pid(7), Ready]
        );
        // Two messages of the init before the pid: a protocol error, not a hang.
        let (a, b) = Channel::pair().unwrap();
        a.send(&RunCreateRuntimeHooks).unwrap();
        a.send(&Ready).unwrap();
        assert!(matches!(
            CreateMessages::default().next(|| b.recv()),
            Err(ChannelError::Unexpected { .. })
        ));
    }

    /// An init cloned without stage 1 sends no `Pid`: the one known from the clone comes first,
    /// once, then the init's messages as they arrive.
    #[test]
    fn a_cloned_init_is_its_own_first_pid() {
        let (a, b) = Channel::pair().unwrap();
        use Message::*;
        for m in [RunCreateRuntimeHooks, Ready] {
            a.send(&m).unwrap();
        }
        drop(a);
        let mut msgs = CreateMessages::with_pid(42);
        let mut got = Vec::new();
        while let Ok(m) = msgs.next(|| b.recv()) {
            got.push(m);
        }
        assert_eq!(got, [Pid(42), RunCreateRuntimeHooks, Ready]);
    }
}

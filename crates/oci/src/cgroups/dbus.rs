//! A small synchronous D-Bus client: just enough of the wire protocol (D-Bus specification,
//! "Message Protocol") for the systemd cgroup driver, and for the mock systemd of the
//! privileged tests. No async runtime and no external crate, which keeps the OCI binary small.
//!
//! Supported: unix sockets given by path (`unix:path=...` addresses), SASL `EXTERNAL`
//! authentication with the caller's uid, little-endian messages of every type, and the basic
//! types `y b i u t s o g` plus arrays, structs (dict entries are read as structs) and variants.
//! Replies are matched to calls by serial; signals that arrive meanwhile are queued for
//! [`Connection::wait_signal`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The system bus socket when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
/// The environment variable naming the system bus address.
pub const SYSTEM_BUS_ENV: &str = "DBUS_SYSTEM_BUS_ADDRESS";

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// Messages larger than this are refused (the specification's limit is 128 MiB).
const MAX_MESSAGE: usize = 1 << 27;
/// How long a method call waits for its reply (the reference implementation's default).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// One D-Bus value. Arrays carry their element signature so that empty arrays marshal too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    U64(u64),
    I64(i64),
    /// A `d` (IEEE 754 double), kept as its bits.
    Double(u64),
    /// An `h` (index into the message's file descriptors; none are ever passed here).
    Fd(u32),
    Str(String),
    Path(String),
    Sig(String),
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    /// The value's type signature (`s`, `a(sv)`, ...).
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I16(_) => "n".into(),
            Value::U16(_) => "q".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::U64(_) => "t".into(),
            Value::I64(_) => "x".into(),
            Value::Double(_) => "d".into(),
            Value::Fd(_) => "h".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
        }
    }

    /// A string, object path or signature.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(n) => Some(*n),
            _ => None,
        }
    }

    /// A `(sv)` pair: the usual shape of systemd unit properties.
    pub fn property(name: &str, value: Value) -> Value {
        Value::Struct(vec![
            Value::Str(name.into()),
            Value::Variant(Box::new(value)),
        ])
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Alignment of a type by its first signature character.
fn alignment(c: u8) -> usize {
    match c {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'a' | b's' | b'o' | b'h' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

fn pad(buf: &mut Vec<u8>, align: usize) {
    while !buf.len().is_multiple_of(align) {
        buf.push(0);
    }
}

fn put_u32(buf: &mut Vec<u8>, n: u32) {
    pad(buf, 4);
    buf.extend_from_slice(&n.to_le_bytes());
}

/// Appends `v` to `buf`, aligned relative to the start of `buf` (callers start `buf` at an
/// 8-aligned message offset, as the header and the body are).
pub fn marshal(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Byte(b) => buf.push(*b),
        Value::Bool(b) => put_u32(buf, u32::from(*b)),
        Value::I16(n) => {
            pad(buf, 2);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        Value::U16(n) => {
            pad(buf, 2);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        Value::I32(n) => put_u32(buf, *n as u32),
        Value::U32(n) | Value::Fd(n) => put_u32(buf, *n),
        Value::U64(n) | Value::Double(n) => {
            pad(buf, 8);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        Value::I64(n) => {
            pad(buf, 8);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        Value::Str(s) | Value::Path(s) => {
            put_u32(buf, s.len() as u32);
            buf.extend_from_slice(s.as_bytes());
            buf.push(0);
        }
        Value::Sig(s) => {
            buf.push(s.len() as u8);
            buf.extend_from_slice(s.as_bytes());
            buf.push(0);
        }
        Value::Array(elem, items) => {
            put_u32(buf, 0);
            let len_at = buf.len() - 4;
            // The padding to the first element is not part of the array length.
            pad(
                buf,
                alignment(elem.as_bytes().first().copied().unwrap_or(b'y')),
            );
            let start = buf.len();
            for item in items {
                marshal(buf, item);
            }
            let len = (buf.len() - start) as u32;
            buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        }
        Value::Struct(fields) => {
            pad(buf, 8);
            for f in fields {
                marshal(buf, f);
            }
        }
        Value::Variant(inner) => {
            marshal(buf, &Value::Sig(inner.signature()));
            marshal(buf, inner);
        }
    }
}

/// Length of the first complete type in `sig`.
fn type_len(sig: &[u8]) -> io::Result<usize> {
    let bad = || invalid(format!("bad signature {:?}", String::from_utf8_lossy(sig)));
    match sig.first().ok_or_else(bad)? {
        b'a' => Ok(1 + type_len(&sig[1..])?),
        open @ (b'(' | b'{') => {
            let close = if *open == b'(' { b')' } else { b'}' };
            let mut i = 1;
            while *sig.get(i).ok_or_else(bad)? != close {
                i += type_len(&sig[i..])?;
            }
            Ok(i + 1)
        }
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
        | b'v' | b'h' => Ok(1),
        _ => Err(bad()),
    }
}

/// Splits a signature into its complete types.
fn split_signature(sig: &str) -> io::Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = sig;
    while !rest.is_empty() {
        let n = type_len(rest.as_bytes())?;
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    Ok(out)
}

/// Reads values out of a buffer that starts at an 8-aligned message offset.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    fn align(&mut self, a: usize) -> io::Result<()> {
        let next = self.pos.next_multiple_of(a);
        if next > self.buf.len() {
            return Err(invalid("message truncated in padding"));
        }
        self.pos = next;
        Ok(())
    }

    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| invalid("message truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> io::Result<u32> {
        self.align(4)?;
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, len: usize) -> io::Result<String> {
        let s = self.take(len)?.to_vec();
        if self.take(1)? != [0] {
            return Err(invalid("string not nul-terminated"));
        }
        String::from_utf8(s).map_err(|_| invalid("string is not UTF-8"))
    }

    /// Reads one value of the single complete type `sig`.
    pub fn read(&mut self, sig: &str) -> io::Result<Value> {
        self.depth += 1;
        if self.depth > 64 {
            return Err(invalid("values nested too deeply"));
        }
        let v = self.read_inner(sig);
        self.depth -= 1;
        v
    }

    fn read_inner(&mut self, sig: &str) -> io::Result<Value> {
        let b = sig.as_bytes();
        Ok(match b.first().copied().unwrap_or(0) {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return Err(invalid(format!("boolean {n}"))),
            },
            b'n' | b'q' => {
                self.align(2)?;
                let bytes = self.take(2)?;
                let n = u16::from_le_bytes([bytes[0], bytes[1]]);
                if b[0] == b'n' {
                    Value::I16(n as i16)
                } else {
                    Value::U16(n)
                }
            }
            b'i' => Value::I32(self.u32()? as i32),
            b'u' => Value::U32(self.u32()?),
            b'h' => Value::Fd(self.u32()?),
            b't' | b'x' | b'd' => {
                self.align(8)?;
                let bytes = self.take(8)?;
                let n = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                match b[0] {
                    b't' => Value::U64(n),
                    b'x' => Value::I64(n as i64),
                    _ => Value::Double(n),
                }
            }
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.string(len)?;
                if b[0] == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let len = usize::from(self.take(1)?[0]);
                Value::Sig(self.string(len)?)
            }
            b'v' => {
                let len = usize::from(self.take(1)?[0]);
                let inner = self.string(len)?;
                if type_len(inner.as_bytes())? != inner.len() {
                    return Err(invalid(format!("variant signature {inner:?}")));
                }
                Value::Variant(Box::new(self.read(&inner)?))
            }
            b'a' => {
                let elem = &sig[1..];
                let len = self.u32()? as usize;
                if len > 1 << 26 {
                    return Err(invalid("array longer than 64 MiB"));
                }
                self.align(alignment(elem.as_bytes()[0]))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    return Err(invalid("message truncated in array"));
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.read(elem)?);
                }
                if self.pos != end {
                    return Err(invalid("array length does not match its elements"));
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let fields = split_signature(&sig[1..sig.len() - 1])?
                    .into_iter()
                    .map(|t| self.read(t))
                    .collect::<io::Result<Vec<_>>>()?;
                Value::Struct(fields)
            }
            _ => return Err(invalid(format!("unsupported type {sig:?}"))),
        })
    }
}

/// One D-Bus message (header fields the client uses, and the body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub kind: u8,
    pub flags: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub body: Vec<Value>,
}

impl Message {
    pub fn method_call(
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        body: Vec<Value>,
    ) -> Self {
        Message {
            kind: METHOD_CALL,
            path: Some(path.into()),
            interface: Some(iface.into()),
            member: Some(member.into()),
            destination: Some(dest.into()),
            body,
            ..Default::default()
        }
    }

    pub fn signal(path: &str, iface: &str, member: &str, body: Vec<Value>) -> Self {
        Message {
            kind: SIGNAL,
            path: Some(path.into()),
            interface: Some(iface.into()),
            member: Some(member.into()),
            body,
            ..Default::default()
        }
    }

    /// The successful reply to `call`.
    pub fn reply(call: &Message, body: Vec<Value>) -> Self {
        Message {
            kind: METHOD_RETURN,
            reply_serial: Some(call.serial),
            destination: call.sender.clone(),
            body,
            ..Default::default()
        }
    }

    /// The error reply to `call`.
    pub fn error(call: &Message, name: &str, text: &str) -> Self {
        Message {
            kind: ERROR,
            error_name: Some(name.into()),
            reply_serial: Some(call.serial),
            destination: call.sender.clone(),
            body: vec![Value::Str(text.into())],
            ..Default::default()
        }
    }

    /// The body's signature.
    pub fn signature(&self) -> String {
        self.body.iter().map(Value::signature).collect()
    }

    /// The wire form (little endian, protocol version 1).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for v in &self.body {
            marshal(&mut body, v);
        }
        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![
                Value::Byte(code),
                Value::Variant(Box::new(v)),
            ]));
        };
        let strings = [
            (1, self.path.as_ref().map(|p| Value::Path(p.clone()))),
            (2, self.interface.clone().map(Value::Str)),
            (3, self.member.clone().map(Value::Str)),
            (4, self.error_name.clone().map(Value::Str)),
            (5, self.reply_serial.map(Value::U32)),
            (6, self.destination.clone().map(Value::Str)),
            (7, self.sender.clone().map(Value::Str)),
        ];
        for (code, v) in strings {
            if let Some(v) = v {
                field(code, v);
            }
        }
        if !self.body.is_empty() {
            field(8, Value::Sig(self.signature()));
        }
        let mut buf = vec![b'l', self.kind, self.flags, 1];
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(&self.serial.to_le_bytes());
        marshal(&mut buf, &Value::Array("(yv)".into(), fields));
        pad(&mut buf, 8);
        buf.extend_from_slice(&body);
        buf
    }

    /// Total length of the message whose first 16 bytes are `head`.
    pub fn wire_len(head: &[u8; 16]) -> io::Result<usize> {
        if head[0] != b'l' {
            return Err(invalid("only little-endian D-Bus messages are supported"));
        }
        let body = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        let fields = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes")) as usize;
        let total = (16 + fields).next_multiple_of(8) + body;
        if total > MAX_MESSAGE {
            return Err(invalid(format!("message of {total} bytes is too large")));
        }
        Ok(total)
    }

    /// Parses one complete message.
    pub fn decode(buf: &[u8]) -> io::Result<Message> {
        let head: &[u8; 16] = buf
            .get(..16)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| invalid("message shorter than its header"))?;
        if Message::wire_len(head)? != buf.len() {
            return Err(invalid("message length does not match its header"));
        }
        let mut m = Message {
            kind: buf[1],
            flags: buf[2],
            serial: u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes")),
            ..Default::default()
        };
        let mut r = Reader::new(buf);
        r.pos = 12;
        let Value::Array(_, fields) = r.read("a(yv)")? else {
            unreachable!("an array signature reads an array")
        };
        let mut signature = String::new();
        for f in fields {
            let Value::Struct(f) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (f.first(), f.get(1)) else {
                continue;
            };
            let s = v.as_str().map(str::to_string);
            match code {
                1 => m.path = s,
                2 => m.interface = s,
                3 => m.member = s,
                4 => m.error_name = s,
                5 => m.reply_serial = v.as_u32(),
                6 => m.destination = s,
                7 => m.sender = s,
                8 => signature = s.unwrap_or_default(),
                _ => {}
            }
        }
        r.align(8)?;
        let mut body = Reader::new(&buf[r.pos..]);
        for t in split_signature(&signature)? {
            m.body.push(body.read(t)?);
        }
        if body.pos != body.buf.len() {
            return Err(invalid("body longer than its signature"));
        }
        Ok(m)
    }
}

/// The socket path of a D-Bus address such as `unix:path=/run/dbus/system_bus_socket,guid=..`
/// (the first `unix:path=` entry of a `;`-separated list; `%xx` escapes undone).
pub fn socket_path(address: &str) -> Option<PathBuf> {
    address.split(';').find_map(|entry| {
        let rest = entry.strip_prefix("unix:")?;
        let value = rest.split(',').find_map(|kv| kv.strip_prefix("path="))?;
        let b = value.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (b[i], hex) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Some(PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out),
        ))
    })
}

/// The system bus socket: from `DBUS_SYSTEM_BUS_ADDRESS`, else [`SYSTEM_BUS_SOCKET`].
/// `Err` carries an address that has no `unix:path=` entry.
pub fn system_bus_socket() -> Result<PathBuf, String> {
    match std::env::var(SYSTEM_BUS_ENV) {
        Ok(addr) if !addr.is_empty() => socket_path(&addr).ok_or(addr),
        _ => Ok(PathBuf::from(SYSTEM_BUS_SOCKET)),
    }
}

/// An authenticated connection to a bus.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    next_serial: u32,
    queue: VecDeque<Message>,
    /// The unique name the bus gave us in reply to `Hello`.
    pub unique_name: String,
}

impl Connection {
    /// Connects to the bus socket at `path`, authenticates (SASL `EXTERNAL`) and says `Hello`.
    pub fn open(path: &std::path::Path) -> io::Result<Connection> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(CALL_TIMEOUT))?;
        stream.set_write_timeout(Some(CALL_TIMEOUT))?;
        let mut c = Connection {
            stream,
            next_serial: 1,
            queue: VecDeque::new(),
            unique_name: String::new(),
        };
        c.authenticate()?;
        let reply = c.call(Message::method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            vec![],
        ))?;
        c.unique_name = reply
            .body
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(c)
    }

    fn authenticate(&mut self) -> io::Result<()> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.stream.write_all(b"\0")?;
        self.stream
            .write_all(format!("AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the bus refused authentication as uid {uid}: {line:?}"),
            ));
        }
        self.stream.write_all(b"BEGIN\r\n")
    }

    /// One `\r\n`-terminated line of the SASL exchange (read byte by byte: nothing after it
    /// may be consumed).
    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let mut byte = [0u8];
        while !line.ends_with(b"\r\n") {
            self.stream.read_exact(&mut byte)?;
            line.push(byte[0]);
            if line.len() > 4096 {
                return Err(invalid("authentication line too long"));
            }
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Sends `m` with the next serial, which it returns.
    pub fn send(&mut self, mut m: Message) -> io::Result<u32> {
        m.serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1).max(1);
        self.stream.write_all(&m.encode())?;
        Ok(m.serial)
    }

    /// Reads the next message off the socket (not the queue), waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Message> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut head = [0u8; 16];
        self.stream.read_exact(&mut head)?;
        let mut buf = vec![0u8; Message::wire_len(&head)?];
        buf[..16].copy_from_slice(&head);
        self.stream.read_exact(&mut buf[16..])?;
        Message::decode(&buf)
    }

    /// Calls a method and waits for its reply; an error reply becomes an `io::Error` with the
    /// error name and text. Signals that arrive meanwhile are kept for `wait_signal`.
    pub fn call(&mut self, m: Message) -> io::Result<Message> {
        let serial = self.send(m)?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no reply from the bus",
                ));
            }
            let msg = self.recv(left)?;
            match msg.kind {
                METHOD_RETURN if msg.reply_serial == Some(serial) => return Ok(msg),
                ERROR if msg.reply_serial == Some(serial) => {
                    let text = msg.body.first().and_then(Value::as_str).unwrap_or("");
                    return Err(io::Error::other(format!(
                        "{}: {text}",
                        msg.error_name.as_deref().unwrap_or("error")
                    )));
                }
                SIGNAL => self.queue.push_back(msg),
                _ => {}
            }
        }
    }

    /// Waits until a signal `matches`, at most `timeout`; `Ok(None)` on timeout.
    pub fn wait_signal(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&Message) -> bool,
    ) -> io::Result<Option<Message>> {
        if let Some(i) = self.queue.iter().position(&matches) {
            return Ok(self.queue.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.recv(left) {
                Ok(m) if m.kind == SIGNAL && matches(&m) => return Ok(Some(m)),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Calls a method of the bus itself (`AddMatch`, `RequestName`, ...).
    pub fn bus_call(&mut self, member: &str, body: Vec<Value>) -> io::Result<Message> {
        self.call(Message::method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            member,
            body,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &Value) -> Vec<u8> {
        let mut b = Vec::new();
        marshal(&mut b, v);
        b
    }

    #[test]
    fn basic_types_marshal_as_the_specification_says() {
        // STRING: u32 length, bytes, nul.
        assert_eq!(bytes(&Value::Str("ab".into())), b"\x02\0\0\0ab\0");
        // SIGNATURE: u8 length.
        assert_eq!(bytes(&Value::Sig("as".into())), b"\x02as\0");
        assert_eq!(bytes(&Value::Bool(true)), [1, 0, 0, 0]);
        assert_eq!(bytes(&Value::U64(1)), [1, 0, 0, 0, 0, 0, 0, 0]);
        // VARIANT: signature, then the value aligned as itself.
        assert_eq!(
            bytes(&Value::Variant(Box::new(Value::U32(7)))),
            [1, b'u', 0, 0, 7, 0, 0, 0]
        );
    }

    #[test]
    fn arrays_pad_to_their_first_element_outside_the_length() {
        // a(sv) with one ("A", b true): length 0x10 counts from the 8-aligned struct.
        let v = Value::Array("(sv)".into(), vec![Value::property("A", Value::Bool(true))]);
        let want: &[u8] = b"\x10\0\0\0\0\0\0\0\x01\0\0\0A\0\x01b\0\0\0\0\x01\0\0\0";
        assert_eq!(bytes(&v), want);
        // An empty array of 8-aligned elements still pads after the length.
        assert_eq!(
            bytes(&Value::Array("t".into(), vec![])),
            [0, 0, 0, 0, 0, 0, 0, 0]
        );
        // au: 4-aligned, no padding.
        assert_eq!(
            bytes(&Value::Array("u".into(), vec![Value::U32(5)])),
            [4, 0, 0, 0, 5, 0, 0, 0]
        );
    }

    #[test]
    fn hello_call_encodes_like_the_reference_library() {
        // The bytes libdbus sends for Hello (serial 1), taken apart per the specification:
        // header, fields array of 0x6d bytes, padding to 8, no body.
        let m = Message::method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            vec![],
        );
        let mut m = m;
        m.serial = 1;
        let got = m.encode();
        let mut want = b"l\x01\0\x01\0\0\0\0\x01\0\0\0\x6d\0\0\0".to_vec();
        want.extend_from_slice(b"\x01\x01o\0\x15\0\0\0/org/freedesktop/DBus\0\0\0");
        want.extend_from_slice(b"\x02\x01s\0\x14\0\0\0org.freedesktop.DBus\0\0\0\0");
        want.extend_from_slice(b"\x03\x01s\0\x05\0\0\0Hello\0\0\0");
        want.extend_from_slice(b"\x06\x01s\0\x14\0\0\0org.freedesktop.DBus\0");
        // 16 + 0x6d = 125: padded to 128.
        want.extend_from_slice(b"\0\0\0");
        assert_eq!(got, want);
        assert_eq!(Message::decode(&got).unwrap(), m);
    }

    #[test]
    fn start_transient_unit_round_trips() {
        let mut m = Message::method_call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            vec![
                Value::Str("a-b.scope".into()),
                Value::Str("replace".into()),
                Value::Array(
                    "(sv)".into(),
                    vec![
                        Value::property("Delegate", Value::Bool(true)),
                        Value::property("PIDs", Value::Array("u".into(), vec![Value::U32(42)])),
                        Value::property("MemoryMax", Value::U64(1 << 20)),
                        Value::property("Nice", Value::I32(-3)),
                        Value::property("Weight", Value::I64(-5)),
                        Value::property("Ratio", Value::Double(0.5f64.to_bits())),
                        Value::property(
                            "Short",
                            Value::Struct(vec![Value::I16(-2), Value::U16(9), Value::Byte(1)]),
                        ),
                        Value::property(
                            "DelegateControllers",
                            Value::Array("s".into(), vec![Value::Str("memory".into())]),
                        ),
                    ],
                ),
                Value::Array("(sa(sv))".into(), vec![]),
            ],
        );
        m.serial = 9;
        m.sender = Some(":1.5".into());
        assert_eq!(m.signature(), "ssa(sv)a(sa(sv))");
        let wire = m.encode();
        assert_eq!(wire.len() % 8, 0);
        assert_eq!(Message::decode(&wire).unwrap(), m);
        // A truncated message is an error, not a panic.
        assert!(Message::decode(&wire[..wire.len() - 3]).is_err());
    }

    #[test]
    fn signature_splitting() {
        assert_eq!(split_signature("uoss").unwrap(), vec!["u", "o", "s", "s"]);
        assert_eq!(
            split_signature("sa(sv)a{sv}").unwrap(),
            vec!["s", "a(sv)", "a{sv}"]
        );
        assert!(split_signature("a(s").is_err());
        assert!(split_signature("z").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            socket_path("unix:path=/tmp/a%20b/bus,guid=123"),
            Some(PathBuf::from("/tmp/a b/bus"))
        );
        assert_eq!(
            socket_path("tcp:host=x;unix:path=/run/bus"),
            Some(PathBuf::from("/run/bus"))
        );
        assert_eq!(socket_path("unix:abstract=/x"), None);
    }
}

//! The systemd cgroup driver (`--systemd-cgroup`), as in runc and crun: the container's
//! cgroup is a transient scope unit that systemd creates over D-Bus, and everything else (limits,
//! stats, freeze, kill) works on the unit's cgroup directory through the cgroupfs managers.
//!
//! * `cgroupsPath` is `slice:prefix:name` → unit `prefix-name.scope` in `slice` (empty:
//!   `system.slice`), cgroup `<expanded slice>/prefix-name.scope`; no `cgroupsPath` →
//!   `system.slice:runc:<id>` (runc's defaults).
//! * The unit starts (`StartTransientUnit` with `Description`, `Slice`, `Delegate`,
//!   `DefaultDependencies=false`, `PIDs=[stage-1]` and runc's accounting switches) when the first
//!   process is added, because systemd refuses a scope without processes; the runtime waits for
//!   the job's `JobRemoved`.
//!   On v1 and hybrid hosts the driver then joins the v1 controllers at the same path itself,
//!   as runc does.
//! * The driver is refused, in runc's words, where `/run/systemd/system` is missing.
//! * Limits systemd has a property for are set on the unit (`SetUnitProperties`, runc's names
//!   and conversions: [`resource_properties`]), because systemd rewrites the unit's cgroup files
//!   from its properties (e.g. on `daemon-reload`); then the whole OCI resource set is written to
//!   the cgroupfs files of the unit's cgroup exactly as the cgroupfs driver does (systemd has no
//!   property for many of them, and runc also writes the files after setting the properties).
//! * `remove` stops the unit (`StopUnit`) and removes what is left.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use super::dbus::{self, Connection, Message, Value};
use super::{CgroupError, CgroupManager, Result, Setup, Stats, V1Manager, V2Manager};

const SYSTEMD_DEST: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const SYSTEMD_MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long the runtime waits for systemd's job (runc: 30 s).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// The extended attribute naming the unit on the cgroup directory the driver made: later
/// invocations (`delete` without `--systemd-cgroup`) find the driver from it, as runc finds it
/// in its state.
pub const UNIT_XATTR: &str = "trusted.peapod.systemd-unit";

/// Owner marks asked for before the unit (and so its directory) existed, written when the unit
/// starts: `(cgroup path, token)`.
static PENDING_CLAIMS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// The directory systemd creates when it runs as the init system (sd_booted(3)); runc's
/// `IsRunningSystemd` refuses the driver without it, before talking to any bus.
pub const RUNNING_MARK: &str = "/run/systemd/system";
/// runc 1.5.1's words when [`RUNNING_MARK`] is missing.
pub const NOT_RUNNING: &str =
    "systemd not running on this host, cannot use systemd cgroups manager";

/// Refuses the driver, in runc's words, where systemd is not the init system.
pub fn require_running() -> Result<()> {
    require_running_at(Path::new(RUNNING_MARK))
}

fn require_running_at(mark: &Path) -> Result<()> {
    if std::fs::symlink_metadata(mark).is_ok_and(|m| m.is_dir()) {
        Ok(())
    } else {
        Err(CgroupError::Systemd(NOT_RUNNING.to_string()))
    }
}

/// runc's `ExpandSlice`: `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`, `-.slice` → `/`.
pub fn expand_slice(slice: &str) -> std::result::Result<String, String> {
    let invalid = || format!("invalid slice name: {slice}");
    let name = slice
        .strip_suffix(".slice")
        .filter(|_| !slice.contains('/'))
        .ok_or_else(invalid)?;
    if name == "-" {
        return Ok("/".to_string());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in name.split('-') {
        if component.is_empty() {
            return Err(invalid());
        }
        path.push_str(&format!("/{prefix}{component}.slice"));
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

/// A unit's names: the slice it lives in, its own name and its cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub slice: String,
    pub name: String,
    pub path: String,
}

fn valid_unit_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c))
}

/// Parses runc's systemd `cgroupsPath` (`slice:prefix:name`; empty → `system.slice:runc:<id>`).
pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Unit> {
    let raw = cgroups_path.unwrap_or("");
    let (slice, prefix, name) = if raw.is_empty() {
        ("", "runc", id)
    } else {
        match raw.split(':').collect::<Vec<_>>()[..] {
            [s, p, n] => (s, p, n),
            _ => {
                return Err(CgroupError::Systemd(format!(
                    "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd \
                     cgroups, got {raw:?} instead"
                )));
            }
        }
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let bad = |reason: &'static str| CgroupError::InvalidPath {
        path: raw.to_string(),
        reason,
    };
    if name.ends_with(".slice") {
        return Err(CgroupError::Unsupported {
            field: "linux.cgroupsPath".to_string(),
            reason: format!(
                "{name:?} names a slice unit; peapod's systemd driver only creates scopes"
            ),
        });
    }
    if name.is_empty() {
        return Err(bad("the unit name (the part after the last `:`) is empty"));
    }
    let unit = format!("{prefix}-{name}.scope");
    if !valid_unit_chars(&unit) {
        return Err(bad(
            "systemd unit names only have ASCII letters, digits and `:-_.\\@`",
        ));
    }
    let slice_path = expand_slice(slice).map_err(CgroupError::Systemd)?;
    let path = format!("{}/{unit}", slice_path.trim_end_matches('/'));
    Ok(Unit {
        slice: slice.to_string(),
        name: unit,
        path,
    })
}

/// The unit of an already resolved cgroup path `/<slices>/<unit>.scope`, `None` for any other
/// shape.
pub fn unit_of_path(path: &str) -> Option<Unit> {
    let (parent, name) = path.rsplit_once('/')?;
    if !name.ends_with(".scope") || !valid_unit_chars(name) {
        return None;
    }
    let slice = match parent.rsplit_once('/') {
        None if parent.is_empty() => "-.slice".to_string(),
        Some((_, s)) if s.ends_with(".slice") => s.to_string(),
        _ => return None,
    };
    (expand_slice(&slice).ok()?.trim_end_matches('/') == parent).then(|| Unit {
        slice,
        name: name.to_string(),
        path: path.to_string(),
    })
}

/// Connects to the system bus, with an error that names the socket and the cause.
fn connect() -> Result<Connection> {
    let socket = dbus::system_bus_socket().map_err(|addr| {
        CgroupError::Systemd(format!(
            "{}={addr:?} has no unix:path= entry; hint: --systemd-cgroup needs systemd's D-Bus \
             system bus",
            dbus::SYSTEM_BUS_ENV
        ))
    })?;
    connect_to(&socket)
}

fn connect_to(socket: &std::path::Path) -> Result<Connection> {
    Connection::open(socket).map_err(|e| {
        CgroupError::Systemd(format!(
            "connect to the D-Bus system bus at `{}`: {e}; hint: --systemd-cgroup needs systemd \
             (and its D-Bus system bus) running on the host; omit the flag to use cgroupfs",
            socket.display()
        ))
    })
}

fn manager_call(member: &str, body: Vec<Value>) -> Message {
    Message::method_call(SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, member, body)
}

/// Asks the bus for the manager's `JobRemoved` signals (runc does the same through go-systemd).
fn subscribe(c: &mut Connection) -> std::io::Result<()> {
    c.bus_call(
        "AddMatch",
        vec![Value::Str(format!(
            "type='signal',sender='{SYSTEMD_DEST}',path='{SYSTEMD_PATH}',\
             interface='{SYSTEMD_MANAGER}',member='JobRemoved'"
        ))],
    )?;
    // No `Subscribe` (runc sends none either): systemd sends a job's signals to the client
    // that queued it.
    Ok(())
}

/// Waits for `JobRemoved(id, job, unit, result)` of `job`; returns its result.
fn wait_job(c: &mut Connection, job: &str) -> std::io::Result<Option<String>> {
    let m = c.wait_signal(JOB_TIMEOUT, |m| {
        m.member.as_deref() == Some("JobRemoved")
            && m.body.get(1).and_then(Value::as_str) == Some(job)
    })?;
    Ok(m.and_then(|m| m.body.get(3).and_then(Value::as_str).map(str::to_string)))
}

/// The unit properties for the limits in `r` that systemd manages on the unit's own cgroup,
/// with runc 1.5.1's names, types and conversions (its `genV2ResourcesProperties` and
/// `genV1ResourcesProperties`, device rules aside: peapod keeps its own device filter). -1 (and
/// any negative limit) is `infinity` (`u64::MAX`).
pub fn resource_properties(r: &LinuxResources, unified: bool) -> Result<Vec<Value>> {
    let mut props = Vec::new();
    let mut put = |name: &str, v: u64| props.push(Value::property(name, Value::U64(v)));
    let max = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    if let Some(m) = r.memory() {
        if let Some(limit) = m.limit().filter(|l| *l != 0) {
            put(
                if unified { "MemoryMax" } else { "MemoryLimit" },
                max(limit),
            );
        }
        if unified {
            if let Some(low) = m.reservation().filter(|l| *l != 0) {
                put("MemoryLow", max(low));
            }
            if let Some(swap) = super::swap_to_v2(m.swap(), m.limit())?.filter(|s| *s != 0) {
                put("MemorySwapMax", max(swap));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares().filter(|s| *s != 0) {
            if unified {
                put("CPUWeight", super::shares_to_weight(shares));
            } else {
                put("CPUShares", shares);
            }
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if period != 0 {
            put("CPUQuotaPeriodUSec", period);
        }
        if quota != 0 || period != 0 {
            // systemd's CPUQuota is per second, in steps of 10 ms (rounded up).
            let mut per_sec = u64::MAX;
            if quota > 0 {
                let period = if period == 0 { 100_000 } else { period };
                per_sec = (quota as u64).saturating_mul(1_000_000) / period;
                if per_sec % 10_000 != 0 {
                    per_sec = (per_sec / 10_000 + 1) * 10_000;
                }
            }
            put("CPUQuotaPerSecUSec", per_sec);
        }
    }
    if !unified
        && let Some(weight) = r.block_io().as_ref().and_then(|b| b.weight())
        && weight != 0
    {
        put("BlockIOWeight", u64::from(weight));
    }
    if let Some(p) = r.pids()
        && (p.limit() > 0 || p.limit() == -1)
    {
        put("TasksMax", max(p.limit()));
    }
    if let Some(c) = r.cpu() {
        let lists = [
            ("AllowedCPUs", "linux.resources.cpu.cpus", c.cpus()),
            ("AllowedMemoryNodes", "linux.resources.cpu.mems", c.mems()),
        ];
        for (name, field, list) in lists {
            if let Some(list) = list.as_deref().filter(|l| !l.trim().is_empty()) {
                props.push(Value::property(name, list_bits(field, list)?));
            }
        }
    }
    Ok(props)
}

/// A cpu or memory-node list (`0-3,7`) as systemd's `AllowedCPUs`/`AllowedMemoryNodes` take
/// it: a byte array bitmask, id 0 in the lowest bit of the first byte (as runc sends it).
fn list_bits(field: &str, list: &str) -> Result<Value> {
    // The kernel's NR_CPUS limit; node ids are far below it.
    const MAX_ID: usize = 8191;
    let ids =
        crate::linux::parse_list(list, MAX_ID).map_err(|reason| CgroupError::InvalidValue {
            field: field.into(),
            reason,
        })?;
    let mut bytes = vec![0u8; ids.last().map_or(1, |last| last / 8 + 1)];
    for id in ids {
        bytes[id / 8] |= 1 << (id % 8);
    }
    Ok(Value::Array(
        "y".into(),
        bytes.into_iter().map(Value::Byte).collect(),
    ))
}

/// A container cgroup that is a systemd scope unit.
#[derive(Debug)]
pub struct SystemdManager {
    unit: Unit,
    /// The cgroupfs manager of the unit's directory (every hierarchy on v1 and hybrid hosts).
    fs: Box<dyn CgroupManager>,
}

impl SystemdManager {
    pub fn new(setup: &Setup, unit: Unit) -> Self {
        let fs: Box<dyn CgroupManager> = match setup {
            Setup::Unified { root } => Box::new(V2Manager::new(root.clone(), &unit.path)),
            Setup::Hybrid {
                controllers,
                unified,
            } => Box::new(
                V1Manager::new(controllers.clone(), &unit.path).with_unified(unified.clone()),
            ),
            Setup::Legacy { controllers } => {
                Box::new(V1Manager::new(controllers.clone(), &unit.path))
            }
        };
        SystemdManager { unit, fs }
    }

    pub fn unit(&self) -> &Unit {
        &self.unit
    }

    /// Whether the unit's cgroup directory carries the driver's unit mark.
    pub fn marked_dir(&self) -> bool {
        self.fs.marker_dir().and_then(|d| unit_mark(&d)).as_deref() == Some(&self.unit.name)
    }

    fn start(&self, pid: i32) -> Result<()> {
        let err = |what: String| {
            CgroupError::Systemd(format!("start transient unit `{}`: {what}", self.unit.name))
        };
        let mut c = connect()?;
        subscribe(&mut c).map_err(|e| err(e.to_string()))?;
        let mut props = vec![
            Value::property(
                "Description",
                Value::Str(format!("peapod container {}", self.unit.name)),
            ),
            Value::property("Slice", Value::Str(self.unit.slice.clone())),
            Value::property("Delegate", Value::Bool(true)),
            Value::property("DefaultDependencies", Value::Bool(false)),
            Value::property(
                "PIDs",
                Value::Array("u".into(), vec![Value::U32(pid as u32)]),
            ),
            // As runc (less BlockIOAccounting, which newer systemd versions dropped): systemd
            // then enables these controllers on the way to the unit.
            Value::property("MemoryAccounting", Value::Bool(true)),
            Value::property("CPUAccounting", Value::Bool(true)),
            Value::property("TasksAccounting", Value::Bool(true)),
        ];
        if self.fs.is_unified() {
            // runc's v2 manager also asks for io accounting (its v1 one for none).
            props.push(Value::property("IOAccounting", Value::Bool(true)));
        }
        let reply = c
            .call(manager_call(
                "StartTransientUnit",
                vec![
                    Value::Str(self.unit.name.clone()),
                    Value::Str("replace".into()),
                    Value::Array("(sv)".into(), props),
                    Value::Array("(sa(sv))".into(), vec![]),
                ],
            ))
            .map_err(|e| {
                if e.to_string().contains("UnitExists") {
                    err("unit already exists".to_string())
                } else {
                    err(e.to_string())
                }
            })?;
        let job = reply
            .body
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| err("the reply carries no job path".to_string()))?
            .to_string();
        match wait_job(&mut c, &job).map_err(|e| err(e.to_string()))? {
            Some(r) if r == "done" => Ok(()),
            Some(r) => Err(CgroupError::Systemd(format!(
                "error creating systemd unit `{}`: got `{r}`",
                self.unit.name
            ))),
            None => Err(CgroupError::Systemd(format!(
                "timeout waiting for systemd to create {} (after {} s)",
                self.unit.name,
                JOB_TIMEOUT.as_secs()
            ))),
        }
    }

    /// `SetUnitProperties(unit, runtime, props)`.
    fn set_properties(&self, props: Vec<Value>) -> Result<()> {
        let mut c = connect()?;
        c.call(manager_call(
            "SetUnitProperties",
            vec![
                Value::Str(self.unit.name.clone()),
                Value::Bool(true),
                Value::Array("(sv)".into(), props),
            ],
        ))
        .map_err(|e| {
            CgroupError::Systemd(format!(
                "unable to set unit properties of `{}`: {e}",
                self.unit.name
            ))
        })?;
        Ok(())
    }

    /// `StopUnit` and wait for its job; a unit systemd no longer knows is stopped already.
    fn stop(&self) -> Result<()> {
        let err =
            |what: String| CgroupError::Systemd(format!("stop unit `{}`: {what}", self.unit.name));
        let mut c = connect()?;
        subscribe(&mut c).map_err(|e| err(e.to_string()))?;
        let reply = match c.call(manager_call(
            "StopUnit",
            vec![
                Value::Str(self.unit.name.clone()),
                Value::Str("replace".into()),
            ],
        )) {
            Ok(r) => r,
            Err(e) if e.to_string().contains("NoSuchUnit") => return Ok(()),
            Err(e) => return Err(err(e.to_string())),
        };
        let job = reply
            .body
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match wait_job(&mut c, &job).map_err(|e| err(e.to_string()))? {
            Some(_) => {
                // A scope whose processes were killed may be left "failed", which keeps its
                // name taken: reset it, as runc does (an error only means there was nothing).
                let _ = c.call(manager_call(
                    "ResetFailedUnit",
                    vec![Value::Str(self.unit.name.clone())],
                ));
                Ok(())
            }
            None => Err(err(format!(
                "timeout waiting for the job after {} s",
                JOB_TIMEOUT.as_secs()
            ))),
        }
    }

    /// After the unit started: the v1 hierarchies systemd does not manage (and, on v2, the
    /// controllers of the ancestors) are set up like the cgroupfs driver does, the process
    /// joins them, and the directories get the unit and owner marks.
    fn finish_start(&self, pid: i32) -> Result<()> {
        self.fs.create()?;
        self.fs.add_task(pid)?;
        for d in self.fs.leaf_dirs().into_iter().filter(|d| d.is_dir()) {
            xattr::set(&d, UNIT_XATTR, self.unit.name.as_bytes()).map_err(|source| {
                CgroupError::Io {
                    op: "mark unit of",
                    path: d.clone(),
                    err: source,
                }
            })?;
        }
        let token = {
            let mut pending = PENDING_CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
            let i = pending.iter().position(|(p, _)| *p == self.unit.path);
            i.map(|i| pending.remove(i).1)
        };
        if let Some(token) = token {
            self.fs.claim(&token)?;
        }
        Ok(())
    }
}

impl CgroupManager for SystemdManager {
    fn path(&self) -> &str {
        &self.unit.path
    }
    fn is_unified(&self) -> bool {
        self.fs.is_unified()
    }
    fn exists(&self) -> bool {
        self.fs.exists()
    }
    /// Only checks that the bus answers: systemd creates the cgroup when the unit starts, with
    /// the first process ([`CgroupManager::add_task`]).
    fn create(&self) -> Result<()> {
        connect().map(drop)
    }
    fn add_task(&self, pid: i32) -> Result<()> {
        if self.fs.marker_dir().is_some_and(|d| d.is_dir()) {
            return self.fs.add_task(pid);
        }
        self.start(pid)?;
        if let Err(e) = self.finish_start(pid) {
            if let Err(stop) = self.stop() {
                log::warn!("cgroups: {stop}");
            }
            let _ = self.fs.remove();
            return Err(e);
        }
        Ok(())
    }
    /// Sets the limits systemd keeps as unit properties on the unit first (it rewrites the
    /// unit's cgroup files from them, e.g. on `daemon-reload`), then writes every limit to the
    /// cgroup files as the cgroupfs driver does. A refused property fails the call, as in runc
    /// ("unable to set unit properties"): a limit systemd does not hold would be reset by it.
    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let props = resource_properties(resources, self.fs.is_unified())?;
        if !props.is_empty() {
            self.set_properties(props)?;
        }
        self.fs.apply(resources)
    }
    fn freeze(&self) -> Result<()> {
        self.fs.freeze()
    }
    fn thaw(&self) -> Result<()> {
        self.fs.thaw()
    }
    fn is_frozen(&self) -> Result<bool> {
        self.fs.is_frozen()
    }
    fn pids(&self) -> Result<Vec<i32>> {
        self.fs.pids()
    }
    fn kill_all(&self, sig: i32) -> Result<()> {
        self.fs.kill_all(sig)
    }
    fn stats(&self) -> Result<Stats> {
        self.fs.stats()
    }
    fn oom_kill_count(&self) -> Result<u64> {
        self.fs.oom_kill_count()
    }
    fn oom_watch_path(&self) -> Option<PathBuf> {
        self.fs.oom_watch_path()
    }
    fn mount_sources(&self) -> Vec<(String, PathBuf)> {
        self.fs.mount_sources()
    }
    fn cgroup_fd(&self) -> Result<Option<OwnedFd>> {
        // The directory exists only once the unit started.
        Ok(None)
    }
    /// Stops the unit (systemd kills what is left in it and removes its cgroup), then removes
    /// the directories systemd does not manage. Without a bus the directories are removed
    /// anyway (systemd drops an empty scope by itself) and a warning says so.
    fn remove(&self) -> Result<()> {
        if (self.fs.exists() || self.marked_dir())
            && let Err(e) = self.stop()
        {
            log::warn!("cgroups: {e}; removing the cgroup directories directly");
        }
        self.fs.remove()
    }
    fn leaf_dirs(&self) -> Vec<PathBuf> {
        self.fs.leaf_dirs()
    }
    fn marker_dir(&self) -> Option<PathBuf> {
        self.fs.marker_dir()
    }
    fn claim(&self, token: &str) -> Result<()> {
        if self.fs.marker_dir().is_some_and(|d| d.is_dir()) {
            return self.fs.claim(token);
        }
        let mut pending = PENDING_CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|(p, _)| *p != self.unit.path);
        pending.push((self.unit.path.clone(), token.to_string()));
        Ok(())
    }
}

/// Whether `dir` is a directory carrying the unit mark (for tests and diagnostics).
pub fn unit_mark(dir: &Path) -> Option<String> {
    if !dir.is_dir() {
        return None;
    }
    xattr::get(dir, UNIT_XATTR)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_like_runc() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "",
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a/b.slice",
            "a.scope",
            "a-.slice",
        ] {
            assert_eq!(
                expand_slice(bad).unwrap_err(),
                format!("invalid slice name: {bad}"),
                "{bad}"
            );
        }
    }

    #[test]
    fn cgroups_paths_parse_like_runc() {
        let u = parse(Some("pptest-x.slice:pp:abc"), "id").unwrap();
        assert_eq!(u.slice, "pptest-x.slice");
        assert_eq!(u.name, "pp-abc.scope");
        assert_eq!(u.path, "/pptest.slice/pptest-x.slice/pp-abc.scope");
        let u = parse(Some(":pp:abc"), "id").unwrap();
        assert_eq!(u.path, "/system.slice/pp-abc.scope");
        let u = parse(Some("-.slice:pp:abc"), "id").unwrap();
        assert_eq!(u.path, "/pp-abc.scope");
        let u = parse(None, "c1").unwrap();
        assert_eq!(
            (u.slice.as_str(), u.name.as_str()),
            ("system.slice", "runc-c1.scope")
        );
        let e = parse(Some("/a/b"), "id").unwrap_err().to_string();
        assert_eq!(
            e,
            "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, \
             got \"/a/b\" instead"
        );
        assert!(parse(Some("a:b:c:d"), "id").is_err());
        assert_eq!(
            parse(Some("a:p:n"), "id").unwrap_err().to_string(),
            "invalid slice name: a"
        );
        assert!(parse(Some("system.slice:p:"), "id").is_err());
        assert!(parse(Some("system.slice:p:x/../y"), "id").is_err());
        assert!(parse(Some("system.slice:p:x.slice"), "id").is_err());
    }

    #[test]
    fn resolved_paths_give_the_unit_back() {
        for raw in ["a-b.slice:pp:x", ":p:n", "-.slice:p:n"] {
            let u = parse(Some(raw), "id").unwrap();
            assert_eq!(unit_of_path(&u.path), Some(u), "{raw}");
        }
        assert_eq!(unit_of_path("/peapod/x"), None);
        assert_eq!(
            unit_of_path("/b.slice/x.scope"),
            Some(Unit {
                slice: "b.slice".into(),
                name: "x.scope".into(),
                path: "/b.slice/x.scope".into(),
            })
        );
        // The slice must expand to the parent path.
        assert_eq!(unit_of_path("/x/a-b.slice/n.scope"), None);
    }

    #[test]
    fn limits_become_runcs_unit_properties() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "reservation": 1048576, "swap": 134217728},
            "cpu": {"shares": 2048, "quota": 25001, "period": 100000},
            "pids": {"limit": -1},
            "blockIO": {"weight": 500},
        }))
        .unwrap();
        let names = |props: Vec<Value>| -> Vec<(String, u64)> {
            props
                .into_iter()
                .map(|p| match p {
                    Value::Struct(f) => match (&f[0], &f[1]) {
                        (Value::Str(k), Value::Variant(v)) => match **v {
                            Value::U64(n) => (k.clone(), n),
                            ref other => panic!("{k}: {other:?}"),
                        },
                        other => panic!("{other:?}"),
                    },
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            names(resource_properties(&r, true).unwrap()),
            [
                ("MemoryMax", 67108864),
                ("MemoryLow", 1048576),
                ("MemorySwapMax", 67108864),
                ("CPUWeight", super::super::shares_to_weight(2048)),
                ("CPUQuotaPeriodUSec", 100000),
                // 250010 µs per second, rounded up to 10 ms.
                ("CPUQuotaPerSecUSec", 260000),
                ("TasksMax", u64::MAX),
            ]
            .map(|(k, v)| (k.to_string(), v))
        );
        assert_eq!(
            names(resource_properties(&r, false).unwrap()),
            [
                ("MemoryLimit", 67108864),
                ("CPUShares", 2048),
                ("CPUQuotaPeriodUSec", 100000),
                ("CPUQuotaPerSecUSec", 260000),
                ("BlockIOWeight", 500),
                ("TasksMax", u64::MAX),
            ]
            .map(|(k, v)| (k.to_string(), v))
        );
        // Nothing set, nothing sent; a period alone is "no quota".
        assert!(
            resource_properties(&LinuxResources::default(), true)
                .unwrap()
                .is_empty()
        );
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"cpu": {"period": 50000}})).unwrap();
        assert_eq!(
            names(resource_properties(&r, true).unwrap()),
            [
                ("CPUQuotaPeriodUSec", 50000),
                ("CPUQuotaPerSecUSec", u64::MAX)
            ]
            .map(|(k, v)| (k.to_string(), v))
        );
    }

    #[test]
    fn cpu_and_node_lists_become_byte_masks() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "cpu": {"cpus": "0-1,9", "mems": "0"},
        }))
        .unwrap();
        let bytes = |v: &Value| match v {
            Value::Struct(f) => match (&f[0], &f[1]) {
                (Value::Str(k), Value::Variant(v)) => match &**v {
                    Value::Array(sig, items) if sig == "y" => (
                        k.clone(),
                        items
                            .iter()
                            .map(|b| match b {
                                Value::Byte(b) => *b,
                                other => panic!("{other:?}"),
                            })
                            .collect::<Vec<u8>>(),
                    ),
                    other => panic!("{k}: {other:?}"),
                },
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        let props = resource_properties(&r, true).unwrap();
        let got: Vec<_> = props.iter().map(bytes).collect();
        assert_eq!(
            got,
            [
                ("AllowedCPUs".to_string(), vec![0b11, 0b10]),
                ("AllowedMemoryNodes".to_string(), vec![1])
            ]
        );
        let bad: LinuxResources =
            serde_json::from_value(serde_json::json!({"cpu": {"cpus": "3-1"}})).unwrap();
        assert_eq!(
            resource_properties(&bad, true).unwrap_err().to_string(),
            "invalid linux.resources.cpu.cpus: invalid range: 3-1"
        );
    }

    #[test]
    fn no_systemd_is_refused_in_runcs_words() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("system");
        let err = require_running_at(&mark).unwrap_err().to_string();
        assert_eq!(
            err,
            "systemd not running on this host, cannot use systemd cgroups manager"
        );
        // A file is not the mark either (runc wants a directory).
        std::fs::write(&mark, "").unwrap();
        assert!(require_running_at(&mark).is_err());
        std::fs::remove_file(&mark).unwrap();
        std::fs::create_dir(&mark).unwrap();
        require_running_at(&mark).unwrap();
    }

    #[test]
    fn unreachable_bus_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("nobus");
        let err = connect_to(&sock).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "connect to the D-Bus system bus at `{}`: No such file or directory (os error 2); \
                 hint: --systemd-cgroup needs systemd (and its D-Bus system bus) running on the \
                 host; omit the flag to use cgroupfs",
                sock.display()
            )
        );
    }
}

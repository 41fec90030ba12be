//! BIRD 2 in a namespace: `bird -c CONF -s CTL -P PIDFILE`, queried with `birdc -s CTL`.
//!
//! [`BirdProcess`] is the launcher every BIRD of the tests shares (this
//! one-session [`Bird`], the many-peer [`super::BirdRouter`], and configs a
//! test writes itself); [`Bird`] adds the one-session config.

use super::{check, wait_for, BgpDaemon, BgpDaemonSpec};
use crate::process::kill_pidfile;
use crate::Netns;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Short retry timers for a BGP protocol: BIRD's defaults (connect retry
/// 120 s, error wait 60-300 s) would stall a test for minutes.
pub const SHORT_TIMERS: &str =
    "  connect delay time 1; connect retry time 1;\n  error wait time 1, 4; error forget time 10;\n";

/// One BIRD 2 process in a namespace with its own directory (config,
/// control socket, pidfile, log); stopped by the PID in its pidfile on drop,
/// the directory removed after.
#[derive(Debug)]
pub struct BirdProcess {
    ns: String,
    dir: tempfile::TempDir,
    running: bool,
}

impl BirdProcess {
    /// A BIRD for namespace `ns`, not started yet: its directory exists
    /// (a config may name files in [`Self::dir`]).
    pub fn new(ns: &Netns) -> io::Result<Self> {
        Self::in_ns_named(ns.name())
    }

    /// [`Self::new`] by namespace name (unit tests that only render configs).
    pub(super) fn in_ns_named(ns: &str) -> io::Result<Self> {
        Ok(Self {
            ns: ns.to_string(),
            dir: tempfile::tempdir()?,
            running: false,
        })
    }

    /// Writes `config` and starts BIRD; returns once its control socket answers.
    pub fn launch(&mut self, config: &str) -> io::Result<()> {
        let conf = self.dir.path().join("bird.conf");
        std::fs::write(&conf, config)?;
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "bird", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(self.ctl())
            .arg("-P")
            .arg(self.pidfile())
            .output()?;
        check(out, "bird")?;
        self.running = true;
        wait_for("bird control socket", || {
            self.birdc(&["show", "status"]).is_ok()
        })
    }

    /// Writes `config` and has the running BIRD load it (`birdc configure`).
    pub fn reconfigure(&self, config: &str) -> io::Result<()> {
        std::fs::write(self.dir.path().join("bird.conf"), config)?;
        let out = self.birdc(&["configure"])?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(io::Error::other(format!("birdc configure: {out}")))
        }
    }

    /// The directory of the config, control socket, pidfile and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The start of every config: the log (read by [`Self::log`]), the
    /// router id and `protocol device`.
    pub fn config_head(&self, router_id: impl std::fmt::Display) -> String {
        format!(
            "log \"{}/bird.log\" all;\nrouter id {router_id};\nprotocol device {{ scan time 1; }}\n",
            self.dir.path().display()
        )
    }

    fn ctl(&self) -> PathBuf {
        self.dir.path().join("bird.ctl")
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("bird.pid")
    }

    /// `birdc -s CTL <args>` output.
    pub fn birdc(&self, args: &[&str]) -> io::Result<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.ctl())
            .args(args)
            .output()?;
        check(out, "birdc")
    }

    /// The BIRD log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default()
    }

    /// Is the session of BGP protocol `name` Established?
    pub fn established(&self, name: &str) -> bool {
        self.birdc(&["show", "protocols", name])
            .map(|o| o.contains("Established"))
            .unwrap_or(false)
    }

    /// The prefixes BIRD has from BGP protocol `name` (`show route protocol NAME`).
    pub fn received(&self, name: &str) -> Vec<String> {
        self.birdc(&["show", "route", "protocol", name])
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with(char::is_whitespace))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|t| t.contains('/'))
            .map(str::to_string)
            .collect()
    }

    /// Stops BIRD (by the PID in its pidfile).
    pub fn stop(&mut self) {
        kill_pidfile(&self.pidfile());
        let _ = std::fs::remove_file(self.pidfile());
        self.running = false;
    }
}

impl Drop for BirdProcess {
    fn drop(&mut self) {
        if self.running {
            self.stop();
        }
    }
}

/// A BIRD 2 process with one BGP protocol named `peer`.
#[derive(Debug)]
pub struct Bird {
    proc: BirdProcess,
    spec: BgpDaemonSpec,
}

impl Bird {
    /// Writes the config and starts BIRD inside `ns`; returns once its control socket answers.
    pub fn start(ns: &Netns, spec: BgpDaemonSpec) -> io::Result<Self> {
        let mut b = Self {
            proc: BirdProcess::new(ns)?,
            spec,
        };
        BgpDaemon::start(&mut b)?;
        Ok(b)
    }

    /// `birdc -s CTL <args>` output.
    pub fn birdc(&self, args: &[&str]) -> io::Result<String> {
        self.proc.birdc(args)
    }

    /// The config text BIRD runs with.
    pub fn config(&self) -> String {
        let s = &self.spec;
        let mut c = self.proc.config_head(s.router_id);
        c.push_str("protocol direct { ipv4; ipv6; }\n");
        c.push_str("protocol static s4 { ipv4;\n");
        for p in s.v4_prefixes() {
            let _ = writeln!(c, "  route {p} blackhole;");
        }
        c.push_str("}\nprotocol static s6 { ipv6;\n");
        for p in s.v6_prefixes() {
            let _ = writeln!(c, "  route {p} blackhole;");
        }
        c.push_str("}\n");
        let _ = writeln!(c, "protocol bgp peer {{");
        let _ = writeln!(
            c,
            "  local {} port {} as {};",
            s.local_addr, s.listen_port, s.local_as
        );
        let _ = writeln!(
            c,
            "  neighbor {} port {} as {};",
            s.peer_addr, s.peer_port, s.peer_as
        );
        let _ = writeln!(
            c,
            "  hold time {}; keepalive time {};",
            s.hold_time,
            (s.hold_time / 3).max(1)
        );
        if s.ibgp() {
            // iBGP defaults to multihop in BIRD; the peer is on our segment.
            c.push_str("  direct;\n");
        }
        c.push_str(SHORT_TIMERS);
        if let Some(pw) = &s.password {
            let _ = writeln!(c, "  password \"{pw}\";");
        }
        if s.ttl_security {
            c.push_str("  ttl security on;\n");
        }
        let _ = writeln!(c, "  ipv4 {{ import all; export where source = RTS_STATIC; next hop address {}; gateway direct; }};", s.local_v4);
        if let Some(v6) = s.local_v6 {
            let _ = writeln!(c, "  ipv6 {{ import all; export where source = RTS_STATIC; next hop address {v6}; gateway direct; }};");
        }
        c.push_str("}\n");
        c
    }

    /// Changes the session's TCP MD5 password (`None`: none) and has BIRD
    /// load it (`birdc configure`; BIRD restarts the session).
    pub fn set_password(&mut self, password: Option<&str>) -> io::Result<()> {
        self.spec.password = password.map(str::to_string);
        self.reconfigure()
    }

    /// `birdc show protocols all peer`: the session's state, timers,
    /// the capabilities both sides sent, and the last error.
    pub fn protocol_details(&self) -> String {
        self.birdc(&["show", "protocols", "all", "peer"])
            .unwrap_or_default()
    }

    /// `birdc show route all protocol peer`: the routes received from the
    /// peer with every attribute (next hop, AS path, communities).
    pub fn routes_all(&self) -> String {
        self.birdc(&["show", "route", "all", "protocol", "peer"])
            .unwrap_or_default()
    }

    fn reconfigure(&self) -> io::Result<()> {
        self.proc.reconfigure(&self.config())
    }

    /// The BIRD log so far (for failure messages).
    pub fn log(&self) -> String {
        self.proc.log()
    }
}

impl BgpDaemon for Bird {
    fn kind(&self) -> &'static str {
        "bird"
    }

    fn established(&self) -> bool {
        self.proc.established("peer")
    }

    fn received(&self) -> Vec<String> {
        self.proc.received("peer")
    }

    fn announce(&mut self, prefix: &str) -> io::Result<()> {
        self.spec.originate.push(prefix.to_string());
        self.reconfigure()
    }

    fn withdraw(&mut self, prefix: &str) -> io::Result<()> {
        self.spec.originate.retain(|p| p != prefix);
        self.reconfigure()
    }

    fn stop(&mut self) {
        self.proc.stop();
    }

    fn start(&mut self) -> io::Result<()> {
        let config = self.config();
        self.proc.launch(&config)
    }
}

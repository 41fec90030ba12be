//! BIRD 2 in a namespace: `bird -c CONF -s CTL -P PIDFILE`, queried with `birdc -s CTL`.

use super::{check, wait_for, BgpDaemon, BgpDaemonSpec};
use crate::process::kill_pidfile;
use crate::Netns;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::process::Command;

/// A BIRD 2 process with one BGP protocol named `peer`.
#[derive(Debug)]
pub struct Bird {
    ns: String,
    spec: BgpDaemonSpec,
    dir: tempfile::TempDir,
    running: bool,
}

impl Bird {
    /// Writes the config and starts BIRD inside `ns`; returns once its control socket answers.
    pub fn start(ns: &Netns, spec: BgpDaemonSpec) -> io::Result<Self> {
        let mut b = Self {
            ns: ns.name().to_string(),
            spec,
            dir: tempfile::tempdir()?,
            running: false,
        };
        BgpDaemon::start(&mut b)?;
        Ok(b)
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

    /// The config text BIRD runs with.
    pub fn config(&self) -> String {
        let s = &self.spec;
        let mut c = String::new();
        let _ = writeln!(c, "log \"{}/bird.log\" all;", self.dir.path().display());
        let _ = writeln!(c, "router id {};", s.router_id);
        c.push_str("protocol device { scan time 1; }\n");
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
        // Short timers: BIRD's defaults (connect retry 120 s, error wait
        // 60-300 s) would stall a test for minutes.
        if s.ibgp() {
            // iBGP defaults to multihop in BIRD; the peer is on our segment.
            c.push_str("  direct;\n");
        }
        c.push_str("  connect delay time 1; connect retry time 1;\n");
        c.push_str("  error wait time 1, 4; error forget time 10;\n");
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

    fn reconfigure(&self) -> io::Result<()> {
        std::fs::write(self.dir.path().join("bird.conf"), self.config())?;
        let out = self.birdc(&["configure"])?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(io::Error::other(format!("birdc configure: {out}")))
        }
    }

    /// The BIRD log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default()
    }
}

impl BgpDaemon for Bird {
    fn kind(&self) -> &'static str {
        "bird"
    }

    fn established(&self) -> bool {
        self.birdc(&["show", "protocols", "peer"])
            .map(|o| o.contains("Established"))
            .unwrap_or(false)
    }

    fn received(&self) -> Vec<String> {
        let out = self
            .birdc(&["show", "route", "protocol", "peer"])
            .unwrap_or_default();
        out.lines()
            .filter(|l| !l.starts_with(char::is_whitespace))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|t| t.contains('/'))
            .map(str::to_string)
            .collect()
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
        kill_pidfile(&self.pidfile());
        let _ = std::fs::remove_file(self.pidfile());
        self.running = false;
    }

    fn start(&mut self) -> io::Result<()> {
        let conf = self.dir.path().join("bird.conf");
        std::fs::write(&conf, self.config())?;
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
}

impl Drop for Bird {
    fn drop(&mut self) {
        if self.running {
            self.stop();
        }
    }
}

//! GoBGP 3 in a namespace: `gobgpd -f CONF.toml`, driven with the `gobgp`
//! CLI over its gRPC port on the namespace's loopback.

use super::{check, wait_for, BgpDaemon, BgpDaemonSpec};
use crate::process::ChildGuard;
use crate::Netns;
use std::fmt::Write as _;
use std::io;
use std::process::{Command, Stdio};

const API: &str = "127.0.0.1:50051";

/// A gobgpd process with one neighbor.
#[derive(Debug)]
pub struct Gobgp {
    ns: String,
    spec: BgpDaemonSpec,
    dir: tempfile::TempDir,
    child: Option<ChildGuard>,
}

impl Gobgp {
    /// Writes the config, starts gobgpd inside `ns` and originates the spec's prefixes.
    pub fn start(ns: &Netns, spec: BgpDaemonSpec) -> io::Result<Self> {
        let mut g = Self {
            ns: ns.name().to_string(),
            spec,
            dir: tempfile::tempdir()?,
            child: None,
        };
        BgpDaemon::start(&mut g)?;
        Ok(g)
    }

    /// `gobgp <args>` inside the namespace.
    pub fn gobgp(&self, args: &[&str]) -> io::Result<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "gobgp",
                "-u",
                "127.0.0.1",
                "-p",
                "50051",
            ])
            .args(args)
            .output()?;
        check(out, "gobgp")
    }

    /// The gobgpd.toml text.
    pub fn config(&self) -> String {
        let s = &self.spec;
        let mut c = String::new();
        let _ = writeln!(
            c,
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = {}\n  local-address-list = [\"{}\"]",
            s.local_as, s.router_id, s.listen_port, s.local_addr
        );
        let _ = writeln!(
            c,
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
            s.peer_addr, s.peer_as
        );
        if let Some(pw) = &s.password {
            let _ = writeln!(c, "    auth-password = \"{pw}\"");
        }
        let _ = writeln!(
            c,
            "  [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = {}\n    keepalive-interval = {}\n    idle-hold-time-after-reset = 1",
            s.hold_time,
            (s.hold_time / 3).max(1)
        );
        let _ = writeln!(
            c,
            "  [neighbors.transport.config]\n    remote-port = {}\n    local-address = \"{}\"",
            s.peer_port, s.local_addr
        );
        if s.ttl_security {
            c.push_str(
                "  [neighbors.ttl-security.config]\n    enabled = true\n    ttl-min = 255\n",
            );
        }
        let mut fams = vec!["ipv4-unicast"];
        if s.local_v6.is_some() {
            fams.push("ipv6-unicast");
        }
        for f in fams {
            let _ = writeln!(
                c,
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\""
            );
        }
        c
    }

    fn rib(&self, op: &str, prefix: &str) -> io::Result<()> {
        let mut args = vec!["global", "rib", op];
        let nh;
        if prefix.contains(':') {
            args.extend(["-a", "ipv6", prefix]);
            if op == "add" {
                nh = self
                    .spec
                    .local_v6
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                args.extend(["nexthop", &nh]);
            }
        } else {
            args.extend(["-a", "ipv4", prefix]);
        }
        self.gobgp(&args).map(|_| ())
    }
}

impl BgpDaemon for Gobgp {
    fn kind(&self) -> &'static str {
        "gobgp"
    }

    fn established(&self) -> bool {
        self.gobgp(&["neighbor", &self.spec.peer_addr.to_string()])
            .map(|o| o.to_ascii_lowercase().contains("bgp state = established"))
            .unwrap_or(false)
    }

    fn received(&self) -> Vec<String> {
        let mut v = Vec::new();
        let peer = self.spec.peer_addr.to_string();
        for af in ["ipv4", "ipv6"] {
            let out = self
                .gobgp(&["neighbor", &peer, "adj-in", "-a", af])
                .unwrap_or_default();
            for l in out.lines() {
                // "   0 10.1.0.0/24   10.0.0.2   65001   00:00:01   [{Origin: i}]"
                if let Some(t) = l.split_whitespace().find(|t| t.contains('/')) {
                    v.push(t.to_string());
                }
            }
        }
        v
    }

    fn announce(&mut self, prefix: &str) -> io::Result<()> {
        self.spec.originate.push(prefix.to_string());
        self.rib("add", prefix)
    }

    fn withdraw(&mut self, prefix: &str) -> io::Result<()> {
        self.spec.originate.retain(|p| p != prefix);
        self.rib("del", prefix)
    }

    fn stop(&mut self) {
        self.child = None;
    }

    fn start(&mut self) -> io::Result<()> {
        let conf = self.dir.path().join("gobgpd.toml");
        std::fs::write(&conf, self.config())?;
        let log = std::fs::File::create(self.dir.path().join("gobgpd.log"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "gobgpd", "-t", "toml", "-f"])
            .arg(&conf)
            .arg(format!("--api-hosts={API}"))
            .arg("--pprof-disable")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        self.child = Some(ChildGuard::spawn("gobgpd", &mut cmd)?);
        wait_for("gobgpd API", || self.gobgp(&["global"]).is_ok())?;
        for p in self.spec.originate.clone() {
            self.rib("add", &p)?;
        }
        Ok(())
    }
}

impl Gobgp {
    /// The gobgpd log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gobgpd.log")).unwrap_or_default()
    }
}

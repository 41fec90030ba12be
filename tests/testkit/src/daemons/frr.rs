//! FRR 8 in a namespace: `zebra` then `bgpd` with a path space of their
//! own (no watchfrr), queried with `vtysh -N PS`.

use super::{check, open_up, wait_for, BgpDaemon, BgpDaemonSpec};
use crate::process::kill_pidfile;
use crate::Netns;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::process::Command;

/// FRR zebra + bgpd with one neighbor.
#[derive(Debug)]
pub struct Frr {
    ns: String,
    spec: BgpDaemonSpec,
    dir: tempfile::TempDir,
    pathspace: String,
    running: bool,
}

impl Frr {
    /// Writes the config and starts zebra and bgpd inside `ns`.
    pub fn start(ns: &Netns, spec: BgpDaemonSpec) -> io::Result<Self> {
        let mut f = Self {
            ns: ns.name().to_string(),
            pathspace: ns.name().to_string(),
            spec,
            dir: tempfile::tempdir()?,
            running: false,
        };
        BgpDaemon::start(&mut f)?;
        Ok(f)
    }

    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/frr/{}", self.pathspace))
    }

    /// `vtysh -N PS -c <cmd> [-c <cmd>...]` output.
    pub fn vtysh(&self, cmds: &[&str]) -> io::Result<String> {
        let mut c = Command::new("vtysh");
        c.arg("-N")
            .arg(&self.pathspace)
            .arg("--config_dir")
            .arg(self.dir.path());
        for cmd in cmds {
            c.arg("-c").arg(cmd);
        }
        check(c.output()?, "vtysh")
    }

    /// The frr.conf text.
    pub fn config(&self) -> String {
        let s = &self.spec;
        let p = s.peer_addr;
        let mut c = String::from("frr defaults traditional\nhostname frr\n");
        let _ = writeln!(
            c,
            "log file {}/frr.log debugging",
            self.dir.path().display()
        );
        if let Some(v6) = s.local_v6 {
            // IPv6 routes over an IPv4 session need an explicit global next hop.
            let _ = writeln!(
                c,
                "route-map NH6 permit 10\n set ipv6 next-hop global {v6}\nexit"
            );
        }
        let _ = writeln!(c, "router bgp {}", s.local_as);
        let _ = writeln!(c, " bgp router-id {}", s.router_id);
        c.push_str(" no bgp ebgp-requires-policy\n no bgp network import-check\n");
        let _ = writeln!(
            c,
            " timers bgp {} {}",
            (s.hold_time / 3).max(1),
            s.hold_time
        );
        let _ = writeln!(c, " neighbor {p} remote-as {}", s.peer_as);
        let _ = writeln!(c, " neighbor {p} port {}", s.peer_port);
        let _ = writeln!(c, " neighbor {p} update-source {}", s.local_addr);
        let _ = writeln!(c, " neighbor {p} timers connect 1");
        if let Some(pw) = &s.password {
            let _ = writeln!(c, " neighbor {p} password {pw}");
        }
        if s.ttl_security {
            let _ = writeln!(c, " neighbor {p} ttl-security hops 1");
        }
        c.push_str(" address-family ipv4 unicast\n");
        for pfx in s.v4_prefixes() {
            let _ = writeln!(c, "  network {pfx}");
        }
        let _ = writeln!(c, "  neighbor {p} activate");
        if s.ibgp() {
            let _ = writeln!(c, "  neighbor {p} next-hop-self");
        }
        c.push_str(" exit-address-family\n");
        if s.local_v6.is_some() {
            c.push_str(" address-family ipv6 unicast\n");
            for pfx in s.v6_prefixes() {
                let _ = writeln!(c, "  network {pfx}");
            }
            let _ = writeln!(
                c,
                "  neighbor {p} activate\n  neighbor {p} route-map NH6 out"
            );
            c.push_str(" exit-address-family\n");
        }
        c.push_str("exit\n");
        c
    }

    fn network(&self, prefix: &str, no: &str) -> io::Result<()> {
        let af = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.vtysh(&[
            "configure terminal",
            &format!("router bgp {}", self.spec.local_as),
            &format!("address-family {af} unicast"),
            &format!("{no}network {prefix}"),
        ])
        .map(|_| ())
    }

    fn start_daemon(&self, name: &str, extra: &[String]) -> io::Result<()> {
        let bin = format!("/usr/lib/frr/{name}");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, &bin, "-d", "-N", &self.pathspace])
            .arg("-f")
            .arg(self.dir.path().join("frr.conf"))
            .arg("-i")
            .arg(self.dir.path().join(format!("{name}.pid")))
            .args(["-A", "127.0.0.1"])
            .args(extra)
            .output()?;
        check(out, name).map(|_| ())
    }

    /// The bgpd log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("frr.log")).unwrap_or_default()
    }
}

impl BgpDaemon for Frr {
    fn kind(&self) -> &'static str {
        "frr"
    }

    fn established(&self) -> bool {
        let cmd = format!("show bgp neighbors {}", self.spec.peer_addr);
        self.vtysh(&[&cmd])
            .map(|o| o.contains("BGP state = Established"))
            .unwrap_or(false)
    }

    fn received(&self) -> Vec<String> {
        let mut v = Vec::new();
        for af in ["ipv4", "ipv6"] {
            let cmd = format!(
                "show bgp {af} unicast neighbors {} routes",
                self.spec.peer_addr
            );
            let out = self.vtysh(&[&cmd]).unwrap_or_default();
            for l in out.lines() {
                // Route lines: status codes, then the prefix, e.g. "*> 10.1.0.0/24  10.0.0.2 ...".
                if let Some(t) = l
                    .get(3..)
                    .and_then(|r| r.split_whitespace().next())
                    .filter(|t| t.contains('/') && l.starts_with('*'))
                {
                    v.push(t.to_string());
                }
            }
        }
        v
    }

    fn announce(&mut self, prefix: &str) -> io::Result<()> {
        self.spec.originate.push(prefix.to_string());
        self.network(prefix, "")
    }

    fn withdraw(&mut self, prefix: &str) -> io::Result<()> {
        self.spec.originate.retain(|p| p != prefix);
        self.network(prefix, "no ")
    }

    fn stop(&mut self) {
        for d in ["bgpd", "zebra"] {
            kill_pidfile(&self.dir.path().join(format!("{d}.pid")));
        }
        self.running = false;
    }

    fn start(&mut self) -> io::Result<()> {
        let run = self.run_dir();
        std::fs::create_dir_all(&run)?;
        let _ = Command::new("chown").arg("frr:frr").arg(&run).status();
        std::fs::write(self.dir.path().join("frr.conf"), self.config())?;
        let vdir = self.dir.path().join(&self.pathspace);
        std::fs::create_dir_all(&vdir)?;
        std::fs::write(vdir.join("vtysh.conf"), "")?;
        open_up(self.dir.path())?;
        open_up(&vdir)?;
        self.start_daemon("zebra", &[])?;
        let port = self.spec.listen_port.to_string();
        self.start_daemon("bgpd", &["-p".into(), port])?;
        self.running = true;
        wait_for("bgpd to answer vtysh", || {
            self.vtysh(&["show bgp summary"]).is_ok()
        })
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if self.running {
            self.stop();
        }
        let _ = std::fs::remove_dir_all(self.run_dir());
    }
}

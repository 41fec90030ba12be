//! A BIRD 2 with graceful restart on (RFC 4724), for the restarting-speaker
//! tests: testkit's `Bird` has no GR knob. One BGP protocol named `peer`,
//! IPv4 only, started in a namespace and stopped by PID on drop.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// One GR-enabled BIRD.
pub struct GrBird {
    dir: PathBuf,
}

/// The session BIRD runs.
pub struct GrBirdSpec {
    pub ns: String,
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub local: Ipv4Addr,
    pub port: u16,
    pub peer: Ipv4Addr,
    pub peer_port: u16,
    pub peer_as: u32,
    pub originate: Vec<String>,
}

fn config(s: &GrBirdSpec, dir: &std::path::Path) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "log \"{}/bird.log\" all;", dir.display());
    let _ = writeln!(c, "router id {};", s.router_id);
    c.push_str("protocol device { scan time 1; }\nprotocol static s4 { ipv4;\n");
    for p in &s.originate {
        let _ = writeln!(c, "  route {p} blackhole;");
    }
    c.push_str("}\nprotocol bgp peer {\n");
    let _ = writeln!(c, "  local {} port {} as {};", s.local, s.port, s.asn);
    let _ = writeln!(
        c,
        "  neighbor {} port {} as {};",
        s.peer, s.peer_port, s.peer_as
    );
    c.push_str("  hold time 9; keepalive time 3; direct;\n");
    c.push_str("  connect delay time 1; connect retry time 1;\n");
    c.push_str("  error wait time 1, 4; error forget time 10;\n");
    c.push_str("  graceful restart on; graceful restart time 120;\n");
    let _ = writeln!(
        c,
        "  ipv4 {{ import all; export where source = RTS_STATIC; next hop address {}; gateway direct; }};",
        s.local
    );
    c.push_str("}\n");
    c
}

impl GrBird {
    /// Writes the config, starts BIRD in `spec.ns` and waits for its control socket.
    pub fn start(spec: &GrBirdSpec) -> Self {
        let dir = std::env::temp_dir().join(tortie_testkit::unique_prefix("bird"));
        std::fs::create_dir_all(&dir).expect("bird dir");
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, config(spec, &dir)).expect("write bird.conf");
        let b = Self { dir };
        let out = Command::new("ip")
            .args(["netns", "exec", &spec.ns, "bird", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(b.ctl())
            .arg("-P")
            .arg(b.pidfile())
            .output()
            .expect("run bird");
        assert!(out.status.success(), "bird: {out:?}");
        tortie_testkit::wait_until(
            "bird control socket",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || b.birdc(&["show", "status"]).is_some(),
        )
        .expect("bird started");
        b
    }

    fn ctl(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("bird.pid")
    }

    /// `birdc -s CTL <args>` output, `None` on failure.
    pub fn birdc(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.ctl())
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `show protocols all peer`.
    pub fn protocol(&self) -> String {
        self.birdc(&["show", "protocols", "all", "peer"])
            .unwrap_or_default()
    }

    /// Is the session Established?
    pub fn established(&self) -> bool {
        self.birdc(&["show", "protocols", "peer"])
            .is_some_and(|o| o.contains("Established"))
    }

    /// Prefixes BIRD has from the peer.
    pub fn received(&self) -> Vec<String> {
        self.birdc(&["show", "route", "protocol", "peer"])
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with(char::is_whitespace))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|t| t.contains('/'))
            .map(str::to_string)
            .collect()
    }

    /// The BIRD log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }
}

impl Drop for GrBird {
    fn drop(&mut self) {
        tortie_testkit::process::kill_pidfile(&self.pidfile());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

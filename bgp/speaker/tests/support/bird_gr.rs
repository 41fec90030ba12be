//! A BIRD 2 with graceful restart on (RFC 4724), for the restarting-speaker
//! tests: testkit's `Bird` has no GR knob. One BGP protocol named `peer`,
//! IPv4 only, started in a namespace through testkit's [`BirdProcess`] and
//! stopped by PID on drop.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use tortie_testkit::daemons::{BirdProcess, BIRD_SHORT_TIMERS};
use tortie_testkit::Netns;

/// One GR-enabled BIRD.
pub struct GrBird {
    proc: BirdProcess,
}

/// The session BIRD runs.
pub struct GrBirdSpec {
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub local: Ipv4Addr,
    pub port: u16,
    pub peer: Ipv4Addr,
    pub peer_port: u16,
    pub peer_as: u32,
    pub originate: Vec<String>,
}

fn config(s: &GrBirdSpec, head: String) -> String {
    let mut c = head;
    c.push_str("protocol static s4 { ipv4;\n");
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
    c.push_str(BIRD_SHORT_TIMERS);
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
    /// Writes the config, starts BIRD in `ns` and waits for its control socket.
    pub fn start(ns: &Netns, spec: &GrBirdSpec) -> Self {
        let mut proc = BirdProcess::new(ns).expect("bird dir");
        let conf = config(spec, proc.config_head(spec.router_id));
        proc.launch(&conf).expect("bird started");
        Self { proc }
    }

    /// `birdc -s CTL <args>` output, `None` on failure.
    pub fn birdc(&self, args: &[&str]) -> Option<String> {
        self.proc.birdc(args).ok()
    }

    /// `show protocols all peer`.
    pub fn protocol(&self) -> String {
        self.birdc(&["show", "protocols", "all", "peer"])
            .unwrap_or_default()
    }

    /// Is the session Established?
    pub fn established(&self) -> bool {
        self.proc.established("peer")
    }

    /// Prefixes BIRD has from the peer.
    pub fn received(&self) -> Vec<String> {
        self.proc.received("peer")
    }

    /// The BIRD log so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }
}

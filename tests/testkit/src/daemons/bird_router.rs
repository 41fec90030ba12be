//! BIRD 2 with many BGP peers in one namespace, as a lab's route reflector
//! (iBGP, `rr client` per peer, reflecting what it learns) or top-of-rack
//! router (eBGP, learning only). Started as `bird -c CONF -s CTL -P
//! PIDFILE`, queried with `birdc -s CTL`, stopped by PID on drop.
//!
//! Every session is `multihop` (the peers may sit behind a router), so BGP
//! next hops resolve recursively: `protocol direct` covers the namespace's
//! own subnets and [`BirdRouterSpec::static_routes`] the others. Nothing is
//! installed in the kernel (no `protocol kernel`).

use super::bird::SHORT_TIMERS;
use super::BirdProcess;
use crate::Netns;
use std::fmt::Write as _;
use std::io;
use std::net::Ipv4Addr;

/// One BGP peer of a [`BirdRouter`]; its `name` is the BIRD protocol name.
#[derive(Debug, Clone)]
pub struct BirdPeer {
    /// Protocol name: letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// The peer's address (port 179).
    pub addr: Ipv4Addr,
    /// The peer's AS (equal to the local AS: iBGP, and a route-reflector client).
    pub asn: u32,
}

/// What BIRD sends to its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BirdExport {
    /// Nothing (a top-of-rack router that only learns).
    Nothing,
    /// Every route learned over BGP (a route reflector reflects to its
    /// clients, next hops unchanged, RFC 4456).
    LearnedRoutes,
}

/// A BIRD router with many peers.
#[derive(Debug, Clone)]
pub struct BirdRouterSpec {
    /// BGP Identifier (and cluster id when reflecting).
    pub router_id: Ipv4Addr,
    /// Local AS.
    pub local_as: u32,
    /// Local address of every session (port 179).
    pub local_addr: Ipv4Addr,
    /// The peers.
    pub peers: Vec<BirdPeer>,
    /// `(prefix, gateway)`: routes inside BIRD only, so next hops on
    /// subnets behind a router resolve.
    pub static_routes: Vec<(String, Ipv4Addr)>,
    /// What it sends.
    pub export: BirdExport,
    /// Hold time offered (keepalive a third of it).
    pub hold_time: u16,
}

/// One route of BIRD's `master4` table, from `show route all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdRoute {
    /// The prefix, e.g. `10.244.1.0/26`.
    pub prefix: String,
    /// The protocol (peer name) it came from.
    pub protocol: String,
    /// `BGP.next_hop`, when a BGP route.
    pub next_hop: Option<Ipv4Addr>,
    /// `BGP.as_path`.
    pub as_path: Vec<u32>,
    /// Marked `*`: BIRD's best route for the prefix.
    pub best: bool,
}

/// A running BIRD with many peers.
#[derive(Debug)]
pub struct BirdRouter {
    proc: BirdProcess,
    spec: BirdRouterSpec,
}

fn valid_name(n: &str) -> bool {
    n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

impl BirdRouter {
    /// Writes the config and starts BIRD inside `ns`; returns once its
    /// control socket answers.
    pub fn start(ns: &Netns, spec: BirdRouterSpec) -> io::Result<Self> {
        if let Some(p) = spec.peers.iter().find(|p| !valid_name(&p.name)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("peer name {:?}: BIRD protocol names are letters, digits and _, starting with a letter", p.name),
            ));
        }
        let mut b = Self {
            proc: BirdProcess::new(ns)?,
            spec,
        };
        let config = b.config();
        b.proc.launch(&config)?;
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
        c.push_str("protocol direct { ipv4; }\n");
        c.push_str("protocol static { ipv4;\n");
        for (prefix, gw) in &s.static_routes {
            let _ = writeln!(c, "  route {prefix} via {gw};");
        }
        c.push_str("}\n");
        let export = match s.export {
            BirdExport::Nothing => "none",
            BirdExport::LearnedRoutes => "where source = RTS_BGP",
        };
        let _ = writeln!(c, "template bgp peers {{");
        let _ = writeln!(c, "  local {} as {};", s.local_addr, s.local_as);
        let _ = writeln!(
            c,
            "  hold time {}; keepalive time {};",
            s.hold_time,
            (s.hold_time / 3).max(1)
        );
        c.push_str(SHORT_TIMERS);
        c.push_str("  multihop;\n");
        let _ = writeln!(c, "  ipv4 {{ import all; export {export}; }};");
        c.push_str("}\n");
        for p in &s.peers {
            let _ = write!(
                c,
                "protocol bgp {} from peers {{ neighbor {} as {};",
                p.name, p.addr, p.asn
            );
            if p.asn == s.local_as {
                c.push_str(" rr client;");
            }
            c.push_str(" }\n");
        }
        c
    }

    /// Is the session to peer `name` Established?
    pub fn established(&self, name: &str) -> bool {
        self.proc.established(name)
    }

    /// Peers whose session is not Established.
    pub fn down_peers(&self) -> Vec<String> {
        self.spec
            .peers
            .iter()
            .filter(|p| !self.established(&p.name))
            .map(|p| p.name.clone())
            .collect()
    }

    /// Every IPv4 route BIRD holds (`show route all`).
    pub fn routes(&self) -> io::Result<Vec<BirdRoute>> {
        Ok(parse_show_route_all(
            &self.birdc(&["show", "route", "all"])?,
        ))
    }

    /// The BIRD log so far (for failure messages).
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Stops BIRD (by the PID in its pidfile).
    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

/// Starts a route when a line is `PREFIX TYPE [PROTO ...]` (a new prefix)
/// or, indented, `TYPE [PROTO ...]` (another route of the same prefix).
fn route_head(line: &str, prefix: &Option<String>) -> Option<BirdRoute> {
    let indented = line.starts_with(char::is_whitespace);
    let mut words = line.split_whitespace();
    let prefix = if indented {
        prefix.clone()?
    } else {
        let p = words.next()?;
        if !p.contains('/') {
            return None;
        }
        p.to_string()
    };
    let _kind = words.next()?;
    let protocol = words.next()?.strip_prefix('[')?.to_string();
    Some(BirdRoute {
        prefix,
        protocol,
        next_hop: None,
        as_path: Vec::new(),
        best: line.contains("] * ") || line.contains("] *("),
    })
}

/// Parses BIRD 2's `show route all` output.
pub fn parse_show_route_all(text: &str) -> Vec<BirdRoute> {
    let mut out: Vec<BirdRoute> = Vec::new();
    let mut prefix: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("BGP.next_hop:") {
            if let Some(r) = out.last_mut() {
                r.next_hop = v.split_whitespace().next().and_then(|a| a.parse().ok());
            }
        } else if let Some(v) = t.strip_prefix("BGP.as_path:") {
            if let Some(r) = out.last_mut() {
                r.as_path = v
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect();
            }
        } else if let Some(r) = route_head(line, &prefix) {
            prefix = Some(r.prefix.clone());
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW_ROUTE_ALL: &str = "Table master4:
10.244.7.0/26        unicast [node1 12:01:02.345] * (100) [AS64512i]
\tvia 10.0.1.11 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64512
\tBGP.next_hop: 10.0.1.11
\tBGP.local_pref: 100
                     unicast [router 12:01:03.001] (100) [AS64512i]
\tvia 10.0.1.1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64512
\tBGP.next_hop: 10.0.1.1
10.0.2.0/24          unicast [static1 12:00:59.000] * (200)
\tvia 10.0.1.1 on eth0
\tType: static univ
";

    #[test]
    fn show_route_all_gives_every_route_with_its_protocol_and_next_hop() {
        let r = parse_show_route_all(SHOW_ROUTE_ALL);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0].prefix, "10.244.7.0/26");
        assert_eq!(r[0].protocol, "node1");
        assert_eq!(r[0].next_hop, Some(Ipv4Addr::new(10, 0, 1, 11)));
        assert_eq!(r[0].as_path, vec![64512]);
        assert!(r[0].best);
        assert_eq!(r[1].prefix, "10.244.7.0/26");
        assert_eq!(r[1].protocol, "router");
        assert_eq!(r[1].next_hop, Some(Ipv4Addr::new(10, 0, 1, 1)));
        assert!(!r[1].best);
        assert_eq!((r[2].protocol.as_str(), r[2].next_hop), ("static1", None));
    }

    #[test]
    fn the_config_makes_ibgp_peers_reflector_clients_and_ebgp_peers_plain() {
        let spec = BirdRouterSpec {
            router_id: Ipv4Addr::new(10, 0, 1, 250),
            local_as: 64512,
            local_addr: Ipv4Addr::new(10, 0, 1, 250),
            peers: vec![
                BirdPeer {
                    name: "node1".into(),
                    addr: Ipv4Addr::new(10, 0, 1, 11),
                    asn: 64512,
                },
                BirdPeer {
                    name: "tor".into(),
                    addr: Ipv4Addr::new(10, 0, 1, 9),
                    asn: 65000,
                },
            ],
            static_routes: vec![("10.0.2.0/24".into(), Ipv4Addr::new(10, 0, 1, 1))],
            export: BirdExport::LearnedRoutes,
            hold_time: 9,
        };
        let b = BirdRouter {
            proc: BirdProcess::in_ns_named("x").unwrap(),
            spec,
        };
        let c = b.config();
        assert!(
            c.contains("protocol bgp node1 from peers { neighbor 10.0.1.11 as 64512; rr client; }")
        );
        assert!(c.contains("protocol bgp tor from peers { neighbor 10.0.1.9 as 65000; }"));
        assert!(c.contains("route 10.0.2.0/24 via 10.0.1.1;"));
        assert!(c.contains("export where source = RTS_BGP;"));
    }
}

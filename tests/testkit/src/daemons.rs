//! Real BGP daemons (BIRD 2, FRR bgpd, GoBGP) run inside a test's network
//! namespace: configs written to a temp dir, processes stopped by PID on
//! drop, and query helpers over their own CLIs.
//!
//! Each launcher takes one [`BgpDaemonSpec`]: one session from the daemon
//! to one peer (the system under test), IPv4 and optionally IPv6 unicast in
//! that one session, short timers so that tests take seconds.

mod bird;
mod bird_router;
mod frr;
mod gobgp;

pub use bird::{Bird, BirdProcess, SHORT_TIMERS as BIRD_SHORT_TIMERS};
pub use bird_router::{
    parse_show_route_all, BirdExport, BirdPeer, BirdRoute, BirdRouter, BirdRouterSpec,
};
pub use frr::Frr;
pub use gobgp::Gobgp;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Output;

/// One BGP session as the daemon sees it.
#[derive(Debug, Clone)]
pub struct BgpDaemonSpec {
    /// The daemon's BGP Identifier.
    pub router_id: Ipv4Addr,
    /// The daemon's AS.
    pub local_as: u32,
    /// The daemon's address for the session (the TCP transport, IPv4 or IPv6).
    pub local_addr: IpAddr,
    /// The daemon's IPv4 address, the next hop of the IPv4 routes it sends.
    pub local_v4: Ipv4Addr,
    /// The daemon's IPv6 address, the next hop of the IPv6 routes it sends;
    /// `None` = no IPv6 family.
    pub local_v6: Option<Ipv6Addr>,
    /// TCP port the daemon listens on.
    pub listen_port: u16,
    /// The peer's address.
    pub peer_addr: IpAddr,
    /// The peer's TCP port.
    pub peer_port: u16,
    /// The peer's AS.
    pub peer_as: u32,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// Hold time in seconds offered by the daemon.
    pub hold_time: u16,
    /// GTSM (RFC 5082) toward a directly connected peer.
    pub ttl_security: bool,
    /// Prefixes (IPv4 and IPv6) the daemon originates from the start.
    pub originate: Vec<String>,
}

impl BgpDaemonSpec {
    fn v4_prefixes(&self) -> impl Iterator<Item = &String> {
        self.originate.iter().filter(|p| !p.contains(':'))
    }

    fn v6_prefixes(&self) -> impl Iterator<Item = &String> {
        self.originate.iter().filter(|p| p.contains(':'))
    }

    fn ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }
}

/// What every daemon launcher offers to interop tests.
pub trait BgpDaemon: Send {
    /// Short name, e.g. `bird`.
    fn kind(&self) -> &'static str;
    /// Is the session to the peer Established?
    fn established(&self) -> bool;
    /// Prefixes (as text, e.g. `10.1.0.0/24`) the daemon received from the peer.
    fn received(&self) -> Vec<String>;
    /// Starts originating `prefix`.
    fn announce(&mut self, prefix: &str) -> io::Result<()>;
    /// Stops originating `prefix`.
    fn withdraw(&mut self, prefix: &str) -> io::Result<()>;
    /// Stops the daemon (all its processes).
    fn stop(&mut self);
    /// Starts it again with the current config.
    fn start(&mut self) -> io::Result<()>;
}

fn check(out: Output, what: &str) -> io::Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "{what} failed: {} {}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )))
    }
}

/// Makes `dir` and everything in it readable by other users (FRR drops to user `frr`).
fn open_up(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o666))?;
        }
    }
    Ok(())
}

fn wait_for(what: &str, cond: impl FnMut() -> bool) -> io::Result<()> {
    crate::wait_until(
        what,
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(20),
        cond,
    )
    .map(|_| ())
    .map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{unique_prefix, Netns};
    use std::time::Duration;

    fn spec(me: u8, peer: u8, asn: (u32, u32), originate: &[&str]) -> BgpDaemonSpec {
        BgpDaemonSpec {
            router_id: Ipv4Addr::new(10, 77, 0, me),
            local_as: asn.0,
            local_addr: IpAddr::V4(Ipv4Addr::new(10, 77, 0, me)),
            local_v4: Ipv4Addr::new(10, 77, 0, me),
            local_v6: Some(format!("fd77::{me}").parse().unwrap()),
            listen_port: 17900,
            peer_addr: IpAddr::V4(Ipv4Addr::new(10, 77, 0, peer)),
            peer_port: 17900,
            peer_as: asn.1,
            password: Some("s3cret".into()),
            hold_time: 9,
            ttl_security: false,
            originate: originate.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pair() -> (Netns, Netns) {
        let p = unique_prefix("dmn");
        let a = Netns::create(&format!("{p}a")).unwrap();
        let b = Netns::create(&format!("{p}b")).unwrap();
        a.veth_to("eth0", "10.77.0.1/24", &b, "eth0", "10.77.0.2/24")
            .unwrap();
        a.ip(&["addr", "add", "fd77::1/64", "dev", "eth0", "nodad"])
            .unwrap();
        b.ip(&["addr", "add", "fd77::2/64", "dev", "eth0", "nodad"])
            .unwrap();
        (a, b)
    }

    fn converge(x: &dyn BgpDaemon, y: &dyn BgpDaemon, want_x: &[&str], want_y: &[&str]) {
        let r = crate::wait_until(
            "both sessions Established and routes exchanged",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let (rx, ry) = (x.received(), y.received());
                x.established()
                    && y.established()
                    && want_x.iter().all(|p| rx.iter().any(|r| r == p))
                    && want_y.iter().all(|p| ry.iter().any(|r| r == p))
            },
        );
        assert!(
            r.is_ok(),
            "{r:?}: {} got {:?}, {} got {:?}",
            x.kind(),
            x.received(),
            y.kind(),
            y.received()
        );
    }

    #[test]
    #[ignore = "root: runs BIRD and FRR in network namespaces"]
    fn bird_and_frr_launchers_peer_with_md5_and_exchange_v4_and_v6() {
        let (a, b) = pair();
        let bird = Bird::start(
            &a,
            spec(1, 2, (65001, 65002), &["10.1.0.0/24", "fd01::/64"]),
        )
        .unwrap();
        let frr = Frr::start(
            &b,
            spec(2, 1, (65002, 65001), &["10.2.0.0/24", "fd02::/64"]),
        )
        .unwrap();
        converge(
            &bird,
            &frr,
            &["10.2.0.0/24", "fd02::/64"],
            &["10.1.0.0/24", "fd01::/64"],
        );
    }

    #[test]
    #[ignore = "root: runs BIRD and GoBGP in network namespaces"]
    fn bird_and_gobgp_launchers_peer_over_ibgp() {
        let (a, b) = pair();
        let bird = Bird::start(
            &a,
            spec(1, 2, (65001, 65001), &["10.1.0.0/24", "fd01::/64"]),
        )
        .unwrap();
        let gobgp = Gobgp::start(
            &b,
            spec(2, 1, (65001, 65001), &["10.2.0.0/24", "fd02::/64"]),
        )
        .unwrap();
        converge(
            &bird,
            &gobgp,
            &["10.2.0.0/24", "fd02::/64"],
            &["10.1.0.0/24", "fd01::/64"],
        );
    }
}

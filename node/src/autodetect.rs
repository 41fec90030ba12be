//! Node IP autodetection (`--ip-autodetect`, `--ip6-autodetect`), as
//! calico-node's `IP_AUTODETECTION_METHOD` / `IP6_AUTODETECTION_METHOD`: a
//! pure choice over a list of interfaces and their addresses (IPv4 or
//! IPv6), plus a reader of this namespace's real interfaces.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use regex::Regex;

/// One interface and its addresses (with prefix lengths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddrs {
    /// Interface name.
    pub name: String,
    /// Its addresses.
    pub addrs: Vec<IpNet>,
}

/// How to choose the node IP.
#[derive(Debug, Clone)]
pub enum AutodetectMethod {
    /// The first address of the first usable interface.
    FirstFound,
    /// The first address of an interface whose name matches.
    Interface(Regex),
    /// Like first-found, skipping interfaces whose name matches.
    SkipInterface(Regex),
    /// The first address inside one of these CIDRs.
    Cidr(Vec<IpNet>),
    /// The address the kernel would use as source towards this IP.
    CanReach(IpAddr),
}

/// A method that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("--ip-autodetect: {value:?} is invalid: {why} (valid: first-found, interface=REGEX, skip-interface=REGEX, cidr=CIDR[,CIDR], can-reach=IP)")]
pub struct MethodError {
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

impl FromStr for AutodetectMethod {
    type Err = MethodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: String| MethodError {
            value: s.to_string(),
            why,
        };
        let regex = |r: &str| Regex::new(r).map_err(|e| err(format!("bad regex: {e}")));
        if s == "first-found" {
            return Ok(Self::FirstFound);
        }
        let Some((k, v)) = s.split_once('=') else {
            return Err(err("unknown method".into()));
        };
        match k {
            "interface" => Ok(Self::Interface(regex(v)?)),
            "skip-interface" => Ok(Self::SkipInterface(regex(v)?)),
            "cidr" => v
                .split(',')
                .map(|c| c.trim().parse::<IpNet>())
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Cidr)
                .map_err(|e| err(format!("bad CIDR: {e}"))),
            "can-reach" => v
                .parse()
                .map(Self::CanReach)
                .map_err(|e| err(format!("bad IP: {e}"))),
            _ => Err(err("unknown method".into())),
        }
    }
}

/// Interfaces calico-node's first-found never picks.
const EXCLUDED_PREFIXES: &[&str] = &[
    "lo",
    "docker",
    "cbr",
    "cali",
    "tunl",
    "vxlan",
    "virbr",
    "veth",
    "kube-ipvs",
    "cni",
    "flannel",
    "weave",
    "podman",
    "br-",
];

/// Which address family a node address is chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// `spec.bgp.ipv4Address`.
    V4,
    /// `spec.bgp.ipv6Address`.
    V6,
}

/// An address calico-node would take as the node address: not loopback,
/// unspecified, link-local (169.254/16, fe80::/10) or multicast.
fn usable(n: &IpNet, family: IpFamily) -> bool {
    match (n.addr(), family) {
        (IpAddr::V4(a), IpFamily::V4) => {
            !a.is_loopback() && !a.is_link_local() && !a.is_unspecified()
        }
        (IpAddr::V6(a), IpFamily::V6) => {
            let link_local = (a.segments()[0] & 0xffc0) == 0xfe80;
            !a.is_loopback() && !a.is_unspecified() && !a.is_multicast() && !link_local
        }
        _ => false,
    }
}

fn excluded(name: &str) -> bool {
    EXCLUDED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Chooses the IPv4 node address with its prefix length. For `CanReach`,
/// `route_source` is the kernel's source address towards the target.
pub fn choose(
    method: &AutodetectMethod,
    interfaces: &[InterfaceAddrs],
    route_source: Option<IpAddr>,
) -> Option<IpNet> {
    choose_family(IpFamily::V4, method, interfaces, route_source)
}

/// Chooses the node address of `family` with its prefix length.
pub fn choose_family(
    family: IpFamily,
    method: &AutodetectMethod,
    interfaces: &[InterfaceAddrs],
    route_source: Option<IpAddr>,
) -> Option<IpNet> {
    let first = |pick: &dyn Fn(&InterfaceAddrs) -> bool| {
        interfaces
            .iter()
            .filter(|i| pick(i))
            .flat_map(|i| i.addrs.iter())
            .find(|a| usable(a, family))
            .copied()
    };
    match method {
        AutodetectMethod::FirstFound => first(&|i| !excluded(&i.name)),
        AutodetectMethod::Interface(re) => first(&|i| re.is_match(&i.name)),
        AutodetectMethod::SkipInterface(re) => {
            first(&|i| !excluded(&i.name) && !re.is_match(&i.name))
        }
        AutodetectMethod::Cidr(cidrs) => interfaces
            .iter()
            .flat_map(|i| i.addrs.iter())
            .find(|a| usable(a, family) && cidrs.iter().any(|c| c.contains(&a.addr())))
            .copied(),
        AutodetectMethod::CanReach(_) => {
            let src = route_source?;
            interfaces
                .iter()
                .flat_map(|i| i.addrs.iter())
                .find(|a| a.addr() == src && usable(a, family))
                .copied()
        }
    }
}

/// Why the real interfaces could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// `ip` could not be run.
    #[error("cannot run `ip -j addr show`: {0}")]
    Run(#[from] std::io::Error),
    /// Its output did not parse.
    #[error("cannot parse `ip -j addr show` output: {0}")]
    Parse(#[from] serde_json::Error),
}

/// This namespace's interfaces and addresses, in kernel order (via `ip -j`).
pub fn read_interfaces() -> Result<Vec<InterfaceAddrs>, ReadError> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()?;
    parse_ip_json(&out.stdout)
}

/// Parses `ip -j addr show` output.
pub fn parse_ip_json(bytes: &[u8]) -> Result<Vec<InterfaceAddrs>, ReadError> {
    #[derive(serde::Deserialize)]
    struct Link {
        ifname: String,
        #[serde(default)]
        addr_info: Vec<Addr>,
    }
    #[derive(serde::Deserialize)]
    struct Addr {
        local: Option<IpAddr>,
        prefixlen: Option<u8>,
    }
    let links: Vec<Link> = serde_json::from_slice(bytes)?;
    Ok(links
        .into_iter()
        .map(|l| InterfaceAddrs {
            name: l.ifname,
            addrs: l
                .addr_info
                .iter()
                .filter_map(|a| IpNet::new(a.local?, a.prefixlen?).ok())
                .collect(),
        })
        .collect())
}

/// The source address the kernel picks towards `target` (a connected UDP
/// socket sends nothing).
pub fn route_source(target: IpAddr) -> Option<IpAddr> {
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect((target, 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// Detects the node IPv4 address in this namespace with `method`.
pub fn detect(method: &AutodetectMethod) -> Result<Option<IpNet>, ReadError> {
    detect_family(IpFamily::V4, method)
}

/// Detects the node address of `family` in this namespace with `method`.
pub fn detect_family(
    family: IpFamily,
    method: &AutodetectMethod,
) -> Result<Option<IpNet>, ReadError> {
    let interfaces = read_interfaces()?;
    let src = match method {
        AutodetectMethod::CanReach(ip) => route_source(*ip),
        _ => None,
    };
    Ok(choose_family(family, method, &interfaces, src))
}

/// calico-node's `IP6` setting (`--ip6`): no IPv6 node address (the
/// default), autodetect one with `--ip6-autodetect`, or this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ip6Setting {
    /// No IPv6 address is registered.
    None,
    /// Found with the IPv6 autodetection method.
    Autodetect,
    /// Given: an IPv6 address with prefix length.
    Address(IpNet),
}

/// A `--ip6` value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("--ip6: {0:?} is invalid (valid: none, autodetect, or an IPv6 CIDR such as fd00:1::5/64)")]
pub struct Ip6Error(pub String);

impl FromStr for Ip6Setting {
    type Err = Ip6Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "none" => Ok(Self::None),
            "autodetect" => Ok(Self::Autodetect),
            _ => match s.parse::<IpNet>() {
                Ok(n @ IpNet::V6(_)) => Ok(Self::Address(n)),
                _ => Err(Ip6Error(s.to_string())),
            },
        }
    }
}

/// `--node-ip`: an address with its prefix length, or a bare address
/// whose prefix length comes from the interface holding it (as Calico's
/// `IP` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeIpSetting {
    /// Given with its prefix length.
    Cidr(IpNet),
    /// Given bare.
    Bare(IpAddr),
}

/// A `--node-ip` value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("--node-ip: {0:?} is invalid (valid: an address, e.g. 10.0.1.5, or an address with its prefix length, e.g. 10.0.1.5/24)")]
pub struct NodeIpError(pub String);

impl FromStr for NodeIpSetting {
    type Err = NodeIpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(n) = s.parse::<IpNet>() {
            return Ok(Self::Cidr(n));
        }
        s.parse::<IpAddr>()
            .map(Self::Bare)
            .map_err(|_| NodeIpError(s.to_string()))
    }
}

/// A bare `--node-ip` that no interface holds.
#[derive(Debug, thiserror::Error)]
#[error("--node-ip {0}: no interface in this network namespace holds this address, so its prefix length is unknown; give it with the prefix length (e.g. {0}/24) or add the address first")]
pub struct NotLocalError(pub IpAddr);

impl NodeIpSetting {
    /// The address with its prefix length, taken from `ifaces` for a bare one.
    pub fn resolve(self, ifaces: &[InterfaceAddrs]) -> Result<IpNet, NotLocalError> {
        match self {
            Self::Cidr(n) => Ok(n),
            Self::Bare(ip) => ifaces
                .iter()
                .flat_map(|i| &i.addrs)
                .find(|a| a.addr() == ip)
                .copied()
                .ok_or(NotLocalError(ip)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_node_ip_takes_the_prefix_length_of_the_interface_holding_it() {
        let s: NodeIpSetting = "192.168.7.2".parse().unwrap();
        assert_eq!(s.resolve(&ifs()).unwrap().to_string(), "192.168.7.2/24");
        let s: NodeIpSetting = "10.0.1.5/16".parse().unwrap();
        assert_eq!(s.resolve(&ifs()).unwrap().to_string(), "10.0.1.5/16");
        let s: NodeIpSetting = "10.86.0.1".parse().unwrap();
        let e = s.resolve(&ifs()).unwrap_err().to_string();
        assert!(
            e.contains("no interface") && e.contains("10.86.0.1/24"),
            "{e}"
        );
        assert!("10.0.1".parse::<NodeIpSetting>().is_err());
    }

    fn ifs() -> Vec<InterfaceAddrs> {
        let i = |name: &str, addrs: &[&str]| InterfaceAddrs {
            name: name.into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        vec![
            i("lo", &["127.0.0.1/8"]),
            i("docker0", &["172.17.0.1/16"]),
            i("eth0", &["fe80::1/64", "10.0.1.5/24"]),
            i("eth1", &["192.168.7.2/24", "fd00:7::2/64"]),
            i("cali1234", &["169.254.1.1/32"]),
        ]
    }

    fn m(s: &str) -> AutodetectMethod {
        s.parse().unwrap()
    }

    #[test]
    fn first_found_skips_loopback_docker_and_ipv6() {
        assert_eq!(
            choose(&m("first-found"), &ifs(), None),
            Some("10.0.1.5/24".parse().unwrap())
        );
    }

    #[test]
    fn interface_regex_picks_the_matching_interface() {
        assert_eq!(
            choose(&m("interface=eth1"), &ifs(), None),
            Some("192.168.7.2/24".parse().unwrap())
        );
    }

    #[test]
    fn skip_interface_regex_skips_matching_interfaces() {
        assert_eq!(
            choose(&m("skip-interface=eth0"), &ifs(), None),
            Some("192.168.7.2/24".parse().unwrap())
        );
    }

    #[test]
    fn cidr_picks_the_address_inside_one_of_the_cidrs() {
        assert_eq!(
            choose(&m("cidr=10.9.0.0/16,192.168.0.0/16"), &ifs(), None),
            Some("192.168.7.2/24".parse().unwrap())
        );
    }

    #[test]
    fn can_reach_picks_the_route_source_with_its_prefix_length() {
        let src = Some("192.168.7.2".parse().unwrap());
        assert_eq!(
            choose(&m("can-reach=192.168.7.1"), &ifs(), src),
            Some("192.168.7.2/24".parse().unwrap())
        );
        assert_eq!(choose(&m("can-reach=192.168.7.1"), &ifs(), None), None);
    }

    #[test]
    fn ipv6_methods_choose_a_global_ipv6_address_and_skip_link_local() {
        let v6 = |m: &str, src: Option<&str>| {
            choose_family(
                IpFamily::V6,
                &self::m(m),
                &ifs(),
                src.map(|s| s.parse().unwrap()),
            )
            .map(|n| n.to_string())
        };
        // eth0 has only a link-local IPv6 address: first-found goes on to eth1.
        assert_eq!(v6("first-found", None).as_deref(), Some("fd00:7::2/64"));
        assert_eq!(v6("interface=eth0", None), None);
        assert_eq!(v6("cidr=fd00::/8", None).as_deref(), Some("fd00:7::2/64"));
        assert_eq!(v6("cidr=10.0.0.0/8", None), None);
        assert_eq!(
            v6("can-reach=fd00:7::1", Some("fd00:7::2")).as_deref(),
            Some("fd00:7::2/64")
        );
        // The IPv4 choice is unchanged by IPv6 addresses.
        assert_eq!(
            choose(&m("interface=eth1"), &ifs(), None),
            Some("192.168.7.2/24".parse().unwrap())
        );
    }

    #[test]
    fn ip6_setting_parses_like_calico_node() {
        assert_eq!("none".parse::<Ip6Setting>().unwrap(), Ip6Setting::None);
        assert_eq!(
            "autodetect".parse::<Ip6Setting>().unwrap(),
            Ip6Setting::Autodetect
        );
        assert_eq!(
            "fd00:1::5/64".parse::<Ip6Setting>().unwrap(),
            Ip6Setting::Address("fd00:1::5/64".parse().unwrap())
        );
        let e = "10.0.0.1/24".parse::<Ip6Setting>().unwrap_err();
        assert!(e.to_string().contains("autodetect"), "{e}");
    }

    #[test]
    fn bad_methods_name_the_valid_ones() {
        let e = "bogus".parse::<AutodetectMethod>().unwrap_err();
        assert!(e.to_string().contains("first-found"), "{e}");
        assert!("interface=(".parse::<AutodetectMethod>().is_err());
        assert!("cidr=10.0.0.0/33".parse::<AutodetectMethod>().is_err());
    }

    #[test]
    fn ip_json_parses_into_interfaces() {
        let j = br#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
                     {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.0.1.5","prefixlen":24}]}]"#;
        let v = parse_ip_json(j).unwrap();
        assert_eq!(v[1].name, "eth0");
        assert_eq!(v[1].addrs, vec!["10.0.1.5/24".parse::<IpNet>().unwrap()]);
    }
}

//! A typed model of the nftables objects felix's policy table holds —
//! chains of rules, named sets, verdict maps — and their text in `nft -f`
//! syntax. The compiler builds it, the diff compares two of them, the
//! interpreter runs packets through it; only this module writes nft syntax.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use ipnet::IpNet;

/// IP family of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both families.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family of a CIDR.
    pub fn of_net(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    fn payload(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    fn icmp(self) -> &'static str {
        match self {
            Family::V4 => "icmp",
            Family::V6 => "icmpv6",
        }
    }
}

/// Source or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// Source address / port.
    Src,
    /// Destination address / port.
    Dst,
}

impl Dir {
    fn addr(self) -> &'static str {
        match self {
            Dir::Src => "saddr",
            Dir::Dst => "daddr",
        }
    }

    fn port(self) -> &'static str {
        match self {
            Dir::Src => "sport",
            Dir::Dst => "dport",
        }
    }
}

/// Addresses an address match looks up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddrSet {
    /// A named set of the table (selector members).
    Named(String),
    /// CIDRs written into the rule (disjoint, sorted).
    Inline(Vec<IpNet>),
}

/// Connection-tracking states matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtMatch {
    /// `ct state established,related`.
    EstablishedRelated,
    /// `ct state invalid`.
    Invalid,
}

/// Which interface a name match or a verdict map looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Iface {
    /// `iifname`.
    In,
    /// `oifname`.
    Out,
}

impl Iface {
    fn keyword(self) -> &'static str {
        match self {
            Iface::In => "iifname",
            Iface::Out => "oifname",
        }
    }
}

/// One match expression; a rule's matches must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// `meta nfproto ipv4|ipv6`.
    NfProto(Family),
    /// `iifname "NAME"` / `oifname "NAME"` (a trailing `*` is a prefix).
    IfName(Iface, String),
    /// `meta l4proto N` (or `!= N`).
    L4Proto {
        /// IP protocol number.
        proto: u8,
        /// True for `!=`.
        negate: bool,
    },
    /// `icmp type T [icmp code C]`, or negated `icmp type != T` /
    /// `icmp type . icmp code != { T . C }` (`icmpv6` for IPv6).
    Icmp {
        /// ICMP or ICMPv6.
        family: Family,
        /// Type.
        icmp_type: u8,
        /// Code, when matched.
        code: Option<u8>,
        /// True for the negated form.
        negate: bool,
    },
    /// `icmpv6 type { ... }`: one of these types.
    IcmpTypes(Family, Vec<u8>),
    /// `ip saddr @set` / `ip6 daddr != { ... }`.
    Addr {
        /// Address family.
        family: Family,
        /// Source or destination.
        dir: Dir,
        /// The addresses.
        set: AddrSet,
        /// True for `!=`.
        negate: bool,
    },
    /// `th dport { 80, 1000-2000 }` (or `!=`).
    Port {
        /// Source or destination port.
        dir: Dir,
        /// Inclusive ranges, sorted and disjoint.
        ranges: Vec<(u16, u16)>,
        /// True for `!=`.
        negate: bool,
    },
    /// `ip saddr . meta l4proto . th sport @set`: a named port.
    NamedPort {
        /// Address family.
        family: Family,
        /// The endpoint's side.
        dir: Dir,
        /// Named set of `addr . proto . port`.
        set: String,
    },
    /// `meta mark & BITS == 0` (`clear`) or `!= 0`.
    Mark {
        /// The bits tested.
        bits: u32,
        /// True: all clear.
        clear: bool,
    },
    /// `ct state ...`.
    Ct(CtMatch),
}

/// A statement run when the matches hold, before the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stmt {
    /// `meta mark set meta mark | BITS`.
    SetMark(u32),
    /// `meta mark set meta mark & ~BITS`.
    ClearMark(u32),
    /// `log prefix "PREFIX"`.
    Log(String),
}

/// What happens after a rule matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Accept (ends this base chain's evaluation).
    Accept,
    /// Drop.
    Drop,
    /// Back to the calling chain.
    Return,
    /// Call a chain; come back here when it returns.
    Jump(String),
    /// Continue in a chain; its return goes to this chain's caller.
    Goto(String),
}

/// A rule: matches, statements, an optional verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Rule {
    /// All must hold.
    pub matches: Vec<Match>,
    /// Run in order when they do.
    pub stmts: Vec<Stmt>,
    /// Then this verdict (none: go on with the next rule).
    pub verdict: Option<RuleVerdict>,
}

/// A rule's verdict: a fixed one or a verdict-map lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleVerdict {
    /// A fixed verdict.
    Fixed(Verdict),
    /// `iifname vmap @MAP` / `oifname vmap @MAP` (no entry: go on).
    Vmap(Iface, String),
}

impl Rule {
    /// A rule with `matches` and `verdict`.
    pub fn new(matches: Vec<Match>, verdict: Verdict) -> Rule {
        Rule {
            matches,
            stmts: Vec::new(),
            verdict: Some(RuleVerdict::Fixed(verdict)),
        }
    }

    /// The rule's text without its comment.
    pub fn body(&self) -> String {
        let mut parts: Vec<String> = self.matches.iter().map(ToString::to_string).collect();
        parts.extend(self.stmts.iter().map(ToString::to_string));
        match &self.verdict {
            Some(RuleVerdict::Fixed(v)) => parts.push(v.to_string()),
            Some(RuleVerdict::Vmap(i, m)) => parts.push(format!("{} vmap @{m}", i.keyword())),
            None => {}
        }
        if parts.is_empty() {
            // A rule must say something: `continue` does nothing.
            parts.push("continue".into());
        }
        parts.join(" ")
    }

    /// The fingerprint stored as the rule's comment (read back for repair).
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", fnv64(self.body().as_bytes()))
    }

    /// The rule's text with its fingerprint comment.
    pub fn text(&self) -> String {
        let body = self.body();
        let fp = format!("{:016x}", fnv64(body.as_bytes()));
        format!("{body} comment \"{fp}\"")
    }
}

/// FNV-1a, 64 bits: stable names and fingerprints without a dependency.
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A hook a base chain attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// `forward`: routed traffic (pod to pod, pod to outside, outside to pod).
    Forward,
    /// `input`: traffic to the host itself.
    Input,
}

/// A base chain's attachment (type filter, policy accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// The hook.
    pub hook: Hook,
    /// Priority (lower runs first).
    pub priority: i32,
}

/// A chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    /// Set for base chains.
    pub base: Option<BaseChain>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// What a named set holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKind {
    /// Addresses and CIDRs (`flags interval`).
    Addr(Family),
    /// `addr . inet_proto . inet_service` tuples (named ports).
    AddrProtoPort(Family),
}

/// One element of a named set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Elem {
    /// A CIDR (host prefixes print as addresses).
    Net(IpNet),
    /// An endpoint's named port.
    AddrProtoPort(IpAddr, u8, u16),
}

/// A named set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Its type.
    pub kind: SetKind,
    /// Its elements (CIDRs disjoint).
    pub elems: BTreeSet<Elem>,
}

/// Everything in the policy table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Named sets by name.
    pub sets: BTreeMap<String, Set>,
    /// Verdict maps (interface name → verdict) by name.
    pub maps: BTreeMap<String, BTreeMap<String, Verdict>>,
}

fn ranges_text(ranges: &[(u16, u16)]) -> String {
    let items: Vec<String> = ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// An address or prefix as nft writes it (host prefixes bare).
pub fn net_text(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = |n: bool| if n { "!= " } else { "" };
        match self {
            Match::NfProto(Family::V4) => f.write_str("meta nfproto ipv4"),
            Match::NfProto(Family::V6) => f.write_str("meta nfproto ipv6"),
            Match::IfName(i, name) => write!(f, "{} \"{name}\"", i.keyword()),
            Match::L4Proto { proto, negate } => write!(f, "meta l4proto {}{proto}", neg(*negate)),
            Match::Icmp {
                family,
                icmp_type,
                code,
                negate,
            } => {
                let k = family.icmp();
                match (code, negate) {
                    (None, n) => write!(f, "{k} type {}{icmp_type}", neg(*n)),
                    (Some(c), false) => write!(f, "{k} type {icmp_type} {k} code {c}"),
                    (Some(c), true) => write!(f, "{k} type . {k} code != {{ {icmp_type} . {c} }}"),
                }
            }
            Match::IcmpTypes(family, types) => {
                let t: Vec<String> = types.iter().map(ToString::to_string).collect();
                write!(f, "{} type {{ {} }}", family.icmp(), t.join(", "))
            }
            Match::Addr {
                family,
                dir,
                set,
                negate,
            } => {
                write!(f, "{} {} {}", family.payload(), dir.addr(), neg(*negate))?;
                match set {
                    AddrSet::Named(n) => write!(f, "@{n}"),
                    AddrSet::Inline(nets) => {
                        let items: Vec<String> = nets.iter().map(net_text).collect();
                        write!(f, "{{ {} }}", items.join(", "))
                    }
                }
            }
            Match::Port {
                dir,
                ranges,
                negate,
            } => {
                write!(
                    f,
                    "th {} {}{}",
                    dir.port(),
                    neg(*negate),
                    ranges_text(ranges)
                )
            }
            Match::NamedPort { family, dir, set } => write!(
                f,
                "{} {} . meta l4proto . th {} @{set}",
                family.payload(),
                dir.addr(),
                dir.port()
            ),
            Match::Mark { bits, clear: true } => write!(f, "meta mark & {bits:#010x} == 0"),
            Match::Mark { bits, clear: false } => write!(f, "meta mark & {bits:#010x} != 0"),
            Match::Ct(CtMatch::EstablishedRelated) => f.write_str("ct state established,related"),
            Match::Ct(CtMatch::Invalid) => f.write_str("ct state invalid"),
        }
    }
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::SetMark(b) => write!(f, "meta mark set meta mark | {b:#010x}"),
            Stmt::ClearMark(b) => write!(f, "meta mark set meta mark & {:#010x}", !b),
            Stmt::Log(p) => write!(f, "log prefix \"{p}\""),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
        }
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Net(n) => f.write_str(&net_text(n)),
            Elem::AddrProtoPort(a, p, port) => write!(f, "{a} . {p} . {port}"),
        }
    }
}

impl SetKind {
    /// The `{ type ...; flags ...; }` body of `add set`.
    pub fn decl(self) -> String {
        match self {
            SetKind::Addr(fam) => format!("{{ type {}; flags interval; }}", fam.addr_type()),
            SetKind::AddrProtoPort(fam) => {
                format!(
                    "{{ type {} . inet_proto . inet_service; }}",
                    fam.addr_type()
                )
            }
        }
    }
}

/// The `nft -f` commands that create `rs` in table `inet TABLE`, assuming
/// the table is empty: chains first (rules may jump to any), then sets and
/// maps, then rules, then map elements.
pub fn create_commands(table: &str, rs: &Ruleset, out: &mut String) {
    for (name, chain) in &rs.chains {
        add_chain(table, name, chain, out);
    }
    for (name, set) in &rs.sets {
        add_set(table, name, set, out);
    }
    for name in rs.maps.keys() {
        add_map(table, name, out);
    }
    for (name, chain) in &rs.chains {
        add_rules(table, name, &chain.rules, out);
    }
    for (name, elems) in &rs.maps {
        let items: Vec<(&String, &Verdict)> = elems.iter().collect();
        add_map_elems(table, name, &items, out);
    }
}

/// `add chain` (with its hook for base chains).
pub fn add_chain(table: &str, name: &str, chain: &Chain, out: &mut String) {
    match chain.base {
        Some(b) => {
            let hook = match b.hook {
                Hook::Forward => "forward",
                Hook::Input => "input",
            };
            let _ = writeln!(
                out,
                "add chain inet {table} {name} {{ type filter hook {hook} priority {}; policy accept; }}",
                b.priority
            );
        }
        None => {
            let _ = writeln!(out, "add chain inet {table} {name}");
        }
    }
}

/// `add rule` for each rule.
pub fn add_rules(table: &str, chain: &str, rules: &[Rule], out: &mut String) {
    for r in rules {
        let _ = writeln!(out, "add rule inet {table} {chain} {}", r.text());
    }
}

/// `add set` with its elements.
pub fn add_set(table: &str, name: &str, set: &Set, out: &mut String) {
    let _ = writeln!(out, "add set inet {table} {name} {}", set.kind.decl());
    let elems: Vec<&Elem> = set.elems.iter().collect();
    set_elems("add", table, name, &elems, out);
}

/// `add element` / `delete element` in chunks.
pub fn set_elems(verb: &str, table: &str, name: &str, elems: &[&Elem], out: &mut String) {
    for chunk in elems.chunks(500) {
        let items: Vec<String> = chunk.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "{verb} element inet {table} {name} {{ {} }}",
            items.join(", ")
        );
    }
}

/// `add map` of interface names to verdicts.
pub fn add_map(table: &str, name: &str, out: &mut String) {
    let _ = writeln!(
        out,
        "add map inet {table} {name} {{ type ifname : verdict; }}"
    );
}

/// `add element` for map entries.
pub fn add_map_elems(table: &str, name: &str, elems: &[(&String, &Verdict)], out: &mut String) {
    for chunk in elems.chunks(500) {
        let items: Vec<String> = chunk
            .iter()
            .map(|(k, v)| format!("\"{k}\" : {v}"))
            .collect();
        let _ = writeln!(
            out,
            "add element inet {table} {name} {{ {} }}",
            items.join(", ")
        );
    }
}

/// `delete element` for map keys.
pub fn delete_map_elems(table: &str, name: &str, keys: &[&String], out: &mut String) {
    for chunk in keys.chunks(500) {
        let items: Vec<String> = chunk.iter().map(|k| format!("\"{k}\"")).collect();
        let _ = writeln!(
            out,
            "delete element inet {table} {name} {{ {} }}",
            items.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_render_in_nft_syntax() {
        let r = Rule {
            matches: vec![
                Match::L4Proto {
                    proto: 6,
                    negate: false,
                },
                Match::Port {
                    dir: Dir::Dst,
                    ranges: vec![(80, 80), (8000, 8100)],
                    negate: false,
                },
                Match::Addr {
                    family: Family::V4,
                    dir: Dir::Src,
                    set: AddrSet::Inline(vec![
                        "10.0.0.0/8".parse().unwrap(),
                        "192.0.2.1/32".parse().unwrap(),
                    ]),
                    negate: true,
                },
                Match::Icmp {
                    family: Family::V6,
                    icmp_type: 128,
                    code: Some(0),
                    negate: true,
                },
                Match::Mark {
                    bits: 0x2_0000,
                    clear: true,
                },
            ],
            stmts: vec![Stmt::ClearMark(0x2_0000), Stmt::Log("tortie: ".into())],
            verdict: Some(RuleVerdict::Fixed(Verdict::Jump("pi-a".into()))),
        };
        assert_eq!(
            r.body(),
            "meta l4proto 6 th dport { 80, 8000-8100 } ip saddr != { 10.0.0.0/8, 192.0.2.1 } \
             icmpv6 type . icmpv6 code != { 128 . 0 } meta mark & 0x00020000 == 0 \
             meta mark set meta mark & 0xfffdffff log prefix \"tortie: \" jump pi-a"
        );
        assert!(r
            .text()
            .ends_with(&format!("comment \"{}\"", r.fingerprint())));
    }
}

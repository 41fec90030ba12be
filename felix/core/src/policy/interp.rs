//! A small interpreter of the typed nft model: runs one packet through the
//! base chains of a hook the way the kernel does (priority order, jump /
//! goto / return, verdict maps, set lookups, mark bits). Tests use it to
//! check the compiled table against the policy semantics; `tortiectl` can
//! use it to explain a verdict.

use std::net::IpAddr;

use super::nft::{
    AddrSet, CtMatch, Dir, Elem, Family, Hook, Iface, Match, Rule, RuleVerdict, Ruleset, Stmt,
    Verdict,
};

/// Connection-tracking state of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    /// First packet of a connection.
    New,
    /// Part of an accepted connection.
    Established,
    /// Related to one (ICMP errors, FTP data).
    Related,
    /// Conntrack could not classify it.
    Invalid,
}

/// The packet fields policy looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (protocols with ports).
    pub sport: u16,
    /// Destination port (protocols with ports).
    pub dport: u16,
    /// ICMP type (ICMP / ICMPv6).
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
    /// Input interface (empty: none).
    pub iif: String,
    /// Output interface (empty: none, e.g. at the input hook).
    pub oif: String,
    /// Conntrack state.
    pub ct: CtState,
    /// Packet mark.
    pub mark: u32,
}

impl Packet {
    /// A new TCP connection `src:sport → dst:dport` from `iif` to `oif`.
    pub fn tcp(src: IpAddr, dst: IpAddr, dport: u16, iif: &str, oif: &str) -> Packet {
        Packet {
            src,
            dst,
            proto: 6,
            sport: 40000,
            dport,
            icmp_type: 0,
            icmp_code: 0,
            iif: iif.into(),
            oif: oif.into(),
            ct: CtState::New,
            mark: 0,
        }
    }

    fn family(&self) -> Family {
        Family::of(&self.src)
    }

    fn has_ports(&self) -> bool {
        matches!(self.proto, 6 | 17 | 132 | 136)
    }

    fn addr(&self, d: Dir) -> IpAddr {
        match d {
            Dir::Src => self.src,
            Dir::Dst => self.dst,
        }
    }

    fn port(&self, d: Dir) -> u16 {
        match d {
            Dir::Src => self.sport,
            Dir::Dst => self.dport,
        }
    }

    fn iface(&self, i: Iface) -> &str {
        match i {
            Iface::In => &self.iif,
            Iface::Out => &self.oif,
        }
    }
}

/// The end of a packet's trip through a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// True if every base chain let it pass.
    pub accepted: bool,
    /// How many `log` statements ran.
    pub logs: usize,
    /// The mark when it left.
    pub mark: u32,
}

/// The table refers to something it lacks (a bug in the compiler).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    /// A jump to a chain that does not exist.
    #[error("no chain {0}")]
    NoChain(String),
    /// A lookup in a set or map that does not exist.
    #[error("no set or map {0}")]
    NoSet(String),
    /// Jumps nested deeper than the kernel allows.
    #[error("jump stack deeper than 16 at chain {0}")]
    TooDeep(String),
}

fn if_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn proto_of(f: Family) -> u8 {
    match f {
        Family::V4 => 1,
        Family::V6 => 58,
    }
}

fn in_set(rs: &Ruleset, set: &AddrSet, a: IpAddr) -> Result<bool, InterpError> {
    Ok(match set {
        AddrSet::Inline(nets) => nets.iter().any(|n| n.contains(&a)),
        AddrSet::Named(name) => rs
            .sets
            .get(name)
            .ok_or_else(|| InterpError::NoSet(name.clone()))?
            .elems
            .iter()
            .any(|e| matches!(e, Elem::Net(n) if n.contains(&a))),
    })
}

fn matches(rs: &Ruleset, m: &Match, p: &Packet) -> Result<bool, InterpError> {
    Ok(match m {
        Match::NfProto(f) => p.family() == *f,
        Match::IfName(i, pattern) => if_matches(pattern, p.iface(*i)),
        Match::L4Proto { proto, negate } => (p.proto == *proto) != *negate,
        Match::Icmp {
            family,
            icmp_type,
            code,
            negate,
        } => {
            let is = p.family() == *family && p.proto == proto_of(*family);
            let hit = p.icmp_type == *icmp_type && code.is_none_or(|c| p.icmp_code == c);
            let neg_hit = match code {
                None => p.icmp_type != *icmp_type,
                Some(_) => !hit,
            };
            is && if *negate { neg_hit } else { hit }
        }
        Match::IcmpTypes(f, types) => {
            p.family() == *f && p.proto == proto_of(*f) && types.contains(&p.icmp_type)
        }
        Match::Addr {
            family,
            dir,
            set,
            negate,
        } => p.family() == *family && in_set(rs, set, p.addr(*dir))? != *negate,
        Match::Port {
            dir,
            ranges,
            negate,
        } => {
            let v = p.port(*dir);
            p.has_ports() && ranges.iter().any(|(a, b)| (*a..=*b).contains(&v)) != *negate
        }
        Match::NamedPort { family, dir, set } => {
            let s = rs
                .sets
                .get(set)
                .ok_or_else(|| InterpError::NoSet(set.clone()))?;
            let e = Elem::AddrProtoPort(p.addr(*dir), p.proto, p.port(*dir));
            p.family() == *family && p.has_ports() && s.elems.contains(&e)
        }
        Match::Mark { bits, clear } => (p.mark & bits == 0) == *clear,
        Match::Ct(CtMatch::EstablishedRelated) => {
            matches!(p.ct, CtState::Established | CtState::Related)
        }
        Match::Ct(CtMatch::Invalid) => p.ct == CtState::Invalid,
    })
}

/// How one base chain ended.
enum Ended {
    Accept,
    Drop,
    FellThrough,
}

struct Run<'a> {
    rs: &'a Ruleset,
    pkt: Packet,
    logs: usize,
}

impl Run<'_> {
    fn rule_hits(&mut self, r: &Rule) -> Result<bool, InterpError> {
        for m in &r.matches {
            if !matches(self.rs, m, &self.pkt)? {
                return Ok(false);
            }
        }
        for s in &r.stmts {
            match s {
                Stmt::SetMark(b) => self.pkt.mark |= b,
                Stmt::ClearMark(b) => self.pkt.mark &= !b,
                Stmt::Log(_) => self.logs += 1,
            }
        }
        Ok(true)
    }

    /// The verdict a rule's verdict map yields for this packet, if any.
    fn lookup(&self, i: Iface, map: &str) -> Result<Option<Verdict>, InterpError> {
        let m = self
            .rs
            .maps
            .get(map)
            .ok_or_else(|| InterpError::NoSet(map.to_string()))?;
        Ok(m.get(self.pkt.iface(i)).cloned())
    }

    fn chain(&self, name: &str) -> Result<&[Rule], InterpError> {
        self.rs
            .chains
            .get(name)
            .map(|c| c.rules.as_slice())
            .ok_or_else(|| InterpError::NoChain(name.to_string()))
    }

    /// Runs base chain `start` to its end.
    fn base(&mut self, start: &str) -> Result<Ended, InterpError> {
        let mut stack: Vec<(String, usize)> = Vec::new();
        let mut at = (start.to_string(), 0usize);
        loop {
            let rules = self.chain(&at.0)?;
            let Some(rule) = rules.get(at.1).cloned() else {
                match stack.pop() {
                    Some(frame) => at = frame,
                    None => return Ok(Ended::FellThrough),
                }
                continue;
            };
            at.1 += 1;
            if !self.rule_hits(&rule)? {
                continue;
            }
            let verdict = match &rule.verdict {
                None => continue,
                Some(RuleVerdict::Fixed(v)) => v.clone(),
                Some(RuleVerdict::Vmap(i, map)) => match self.lookup(*i, map)? {
                    Some(v) => v,
                    None => continue,
                },
            };
            match verdict {
                Verdict::Accept => return Ok(Ended::Accept),
                Verdict::Drop => return Ok(Ended::Drop),
                Verdict::Return => match stack.pop() {
                    Some(frame) => at = frame,
                    None => return Ok(Ended::FellThrough),
                },
                Verdict::Jump(c) => {
                    if stack.len() >= 16 {
                        return Err(InterpError::TooDeep(c));
                    }
                    stack.push(at);
                    at = (c, 0);
                }
                Verdict::Goto(c) => at = (c, 0),
            }
        }
    }
}

/// Runs `pkt` through every base chain of `hook`, lowest priority first.
pub fn run(rs: &Ruleset, hook: Hook, pkt: &Packet) -> Result<Outcome, InterpError> {
    let mut bases: Vec<(i32, &String)> = rs
        .chains
        .iter()
        .filter_map(|(n, c)| c.base.filter(|b| b.hook == hook).map(|b| (b.priority, n)))
        .collect();
    bases.sort();
    let mut run = Run {
        rs,
        pkt: pkt.clone(),
        logs: 0,
    };
    for (_, name) in bases {
        if let Ended::Drop = run.base(name)? {
            return Ok(Outcome {
                accepted: false,
                logs: run.logs,
                mark: run.pkt.mark,
            });
        }
    }
    Ok(Outcome {
        accepted: true,
        logs: run.logs,
        mark: run.pkt.mark,
    })
}

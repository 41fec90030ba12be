//! Named sets: the addresses of the entities a selector matches (per
//! family, CIDRs merged into disjoint prefixes so that the kernel's interval
//! sets accept them) and the `addr . proto . port` tuples of named ports.
//! A set's name is a hash of what it selects, so a label change changes the
//! set's elements, never the rules that use it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tortie_model::selector::Expr;

use super::nft::{fnv64, Elem, Family, Set, SetKind};
use super::view::Entity;

/// What a set holds, before its members are computed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SetDef {
    /// Addresses of entities matching the selector.
    Selector(String),
    /// Named ports of endpoints matching the selector (`None`: all).
    NamedPorts {
        selector: Option<String>,
        proto: u8,
        names: Vec<String>,
    },
}

impl SetDef {
    fn key(&self) -> String {
        match self {
            SetDef::Selector(s) => format!("sel:{s}"),
            SetDef::NamedPorts {
                selector,
                proto,
                names,
            } => format!(
                "port:{}:{proto}:{}",
                selector.as_deref().unwrap_or("all()"),
                names.join(",")
            ),
        }
    }
}

/// The sets rules refer to, named as they are requested.
#[derive(Debug, Default)]
pub(crate) struct SetRegistry {
    /// `(definition, family)` → set name.
    names: BTreeMap<(SetDef, Family), String>,
    /// Set name → the definition it was given to (collision check).
    taken: BTreeMap<String, (SetDef, Family)>,
    /// Parsed selectors by their text.
    exprs: BTreeMap<String, Expr>,
}

fn family_tag(f: Family) -> char {
    match f {
        Family::V4 => '4',
        Family::V6 => '6',
    }
}

impl SetRegistry {
    fn name_for(&mut self, def: SetDef, family: Family, prefix: &str) -> String {
        if let Some(n) = self.names.get(&(def.clone(), family)) {
            return n.clone();
        }
        let base = format!(
            "{prefix}{}-{:012x}",
            family_tag(family),
            fnv64(def.key().as_bytes()) & 0xffff_ffff_ffff
        );
        let mut name = base.clone();
        let mut n = 1;
        while self.taken.contains_key(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        self.taken.insert(name.clone(), (def.clone(), family));
        self.names.insert((def, family), name.clone());
        name
    }

    /// The set of `family` addresses of entities matching `e`.
    pub(crate) fn selector(&mut self, e: &Expr, family: Family) -> String {
        let text = e.to_string();
        self.exprs.entry(text.clone()).or_insert_with(|| e.clone());
        self.name_for(SetDef::Selector(text), family, "s")
    }

    /// The set of named ports `names` (protocol `proto`) of endpoints
    /// matching `e` (all endpoints for `None`).
    pub(crate) fn named_ports(
        &mut self,
        e: Option<&Expr>,
        proto: u8,
        names: &[String],
        family: Family,
    ) -> String {
        let selector = e.map(|e| {
            let text = e.to_string();
            self.exprs.entry(text.clone()).or_insert_with(|| e.clone());
            text
        });
        let mut names = names.to_vec();
        names.sort();
        names.dedup();
        let def = SetDef::NamedPorts {
            selector,
            proto,
            names,
        };
        self.name_for(def, family, "p")
    }

    /// Every requested set with its members.
    pub(crate) fn finish(self, entities: &[Entity]) -> BTreeMap<String, Set> {
        let mut out = BTreeMap::new();
        for ((def, family), name) in self.names {
            let set = match &def {
                SetDef::Selector(text) => {
                    let e = &self.exprs[text];
                    let nets = entities
                        .iter()
                        .filter(|en| e.matches(&en.labels))
                        .flat_map(|en| en.nets.iter().copied())
                        .filter(|n| Family::of_net(n) == family);
                    Set {
                        kind: SetKind::Addr(family),
                        elems: merge_nets(nets).into_iter().map(Elem::Net).collect(),
                    }
                }
                SetDef::NamedPorts {
                    selector,
                    proto,
                    names,
                } => {
                    let e = selector.as_ref().map(|t| &self.exprs[t]);
                    named_port_set(entities, e, *proto, names, family)
                }
            };
            out.insert(name, set);
        }
        out
    }
}

fn named_port_set(
    entities: &[Entity],
    e: Option<&Expr>,
    proto: u8,
    names: &[String],
    family: Family,
) -> Set {
    let mut elems = BTreeSet::new();
    for en in entities.iter().filter(|en| !en.ports.is_empty()) {
        if !e.is_none_or(|e| e.matches(&en.labels)) {
            continue;
        }
        let addrs: Vec<IpAddr> = en
            .nets
            .iter()
            .map(|n| n.addr())
            .filter(|a| Family::of(a) == family)
            .collect();
        for p in en
            .ports
            .iter()
            .filter(|p| p.proto == proto && names.contains(&p.name))
        {
            for a in &addrs {
                elems.insert(Elem::AddrProtoPort(*a, proto, p.port));
            }
        }
    }
    Set {
        kind: SetKind::AddrProtoPort(family),
        elems,
    }
}

/// `(first, last)` addresses of a CIDR as integers.
fn bounds(n: &IpNet) -> (u128, u128) {
    match n {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// Merges CIDRs of one family into the fewest disjoint prefixes covering
/// exactly their union (sorted).
pub(crate) fn merge_nets(nets: impl IntoIterator<Item = IpNet>) -> Vec<IpNet> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for n in nets {
        match n {
            IpNet::V4(_) => v4.push(bounds(&n)),
            IpNet::V6(_) => v6.push(bounds(&n)),
        }
    }
    let mut out = Vec::new();
    for (ranges, bits) in [(v4, 32u32), (v6, 128u32)] {
        for (lo, hi) in merge_ranges(ranges) {
            split_range(lo, hi, bits, &mut out);
        }
    }
    out
}

/// Sorted, merged (overlapping or adjacent) inclusive ranges.
pub(crate) fn merge_ranges<T: Ord + Copy + Into<u128>>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo.into() <= last.1.into().saturating_add(1) => {
                if hi > last.1 {
                    last.1 = hi;
                }
            }
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// Appends the aligned prefixes covering `lo..=hi` in a `bits`-bit space.
fn split_range(mut lo: u128, hi: u128, bits: u32, out: &mut Vec<IpNet>) {
    loop {
        // Largest block starting at `lo` (aligned) that ends at or before `hi`.
        let mut size_log = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size_log > 0 && block_end(lo, size_log) > hi {
            size_log -= 1;
        }
        let len = (bits - size_log) as u8;
        out.push(make_net(lo, len, bits));
        let end = block_end(lo, size_log);
        if end >= hi {
            return;
        }
        lo = end + 1;
    }
}

fn block_end(lo: u128, size_log: u32) -> u128 {
    if size_log >= 128 {
        u128::MAX
    } else {
        lo + ((1u128 << size_log) - 1)
    }
}

fn make_net(addr: u128, len: u8, bits: u32) -> IpNet {
    if bits == 32 {
        let a = Ipv4Addr::from(addr as u32);
        IpNet::V4(Ipv4Net::new(a, len).expect("prefix length fits"))
    } else {
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), len).expect("prefix length fits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn overlapping_and_adjacent_cidrs_merge_into_disjoint_prefixes() {
        let m = merge_nets(nets(&[
            "10.0.0.0/8",
            "10.1.2.3/32",
            "11.0.0.0/32",
            "11.0.0.1/32",
            "0.0.0.0/0",
            "fd00::1/128",
        ]));
        assert_eq!(m, nets(&["0.0.0.0/0", "fd00::1/128"]));
        let m = merge_nets(nets(&["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"]));
        assert_eq!(m, nets(&["10.0.0.1/32", "10.0.0.2/31"]));
        assert_eq!(merge_nets(nets(&["::/0"])), nets(&["::/0"]));
    }

    proptest! {
        #[test]
        fn merging_keeps_exactly_the_union(
            raw in prop::collection::vec((any::<u8>(), 0u8..=8, 24u8..=32), 0..12),
            probes in prop::collection::vec(any::<u8>(), 32),
        ) {
            let input: Vec<IpNet> = raw
                .iter()
                .map(|(a, b, len)| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 0, *b, *a), *len).unwrap().trunc()))
                .collect();
            let merged = merge_nets(input.clone());
            for w in merged.windows(2) {
                prop_assert!(bounds(&w[0]).1 < bounds(&w[1]).0, "disjoint and sorted: {merged:?}");
            }
            for (i, p) in probes.iter().enumerate() {
                let ip = IpAddr::V4(Ipv4Addr::new(10, 0, (i % 9) as u8, *p));
                prop_assert_eq!(
                    input.iter().any(|n| n.contains(&ip)),
                    merged.iter().any(|n| n.contains(&ip))
                );
            }
        }
    }
}

//! Reading the policy table back (`nft -j list table`) into a summary that
//! can be compared with the desired content: chains with their hooks and
//! the fingerprint comment of each rule, set elements as address ranges or
//! named-port tuples, verdict-map entries. Equal summaries mean the kernel
//! holds what was applied; anything else (a flushed, edited or deleted
//! table) is drift to repair.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use tortie_felix::policy::nft::{Elem, Hook, Ruleset, Verdict};

/// One chain as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainSummary {
    /// `(hook, priority)` of a base chain.
    pub base: Option<(String, i64)>,
    /// The comment of each rule, in order (our fingerprints).
    pub comments: Vec<String>,
}

/// One set element, in a form both sides render alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ElemSummary {
    /// An inclusive address range (family tag 4 or 6).
    Range(u8, u128, u128),
    /// A named-port tuple.
    Tuple(IpAddr, u8, u16),
}

/// The comparable content of the policy table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Chains by name.
    pub chains: BTreeMap<String, ChainSummary>,
    /// Set elements by set name (ranges merged).
    pub sets: BTreeMap<String, BTreeSet<ElemSummary>>,
    /// Map entries by map name: key → verdict text.
    pub maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// The listing could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading back the policy table: {0}")]
pub struct ReadbackError(pub String);

fn range_of(n: &IpNet) -> ElemSummary {
    match n {
        IpNet::V4(n) => ElemSummary::Range(
            4,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => ElemSummary::Range(6, u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// Merges adjacent and overlapping ranges so that any split compares equal.
fn normalize(elems: BTreeSet<ElemSummary>) -> BTreeSet<ElemSummary> {
    let mut out = BTreeSet::new();
    let mut cur: Option<(u8, u128, u128)> = None;
    for e in elems {
        match e {
            ElemSummary::Range(f, lo, hi) => match cur {
                Some((cf, clo, chi)) if cf == f && lo <= chi.saturating_add(1) => {
                    cur = Some((cf, clo, chi.max(hi)));
                }
                Some((cf, clo, chi)) => {
                    out.insert(ElemSummary::Range(cf, clo, chi));
                    cur = Some((f, lo, hi));
                }
                None => cur = Some((f, lo, hi)),
            },
            t @ ElemSummary::Tuple(..) => {
                out.insert(t);
            }
        }
    }
    if let Some((f, lo, hi)) = cur {
        out.insert(ElemSummary::Range(f, lo, hi));
    }
    out
}

fn verdict_text(v: &Verdict) -> String {
    v.to_string()
}

/// The summary of what `rs` puts into the kernel.
pub fn summarize(rs: &Ruleset) -> Summary {
    let chains = rs
        .chains
        .iter()
        .map(|(n, c)| {
            let base = c.base.map(|b| {
                let hook = match b.hook {
                    Hook::Forward => "forward",
                    Hook::Input => "input",
                };
                (hook.to_string(), i64::from(b.priority))
            });
            let comments = c.rules.iter().map(|r| r.fingerprint()).collect();
            (n.clone(), ChainSummary { base, comments })
        })
        .collect();
    let sets = rs
        .sets
        .iter()
        .map(|(n, s)| {
            let elems = s
                .elems
                .iter()
                .map(|e| match e {
                    Elem::Net(net) => range_of(net),
                    Elem::AddrProtoPort(a, p, port) => ElemSummary::Tuple(*a, *p, *port),
                })
                .collect();
            (n.clone(), normalize(elems))
        })
        .collect();
    let maps = rs
        .maps
        .iter()
        .map(|(n, m)| {
            (
                n.clone(),
                m.iter()
                    .map(|(k, v)| (k.clone(), verdict_text(v)))
                    .collect(),
            )
        })
        .collect();
    Summary { chains, sets, maps }
}

fn err(what: impl Into<String>) -> ReadbackError {
    ReadbackError(what.into())
}

fn addr(v: &Value) -> Result<IpAddr, ReadbackError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(format!("not an address: {v}")))
}

/// Protocol numbers nft prints by name.
fn proto(v: &Value) -> Result<u8, ReadbackError> {
    if let Some(n) = v.as_u64() {
        return u8::try_from(n).map_err(|_| err(format!("protocol {n}")));
    }
    let names = [
        ("tcp", 6),
        ("udp", 17),
        ("sctp", 132),
        ("udplite", 136),
        ("icmp", 1),
        ("ipv6-icmp", 58),
    ];
    let s = v.as_str().unwrap_or_default();
    names
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, p)| *p)
        .or_else(|| s.parse().ok())
        .ok_or_else(|| err(format!("protocol {v}")))
}

fn elem(v: &Value) -> Result<ElemSummary, ReadbackError> {
    if let Some(inner) = v.get("elem").and_then(|e| e.get("val")) {
        return elem(inner);
    }
    if let Some(c) = v.get("concat").and_then(Value::as_array) {
        let [a, p, port] = c.as_slice() else {
            return Err(err(format!("concatenation {v}")));
        };
        let port = port.as_u64().and_then(|n| u16::try_from(n).ok());
        return Ok(ElemSummary::Tuple(
            addr(a)?,
            proto(p)?,
            port.ok_or_else(|| err(format!("port in {v}")))?,
        ));
    }
    if let Some(p) = v.get("prefix") {
        let a = addr(&p["addr"])?;
        let len = p["len"].as_u64().and_then(|l| u8::try_from(l).ok());
        let net = len
            .and_then(|l| IpNet::new(a, l).ok())
            .ok_or_else(|| err(format!("prefix {v}")))?;
        return Ok(range_of(&net));
    }
    if let Some(r) = v.get("range").and_then(Value::as_array) {
        let [lo, hi] = r.as_slice() else {
            return Err(err(format!("range {v}")));
        };
        let (lo, hi) = (
            range_of(&IpNet::from(addr(lo)?)),
            range_of(&IpNet::from(addr(hi)?)),
        );
        return match (lo, hi) {
            (ElemSummary::Range(f, a, _), ElemSummary::Range(_, _, b)) => {
                Ok(ElemSummary::Range(f, a, b))
            }
            _ => Err(err(format!("range {v}"))),
        };
    }
    Ok(range_of(&IpNet::from(addr(v)?)))
}

fn map_verdict(v: &Value) -> String {
    for (k, f) in [("goto", "goto"), ("jump", "jump")] {
        if let Some(t) = v
            .get(k)
            .and_then(|x| x.get("target"))
            .and_then(Value::as_str)
        {
            return format!("{f} {t}");
        }
    }
    v.to_string()
}

impl Summary {
    /// The parts a rule dump can see: chains that hold rules, without
    /// their hooks (sets and maps kept).
    pub fn rules_view(&self) -> Summary {
        Summary {
            chains: self
                .chains
                .iter()
                .filter(|(_, c)| !c.comments.is_empty())
                .map(|(n, c)| {
                    let view = ChainSummary {
                        base: None,
                        comments: c.comments.clone(),
                    };
                    (n.clone(), view)
                })
                .collect(),
            sets: self.sets.clone(),
            maps: self.maps.clone(),
        }
    }
}

/// The quick view: rule comments from a kernel dump, sets and maps of
/// `table` from `nft -j list sets|maps` output.
pub fn quick_view(
    rules: BTreeMap<String, Vec<String>>,
    sets_json: &[u8],
    maps_json: &[u8],
    table: &str,
) -> Result<Summary, ReadbackError> {
    let mut s = Summary {
        chains: rules
            .into_iter()
            .map(|(n, comments)| {
                (
                    n,
                    ChainSummary {
                        base: None,
                        comments,
                    },
                )
            })
            .collect(),
        ..Summary::default()
    };
    for json in [sets_json, maps_json] {
        let doc: Value = serde_json::from_slice(json).map_err(|e| err(e.to_string()))?;
        for obj in doc["nftables"].as_array().into_iter().flatten() {
            let body = obj.get("set").or_else(|| obj.get("map"));
            if body.is_some_and(|b| b["table"] == table && b["family"] == "inet") {
                add_object(&mut s, obj)?;
            }
        }
    }
    Ok(s)
}

fn add_object(s: &mut Summary, obj: &Value) -> Result<(), ReadbackError> {
    if let Some(c) = obj.get("chain") {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        let base = c
            .get("hook")
            .and_then(Value::as_str)
            .map(|h| (h.to_string(), c["prio"].as_i64().unwrap_or_default()));
        s.chains.entry(name).or_default().base = base;
    } else if let Some(r) = obj.get("rule") {
        let chain = r["chain"].as_str().unwrap_or_default().to_string();
        let comment = r.get("comment").and_then(Value::as_str).unwrap_or("<none>");
        s.chains
            .entry(chain)
            .or_default()
            .comments
            .push(comment.to_string());
    } else if let Some(set) = obj.get("set") {
        let name = set["name"].as_str().unwrap_or_default().to_string();
        let elems: Result<BTreeSet<ElemSummary>, _> = set
            .get("elem")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(elem).collect())
            .unwrap_or_else(|| Ok(BTreeSet::new()));
        s.sets.insert(name, normalize(elems?));
    } else if let Some(map) = obj.get("map") {
        let name = map["name"].as_str().unwrap_or_default().to_string();
        let mut entries = BTreeMap::new();
        for e in map
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some([k, v]) = e.as_array().map(Vec::as_slice) {
                entries.insert(k.as_str().unwrap_or_default().to_string(), map_verdict(v));
            }
        }
        s.maps.insert(name, entries);
    }
    Ok(())
}

/// The summary of `nft -j list table` output.
pub fn parse_listing(json: &[u8]) -> Result<Summary, ReadbackError> {
    let doc: Value = serde_json::from_slice(json).map_err(|e| err(e.to_string()))?;
    let objects = doc["nftables"]
        .as_array()
        .ok_or_else(|| err("no nftables array"))?;
    let mut s = Summary::default();
    for obj in objects {
        add_object(&mut s, obj)?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_read_prefixes_ranges_tuples_and_maps() {
        let json = br#"{"nftables": [
          {"metainfo": {"version": "1.0.6"}},
          {"table": {"family": "inet", "name": "t"}},
          {"set": {"name": "s4", "type": "ipv4_addr", "elem": [{"prefix": {"addr": "10.0.0.0", "len": 31}}, "10.0.0.2", {"range": ["10.0.0.3", "10.0.0.9"]}]}},
          {"set": {"name": "p4", "elem": [{"concat": ["10.0.0.1", "tcp", 80]}]}},
          {"map": {"name": "m", "elem": [["cali1", {"goto": {"target": "fw-cali1"}}]]}},
          {"chain": {"name": "b", "hook": "forward", "prio": -2}},
          {"rule": {"chain": "b", "comment": "00ff"}}
        ]}"#;
        let s = parse_listing(json).unwrap();
        assert_eq!(
            s.sets["s4"].iter().collect::<Vec<_>>(),
            vec![&ElemSummary::Range(4, 0x0a00_0000, 0x0a00_0009)]
        );
        assert_eq!(
            s.sets["p4"].iter().collect::<Vec<_>>(),
            vec![&ElemSummary::Tuple("10.0.0.1".parse().unwrap(), 6, 80)]
        );
        assert_eq!(s.maps["m"]["cali1"], "goto fw-cali1");
        assert_eq!(s.chains["b"].base, Some(("forward".into(), -2)));
        assert_eq!(s.chains["b"].comments, vec!["00ff".to_string()]);
    }
}

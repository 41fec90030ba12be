//! NAT outgoing with nftables, through `nft -j -f -` (libnftables' JSON).
//!
//! Why the JSON interface and not a crate: the `nftables` crate is itself a
//! typed wrapper that shells out to the same `nft -j`; rendering the few
//! objects felix needs with `serde_json` keeps the dependency list short,
//! and one `nft -j -f -` call is one atomic transaction. felix owns one
//! table per family (`ip tortie-nat`, `ip6 tortie-nat`) and rewrites it whole.
//!
//! The rule is Calico's: masquerade (fully random) traffic whose source is in
//! a natOutgoing pool and whose destination is in no pool.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::{json, Value};
use tortie_felix::desired::NatOutgoing;

use crate::nftcmd::{self, NftError};
use crate::nftmon::OwnPids;

/// Programming nftables failed.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    /// `nft` failed.
    #[error("NAT outgoing: {0}")]
    Nft(#[from] NftError),
}

fn elems(nets: &[IpNet], v4: bool) -> Vec<Value> {
    nets.iter()
        .filter(|n| matches!(n, IpNet::V4(_)) == v4)
        .map(|n| json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix_len()}}))
        .collect()
}

fn family_cmds(table: &str, nat: &NatOutgoing, v4: bool) -> Vec<Value> {
    let (family, addr_type, proto) = if v4 {
        ("ip", "ipv4_addr", "ip")
    } else {
        ("ip6", "ipv6_addr", "ip6")
    };
    let t = json!({"family": family, "name": table});
    // add + delete: removes the table whether or not it existed (atomically).
    let mut cmds = vec![
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
    ];
    let masq = elems(&nat.masquerade_from, v4);
    if masq.is_empty() {
        return cmds;
    }
    let set = |name: &str, el: Vec<Value>| {
        let mut s = json!({"family": family, "table": table, "name": name, "type": addr_type, "flags": ["interval"]});
        if !el.is_empty() {
            s["elem"] = Value::Array(el);
        }
        json!({"add": {"set": s}})
    };
    cmds.push(json!({"add": {"table": t}}));
    cmds.push(
        json!({"add": {"chain": {"family": family, "table": table, "name": "postrouting",
        "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
    );
    cmds.push(set("masq-pools", masq));
    cmds.push(set("all-pools", elems(&nat.all_pools, v4)));
    let field = |f: &str| json!({"payload": {"protocol": proto, "field": f}});
    cmds.push(
        json!({"add": {"rule": {"family": family, "table": table, "chain": "postrouting", "expr": [
            {"match": {"op": "==", "left": field("saddr"), "right": "@masq-pools"}},
            {"match": {"op": "!=", "left": field("daddr"), "right": "@all-pools"}},
            {"masquerade": {"flags": ["fully-random"]}}
        ]}}}),
    );
    cmds
}

/// The whole JSON transaction for `nat` in table `table` (both families).
pub fn render(table: &str, nat: &NatOutgoing) -> Value {
    let mut cmds = family_cmds(table, nat, true);
    cmds.extend(family_cmds(table, nat, false));
    json!({"nftables": cmds})
}

/// Applies NAT outgoing in a namespace, skipping the write when the last
/// applied ruleset is unchanged.
#[derive(Debug)]
pub struct NatProgrammer {
    netns: Option<PathBuf>,
    table: String,
    last: Option<Value>,
    own: OwnPids,
}

impl NatProgrammer {
    /// Programs table `table` in the namespace at `netns`.
    pub fn new(netns: Option<&Path>, table: &str) -> Self {
        Self {
            netns: netns.map(Path::to_path_buf),
            table: table.to_string(),
            last: None,
            own: OwnPids::default(),
        }
    }

    /// The PIDs of the `nft` processes this programmer ran (for the
    /// nftables monitor, which does not report their commits).
    pub fn own_pids(&self) -> OwnPids {
        self.own.clone()
    }

    /// Removes felix's table (both families), whatever it held.
    pub fn remove(&mut self) -> Result<(), NatError> {
        self.last = None;
        self.apply(&NatOutgoing::default()).map(drop)
    }

    /// Forgets what was applied (the next `apply` writes again).
    pub fn invalidate(&mut self) {
        self.last = None;
    }

    /// Writes the ruleset when it changed; returns whether it wrote.
    pub fn apply(&mut self, nat: &NatOutgoing) -> Result<bool, NatError> {
        let doc = render(&self.table, nat);
        if self.last.as_ref() == Some(&doc) {
            return Ok(false);
        }
        let own = self.own.clone();
        nftcmd::run_with(
            self.netns.as_deref(),
            &["-j", "-f", "-"],
            &doc.to_string(),
            move |pid| own.record(pid),
        )?;
        self.last = Some(doc);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_nat_pools_render_only_the_table_removal() {
        let doc = render("t", &NatOutgoing::default());
        assert_eq!(doc["nftables"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn nat_pools_render_a_masquerade_rule_excluding_all_pools() {
        let nat = NatOutgoing {
            masquerade_from: vec!["10.244.0.0/16".parse().unwrap()],
            all_pools: vec![
                "10.244.0.0/16".parse().unwrap(),
                "10.245.0.0/16".parse().unwrap(),
            ],
        };
        let s = render("t", &nat).to_string();
        assert!(s.contains("\"masquerade\""));
        assert!(s.contains("@all-pools"));
        assert!(s.contains("10.245.0.0"));
    }
}

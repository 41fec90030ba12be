//! The `nft -f` transaction from one policy table content to another:
//! only the objects that differ are touched (new sets and chains added,
//! set and map elements added or deleted, changed chains flushed and
//! refilled, removed ones flushed then deleted), in an order the kernel
//! accepts within one atomic transaction. A change of the base chains
//! replaces the whole table (still atomically).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::nft::{self, Elem, Ruleset, Verdict};

/// The transaction that creates `rs` in `inet table`, replacing whatever
/// the table holds (or creating it).
pub fn full_replace(table: &str, rs: &Ruleset) -> String {
    let mut out = String::new();
    // add + delete: removes the table whether or not it exists.
    let _ = writeln!(out, "add table inet {table}");
    let _ = writeln!(out, "delete table inet {table}");
    let _ = writeln!(out, "add table inet {table}");
    nft::create_commands(table, rs, &mut out);
    out
}

/// The transaction from `old` (what the table holds) to `new`; `None`
/// when they are equal.
pub fn diff(table: &str, old: &Ruleset, new: &Ruleset) -> Option<String> {
    if old == new {
        return None;
    }
    let bases_differ = |a: &Ruleset, b: &Ruleset| {
        a.chains
            .iter()
            .filter(|(_, c)| c.base.is_some())
            .any(|(n, c)| b.chains.get(n).map(|d| d.base) != Some(c.base))
    };
    // A set that changed type (impossible with hashed names) cannot be
    // altered in place while rules use it.
    let kinds_differ = new
        .sets
        .iter()
        .any(|(n, s)| old.sets.get(n).is_some_and(|o| o.kind != s.kind));
    if bases_differ(old, new) || bases_differ(new, old) || kinds_differ {
        return Some(full_replace(table, new));
    }
    let mut out = String::new();
    added_objects(table, old, new, &mut out);
    set_changes(table, old, new, &mut out);
    chain_changes(table, old, new, &mut out);
    map_changes(table, old, new, &mut out);
    removed_objects(table, old, new, &mut out);
    Some(out)
}

fn added_objects(table: &str, old: &Ruleset, new: &Ruleset, out: &mut String) {
    for (name, chain) in &new.chains {
        if !old.chains.contains_key(name) {
            nft::add_chain(table, name, chain, out);
        }
    }
    for (name, set) in &new.sets {
        if !old.sets.contains_key(name) {
            nft::add_set(table, name, set, out);
        }
    }
    for name in new.maps.keys() {
        if !old.maps.contains_key(name) {
            nft::add_map(table, name, out);
        }
    }
}

fn set_changes(table: &str, old: &Ruleset, new: &Ruleset, out: &mut String) {
    for (name, set) in &new.sets {
        let Some(o) = old.sets.get(name) else {
            continue;
        };
        // Deletions first: a CIDR replaced by a covering one must not
        // overlap it within the transaction.
        let gone: Vec<&Elem> = o.elems.difference(&set.elems).collect();
        let added: Vec<&Elem> = set.elems.difference(&o.elems).collect();
        nft::set_elems("delete", table, name, &gone, out);
        nft::set_elems("add", table, name, &added, out);
    }
}

fn chain_changes(table: &str, old: &Ruleset, new: &Ruleset, out: &mut String) {
    for (name, chain) in &new.chains {
        match old.chains.get(name) {
            Some(o) if o.rules == chain.rules => {}
            Some(_) => {
                let _ = writeln!(out, "flush chain inet {table} {name}");
                nft::add_rules(table, name, &chain.rules, out);
            }
            None => nft::add_rules(table, name, &chain.rules, out),
        }
    }
}

fn map_changes(table: &str, old: &Ruleset, new: &Ruleset, out: &mut String) {
    let empty = BTreeMap::new();
    for (name, elems) in &new.maps {
        let o = old.maps.get(name).unwrap_or(&empty);
        let gone: Vec<&String> = o
            .iter()
            .filter(|(k, v)| elems.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        let added: Vec<(&String, &Verdict)> =
            elems.iter().filter(|(k, v)| o.get(*k) != Some(v)).collect();
        nft::delete_map_elems(table, name, &gone, out);
        nft::add_map_elems(table, name, &added, out);
    }
}

fn removed_objects(table: &str, old: &Ruleset, new: &Ruleset, out: &mut String) {
    let gone: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    // Flush first so that no chain being deleted is still jumped to.
    for name in &gone {
        let _ = writeln!(out, "flush chain inet {table} {name}");
    }
    for name in &gone {
        let _ = writeln!(out, "delete chain inet {table} {name}");
    }
    for name in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        let _ = writeln!(out, "delete set inet {table} {name}");
    }
    for name in old.maps.keys().filter(|n| !new.maps.contains_key(*n)) {
        let _ = writeln!(out, "delete map inet {table} {name}");
    }
}

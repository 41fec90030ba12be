//! A BGPPeer's `filters` (BGPFilter names, in order) as the speaker's
//! per-peer rules: the rules of every named filter concatenated per
//! direction and family, as confd calls the filters' BIRD functions one
//! after the other (the first rule that matches, in any of them, decides).
//! Pure: problems come back as words for the agent to log.
//!
//! A name with no BGPFilter behind it is skipped, as calico-node's confd
//! skips it, and reported. A rule validation would have refused
//! (`interface`) is skipped and reported too.

use std::collections::BTreeMap;

use ipnet::IpNet;
use tortie_bgp_rib::{
    FilterAction, FilterRule, FilterRules, MatchOperator, PeerFilters, PrefixMatch,
};
use tortie_bgp_wire::Prefix;
use tortie_model::bgpfilter::{
    BgpFilterAction, BgpFilterMatchOperator, BgpFilterRule, BgpFilterSource,
};
use tortie_model::BgpFilterSpec;

fn operator(op: BgpFilterMatchOperator) -> MatchOperator {
    match op {
        BgpFilterMatchOperator::Equal => MatchOperator::Equal,
        BgpFilterMatchOperator::NotEqual => MatchOperator::NotEqual,
        BgpFilterMatchOperator::In => MatchOperator::In,
        BgpFilterMatchOperator::NotIn => MatchOperator::NotIn,
    }
}

fn prefix(n: &IpNet) -> Option<Prefix> {
    let n = n.trunc();
    Prefix::new(n.addr(), n.prefix_len()).ok()
}

fn length(v: Option<i32>) -> Option<u8> {
    v.map(|v| u8::try_from(v.clamp(0, 128)).unwrap_or(128))
}

/// One rule, or why it cannot be honoured.
fn rule(r: &BgpFilterRule) -> Result<FilterRule, &'static str> {
    if r.interface.is_some() {
        return Err("`interface` is not supported by tortie");
    }
    let prefix = match (&r.cidr, r.match_operator) {
        (Some(cidr), Some(op)) => {
            let cidr = prefix(cidr).ok_or("cidr is not a BGP prefix")?;
            let pl = r.prefix_length.unwrap_or_default();
            Some(PrefixMatch::new(operator(op), cidr).with_lengths(length(pl.min), length(pl.max)))
        }
        (None, None) => None,
        _ => return Err("cidr and matchOperator must be set together"),
    };
    Ok(FilterRule {
        action: match r.action {
            BgpFilterAction::Accept => FilterAction::Accept,
            BgpFilterAction::Reject => FilterAction::Reject,
        },
        prefix,
        learned_only: r.source == Some(BgpFilterSource::RemotePeers),
    })
}

fn extend(
    out: &mut Vec<FilterRule>,
    rules: &[BgpFilterRule],
    at: &str,
    problems: &mut Vec<String>,
) {
    for (i, r) in rules.iter().enumerate() {
        match rule(r) {
            Ok(r) => out.push(r),
            Err(why) => problems.push(format!("{at}[{i}]: {why}; rule skipped")),
        }
    }
}

/// The rules of the BGPFilters `names` (from BGPPeer `peer`) for one session.
pub fn peer_filters(
    peer: &str,
    names: &[String],
    filters: &BTreeMap<String, BgpFilterSpec>,
    problems: &mut Vec<String>,
) -> PeerFilters {
    let mut import = FilterRules::default();
    let mut export = FilterRules::default();
    for name in names {
        let Some(f) = filters.get(name) else {
            problems.push(format!(
                "BGPPeer({peer}) spec.filters names BGPFilter {name:?}, which does not exist; skipped until it does"
            ));
            continue;
        };
        let at = |list: &str| format!("BGPFilter({name}) spec.{list}");
        extend(&mut import.v4, &f.import_v4, &at("importV4"), problems);
        extend(&mut import.v6, &f.import_v6, &at("importV6"), problems);
        extend(&mut export.v4, &f.export_v4, &at("exportV4"), problems);
        extend(&mut export.v6, &f.export_v6, &at("exportV6"), problems);
    }
    PeerFilters { import, export }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> BgpFilterSpec {
        let indented: String = yaml.lines().map(|l| format!("  {l}\n")).collect();
        let text = format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: f\nspec:\n{indented}"
        );
        match tortie_model::parse_manifest(&text).unwrap().remove(0) {
            tortie_model::Resource::BgpFilter(f) => f.spec,
            other => panic!("{other:?}"),
        }
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn filters_concatenate_in_the_order_the_peer_lists_them() {
        let mut all = BTreeMap::new();
        all.insert(
            "a".to_string(),
            spec("exportV4:\n- {action: Reject, matchOperator: Equal, cidr: 10.244.1.0/26}\nimportV4:\n- {action: Accept, matchOperator: In, cidr: 55.0.0.0/16, prefixLength: {min: 30}}\n"),
        );
        all.insert(
            "b".to_string(),
            spec("exportV4:\n- {action: Accept, source: RemotePeers}\n- {action: Reject}\nimportV6:\n- {action: Reject, matchOperator: NotIn, cidr: 'fd00::/8'}\n"),
        );
        let mut problems = Vec::new();
        let f = peer_filters("tor", &["b".into(), "a".into()], &all, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(f.export.v4.len(), 3);
        // b's rules come first: a learned route is accepted before a's reject.
        assert!(f.export.v4[0].learned_only);
        assert_eq!(
            f.export.decide(&p("10.244.1.0/26"), true),
            Some(FilterAction::Accept)
        );
        assert_eq!(
            f.export.decide(&p("10.244.1.0/26"), false),
            Some(FilterAction::Reject)
        );
        let m = f.import.v4[0].prefix.unwrap();
        assert_eq!((m.min_len, m.max_len), (30, 32));
        assert_eq!(
            f.import.decide(&p("2001:db8::/32"), true),
            Some(FilterAction::Reject)
        );
    }

    #[test]
    fn a_missing_filter_and_an_interface_rule_are_reported_and_skipped() {
        let mut all = BTreeMap::new();
        // Validation refuses `interface`; a record written past it is skipped.
        let mut a = spec("exportV4:\n- {action: Reject}\n- {action: Reject, matchOperator: In, cidr: 10.0.0.0/8}\n");
        a.export_v4[0].interface = Some("eth*".into());
        all.insert("a".to_string(), a);
        let mut problems = Vec::new();
        let f = peer_filters("tor", &["gone".into(), "a".into()], &all, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("\"gone\""), "{problems:?}");
        assert!(problems[1].contains("spec.exportV4[0]"), "{problems:?}");
        assert_eq!(f.export.v4.len(), 1);
    }
}

//! Golden scenario tests: each `tests/scenarios/NAME.json` holds a RIB
//! configuration and a list of inputs; every input's [`Output`] (and the
//! Loc-RIB at `query` steps) is rendered as JSON and compared with
//! `NAME.expected.json` beside it. `TORTIE_REGENERATE_GOLDEN=1 cargo test -p
//! tortie-bgp-rib --test golden` rewrites the expected files; review the diff.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tortie_bgp_rib::{
    DownKind, FilterAction, FilterRule, FilterRules, ImportScope, LocalAddrs, MatchOperator,
    NextHopMode, Output, PeerInfo, PeerRole, PolicyConfig, PoolConfig, PrefixAdvertisement,
    PrefixMatch, RestartConfig, Rib, RibConfig, RibEvent,
};
use tortie_bgp_wire::{
    AsPath, Community, Family, GracefulRestartCap, GracefulRestartFamily, LargeCommunity, MpReach,
    MpUnreach, NextHop, Nlri, Origin, PathAttributes, Prefix, UpdateMsg,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[allow(dead_code)]
    description: String,
    config: ConfigSpec,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSpec {
    asn: u32,
    router_id: Ipv4Addr,
    #[serde(default)]
    cluster_id: Option<Ipv4Addr>,
    #[serde(default)]
    max_paths: Option<u16>,
    #[serde(default)]
    policy: PolicySpec,
    #[serde(default)]
    restart: Option<RestartSpec>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    #[serde(default)]
    pools: Vec<(String, bool)>,
    #[serde(default)]
    service_cidrs: Vec<String>,
    #[serde(default)]
    local_blocks: Vec<String>,
    #[serde(default)]
    lent: Vec<String>,
    #[serde(default)]
    prefix_advertisements: Vec<(String, Vec<String>)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartSpec {
    expected_peers: Vec<IpAddr>,
    selection_deferral_s: u64,
    peer_wait_s: u64,
}

#[derive(Deserialize)]
struct Step {
    at: f64,
    #[serde(flatten)]
    op: Op,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    PeerUp(PeerSpec),
    PeerDown {
        peer: IpAddr,
        how: DownKind,
    },
    Update(UpdateSpec),
    EndOfRib {
        peer: IpAddr,
        family: Option<String>,
    },
    Tick {},
    Originate {
        prefixes: Vec<String>,
        communities: Option<Vec<String>>,
    },
    WithdrawLocal {
        prefixes: Vec<String>,
    },
    SetPolicy(PolicySpec),
    Query {},
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSpec {
    addr: IpAddr,
    asn: u32,
    router_id: Ipv4Addr,
    #[serde(default)]
    role: Option<PeerRole>,
    #[serde(default)]
    next_hop_mode: NextHopMode,
    #[serde(default)]
    local_v4: Option<Ipv4Addr>,
    #[serde(default)]
    local_v6: Option<std::net::Ipv6Addr>,
    #[serde(default)]
    ipv6: bool,
    #[serde(default)]
    add_path: bool,
    #[serde(default)]
    graceful_restart: Option<GrSpec>,
    #[serde(default)]
    max_restart_s: Option<u64>,
    #[serde(default)]
    max_prefixes: Option<u32>,
    #[serde(default)]
    allowas_in: u8,
    /// `null` = cluster node; a list of `[action, operator, cidr]` = external filter.
    #[serde(default)]
    external_filter: Option<Vec<(String, String, String)>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrSpec {
    restart_time: u16,
    #[serde(default = "yes")]
    forwarding_preserved: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSpec {
    peer: IpAddr,
    #[serde(default)]
    announce: Vec<String>,
    #[serde(default)]
    withdraw: Vec<String>,
    #[serde(default)]
    attrs: AttrSpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AttrSpec {
    #[serde(default)]
    next_hop: Option<IpAddr>,
    #[serde(default)]
    as_path: Vec<u32>,
    #[serde(default)]
    local_pref: Option<u32>,
    #[serde(default)]
    med: Option<u32>,
    #[serde(default)]
    communities: Vec<String>,
    #[serde(default)]
    originator_id: Option<Ipv4Addr>,
    #[serde(default)]
    cluster_list: Vec<Ipv4Addr>,
}

fn prefix(s: &str) -> Prefix {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `10.0.0.0/24` or `10.0.0.0/24#3` (with an ADD-PATH path id).
fn nlri(s: &str) -> Nlri {
    match s.split_once('#') {
        Some((p, id)) => Nlri::with_path_id(prefix(p), id.parse().unwrap()),
        None => Nlri::new(prefix(s)),
    }
}

fn community(s: &str) -> (Option<Community>, Option<LargeCommunity>) {
    let parts: Vec<u32> = s.split(':').map(|x| x.parse().unwrap()).collect();
    match parts[..] {
        [a, v] => (Some(Community::new(a as u16, v as u16)), None),
        [g, l1, l2] => (
            None,
            Some(LargeCommunity {
                global_admin: g,
                local_data1: l1,
                local_data2: l2,
            }),
        ),
        _ => panic!("bad community {s}"),
    }
}

fn policy(spec: &PolicySpec) -> PolicyConfig {
    PolicyConfig {
        pools: spec
            .pools
            .iter()
            .map(|(c, d)| PoolConfig {
                cidr: prefix(c),
                disable_bgp_export: *d,
            })
            .collect(),
        service_cidrs: spec.service_cidrs.iter().map(|c| prefix(c)).collect(),
        local_blocks: spec.local_blocks.iter().map(|c| prefix(c)).collect(),
        lent: spec.lent.iter().map(|c| prefix(c)).collect(),
        prefix_advertisements: spec
            .prefix_advertisements
            .iter()
            .map(|(c, comms)| {
                let parsed: Vec<_> = comms.iter().map(|x| community(x)).collect();
                PrefixAdvertisement {
                    cidr: prefix(c),
                    communities: parsed.iter().filter_map(|x| x.0).collect(),
                    large_communities: parsed.iter().filter_map(|x| x.1).collect(),
                }
            })
            .collect(),
    }
}

fn config(spec: &ConfigSpec) -> RibConfig {
    let mut cfg = RibConfig::new(spec.asn, spec.router_id);
    cfg.cluster_id = spec.cluster_id;
    cfg.max_paths = spec.max_paths.unwrap_or(16);
    cfg.policy = policy(&spec.policy);
    cfg.restart = spec.restart.as_ref().map(|r| RestartConfig {
        expected_peers: r.expected_peers.clone(),
        selection_deferral: Duration::from_secs(r.selection_deferral_s),
        peer_wait: Duration::from_secs(r.peer_wait_s),
    });
    cfg
}

fn filter_rule((action, op, cidr): &(String, String, String)) -> FilterRule {
    let operator = match op.as_str() {
        "Equal" => MatchOperator::Equal,
        "NotEqual" => MatchOperator::NotEqual,
        "In" => MatchOperator::In,
        _ => MatchOperator::NotIn,
    };
    FilterRule {
        action: match action.as_str() {
            "accept" => FilterAction::Accept,
            _ => FilterAction::Reject,
        },
        prefix: Some(PrefixMatch::new(operator, prefix(cidr))),
        learned_only: false,
    }
}

fn peer_info(spec: &PeerSpec, local_asn: u32) -> PeerInfo {
    let mut info = PeerInfo::new(spec.addr, spec.asn, spec.router_id, local_asn);
    if let Some(role) = spec.role {
        info.role = role;
    }
    info.next_hop_mode = spec.next_hop_mode;
    info.local = LocalAddrs {
        v4: spec.local_v4,
        v6: spec.local_v6,
    };
    if spec.ipv6 {
        info.families.push(Family::IPV6_UNICAST);
    }
    if spec.add_path {
        info.add_path_rx = info.families.clone();
        info.add_path_tx = info.families.clone();
    }
    info.graceful_restart = spec.graceful_restart.as_ref().map(|g| GracefulRestartCap {
        restart_state: false,
        notification: false,
        restart_time: g.restart_time,
        families: info
            .families
            .iter()
            .map(|f| GracefulRestartFamily {
                family: *f,
                forwarding_preserved: g.forwarding_preserved,
            })
            .collect(),
    });
    info.max_restart_time = spec.max_restart_s.map(Duration::from_secs);
    info.max_prefixes = spec.max_prefixes;
    info.allowas_in = spec.allowas_in;
    if let Some(rules) = &spec.external_filter {
        info.import = ImportScope::External;
        let rules: Vec<FilterRule> = rules.iter().map(filter_rule).collect();
        info.filters.import = FilterRules {
            v4: rules
                .iter()
                .filter(|r| r.prefix.is_none_or(|m| m.cidr.is_ipv4()))
                .copied()
                .collect(),
            v6: rules
                .iter()
                .filter(|r| r.prefix.is_some_and(|m| !m.cidr.is_ipv4()))
                .copied()
                .collect(),
        };
    }
    info
}

fn update_msg(spec: &UpdateSpec) -> UpdateMsg {
    let a = &spec.attrs;
    let mut attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(a.as_path.iter().copied())),
        local_pref: a.local_pref,
        med: a.med,
        originator_id: a.originator_id,
        cluster_list: a.cluster_list.clone(),
        ..Default::default()
    };
    for c in &a.communities {
        match community(c) {
            (Some(x), _) => attrs.communities.push(x),
            (_, Some(l)) => attrs.large_communities.push(l),
            _ => {}
        }
    }
    let announce: Vec<Nlri> = spec.announce.iter().map(|s| nlri(s)).collect();
    let withdraw: Vec<Nlri> = spec.withdraw.iter().map(|s| nlri(s)).collect();
    let v6 = announce
        .iter()
        .chain(&withdraw)
        .any(|n| !n.prefix.is_ipv4());
    let mut msg = UpdateMsg::default();
    if v6 {
        if !announce.is_empty() {
            let global = match a.next_hop {
                Some(IpAddr::V6(g)) => g,
                _ => panic!("IPv6 announcements need an IPv6 next_hop"),
            };
            attrs.mp_reach = Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::V6 {
                    global,
                    link_local: None,
                },
                nlri: announce,
            });
        }
        if !withdraw.is_empty() {
            attrs.mp_unreach = Some(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: withdraw,
            });
        }
    } else {
        attrs.next_hop = a.next_hop.map(|n| match n {
            IpAddr::V4(v) => v,
            IpAddr::V6(_) => panic!("IPv4 announcements need an IPv4 next_hop"),
        });
        msg.nlri = announce;
        msg.withdrawn = withdraw;
    }
    if !msg.nlri.is_empty() || attrs.mp_reach.is_some() {
        msg.attributes = attrs;
    } else {
        msg.attributes.mp_unreach = attrs.mp_unreach;
    }
    msg
}

fn render_attrs(a: &PathAttributes) -> Value {
    let mut m = serde_json::Map::new();
    let next_hop = a.next_hop.map(|n| n.to_string()).or_else(|| {
        a.mp_reach.as_ref().map(|r| match r.next_hop {
            NextHop::V4(v) => v.to_string(),
            NextHop::V6 { global, .. } => global.to_string(),
        })
    });
    m.insert("next_hop".into(), json!(next_hop));
    let path: Vec<u32> = a
        .as_path
        .iter()
        .flat_map(|p| &p.segments)
        .flat_map(|s| s.asns.clone())
        .collect();
    m.insert("as_path".into(), json!(path));
    if let Some(lp) = a.local_pref {
        m.insert("local_pref".into(), json!(lp));
    }
    if let Some(med) = a.med {
        m.insert("med".into(), json!(med));
    }
    let comms: Vec<String> = a
        .communities
        .iter()
        .map(ToString::to_string)
        .chain(a.large_communities.iter().map(ToString::to_string))
        .collect();
    if !comms.is_empty() {
        m.insert("communities".into(), json!(comms));
    }
    if let Some(o) = a.originator_id {
        m.insert("originator_id".into(), json!(o.to_string()));
    }
    if !a.cluster_list.is_empty() {
        let cl: Vec<String> = a.cluster_list.iter().map(ToString::to_string).collect();
        m.insert("cluster_list".into(), json!(cl));
    }
    Value::Object(m)
}

fn render_nlri(n: &Nlri) -> String {
    match n.path_id {
        Some(id) => format!("{}#{id}", n.prefix),
        None => n.prefix.to_string(),
    }
}

fn render(out: &Output) -> Value {
    let fib: Vec<Value> = out
        .fib
        .iter()
        .map(|f| match &f.route {
            Some(r) => {
                json!({"prefix": f.prefix.to_string(), "next_hops": r.next_hops, "stale": r.stale})
            }
            None => json!({"prefix": f.prefix.to_string(), "remove": true}),
        })
        .collect();
    let updates: Vec<Value> = out
        .updates
        .iter()
        .map(|u| {
            json!({
                "peers": u.peers,
                "family": u.family.to_string(),
                "withdraw": u.withdraw.iter().map(render_nlri).collect::<Vec<_>>(),
                "announce": u.announce.iter().map(|a| json!({
                    "attrs": render_attrs(&a.attrs),
                    "nlri": a.nlri.iter().map(render_nlri).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "end_of_rib": u.end_of_rib,
            })
        })
        .collect();
    let events: Vec<String> = out
        .events
        .iter()
        .map(|e| match e {
            RibEvent::MaxPrefixExceeded { peer, limit } => {
                format!("max prefix exceeded: {peer} (limit {limit})")
            }
            RibEvent::StaleSwept { peer, paths } => format!("stale swept: {peer} ({paths} paths)"),
            RibEvent::RestartComplete => "restart complete".to_string(),
            RibEvent::RouteRefreshNeeded { peer } => format!("route refresh needed: {peer}"),
        })
        .collect();
    json!({
        "fib": fib,
        "updates": updates,
        "events": events,
        "next_deadline_s": out.next_deadline.map(|d| d.as_secs_f64()),
    })
}

fn step_name(op: &Op) -> &'static str {
    match op {
        Op::PeerUp(_) => "peer_up",
        Op::PeerDown { .. } => "peer_down",
        Op::Update(_) => "update",
        Op::EndOfRib { .. } => "end_of_rib",
        Op::Tick {} => "tick",
        Op::Originate { .. } => "originate",
        Op::WithdrawLocal { .. } => "withdraw_local",
        Op::SetPolicy(_) => "set_policy",
        Op::Query {} => "query",
    }
}

fn run_step(rib: &mut Rib, op: &Op, now: Duration, asn: u32) -> Value {
    let out = match op {
        Op::PeerUp(p) => rib.peer_up(peer_info(p, asn), now).unwrap(),
        Op::PeerDown { peer, how } => rib.peer_down(*peer, *how, now).unwrap(),
        Op::Update(u) => rib.update(u.peer, &update_msg(u), now).unwrap(),
        Op::EndOfRib { peer, family } => {
            let f = match family.as_deref() {
                Some("ipv6") => Family::IPV6_UNICAST,
                _ => Family::IPV4_UNICAST,
            };
            rib.update(*peer, &UpdateMsg::end_of_rib(f), now).unwrap()
        }
        Op::Tick {} => rib.tick(now),
        Op::Originate {
            prefixes,
            communities,
        } => {
            let mut attrs = PathAttributes {
                origin: Some(Origin::Igp),
                ..Default::default()
            };
            for c in communities.iter().flatten() {
                attrs.communities.extend(community(c).0);
            }
            rib.originate(
                &prefixes.iter().map(|p| prefix(p)).collect::<Vec<_>>(),
                attrs,
            )
        }
        Op::WithdrawLocal { prefixes } => {
            rib.withdraw_local(&prefixes.iter().map(|p| prefix(p)).collect::<Vec<_>>())
        }
        Op::SetPolicy(p) => rib.set_policy(policy(p)),
        Op::Query {} => return serde_json::to_value(rib.query(None)).unwrap(),
    };
    render(&out)
}

fn run(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let scenario: Scenario =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rib = Rib::new(config(&scenario.config), Duration::ZERO);
    let results: Vec<Value> = scenario
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let now = Duration::from_secs_f64(s.at);
            json!({"step": i, "at": s.at, "op": step_name(&s.op), "result": run_step(&mut rib, &s.op, now, scenario.config.asn)})
        })
        .collect();
    Value::Array(results)
}

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".expected.json")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_produces_its_checked_in_outputs() {
    let regenerate = std::env::var("TORTIE_REGENERATE_GOLDEN").is_ok_and(|v| v == "1");
    let files = scenarios();
    assert!(files.len() >= 8, "scenarios missing: {files:?}");
    let mut failures = Vec::new();
    for f in files {
        let got = run(&f);
        let expected_path = f.with_extension("expected.json");
        let rendered = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if regenerate {
            std::fs::write(&expected_path, &rendered).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(want) if want == rendered => {}
            Ok(_) => failures.push(format!(
                "{}: output differs from {} (TORTIE_REGENERATE_GOLDEN=1 rewrites it; review the diff)",
                f.display(),
                expected_path.display()
            )),
            Err(e) => failures.push(format!("{}: {e}", expected_path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

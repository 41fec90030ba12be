//! Messages captured from real BIRD 2, FRR and GoBGP sessions by
//! `vectors/capture.sh` decode cleanly, re-encode to the same value, and re-encode
//! byte for byte where our encoding choices match the peer's.

use std::path::PathBuf;

use tortie_bgp_wire::{
    decode, encode, Capability, DecodeContext, Direction, Family, Message, NextHop, OpenMsg,
    RouteRefreshSubtype, UpdateMsg,
};

/// One captured session: messages in order, `true` when the peer sent it.
struct Capture {
    name: String,
    messages: Vec<(bool, Vec<u8>)>,
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn load(name: &str) -> Capture {
    load_from(&vectors_dir(), name)
}

fn load_from(dir: &std::path::Path, name: &str) -> Capture {
    let path = dir.join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let messages = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (dir, hex) = l.split_once(' ').expect("DIRECTION HEX");
            (dir == "rx", hex::decode(hex.trim()).expect("hex"))
        })
        .collect();
    Capture {
        name: name.to_string(),
        messages,
    }
}

fn open_of(c: &Capture, from_peer: bool) -> OpenMsg {
    c.messages
        .iter()
        .filter(|(rx, _)| *rx == from_peer)
        .find_map(|(_, b)| match decode(b, &DecodeContext::default()) {
            Ok(Some((Message::Open(o), _))) => Some(o),
            _ => None,
        })
        .expect("an OPEN in each direction")
}

/// Every message decoded with the parameters its direction negotiated.
fn decoded(c: &Capture) -> Vec<(bool, Vec<u8>, Message, DecodeContext)> {
    let (local, remote) = (
        open_of(c, false).capabilities,
        open_of(c, true).capabilities,
    );
    let rx = DecodeContext::negotiated(&local, &remote, Direction::Receive);
    let tx = DecodeContext::negotiated(&local, &remote, Direction::Send);
    c.messages
        .iter()
        .filter(|(_, b)| b.get(18) != Some(&9)) // the recorder's deliberately unknown type
        .map(|(from_peer, bytes)| {
            let ctx = if *from_peer { rx.clone() } else { tx.clone() };
            let (msg, used) = decode(bytes, &ctx)
                .unwrap_or_else(|e| panic!("{}: {e:?} decoding {}", c.name, hex::encode(bytes)))
                .expect("complete message");
            assert_eq!(used, bytes.len());
            (*from_peer, bytes.clone(), msg, ctx)
        })
        .collect()
}

fn updates(all: &[(bool, Vec<u8>, Message, DecodeContext)]) -> Vec<&UpdateMsg> {
    all.iter()
        .filter(|(rx, ..)| *rx)
        .filter_map(|(_, _, m, _)| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

/// Checks every value survives re-encoding and returns the messages that did
/// not re-encode byte for byte.
fn round_trip<'a>(
    c: &Capture,
    all: &'a [(bool, Vec<u8>, Message, DecodeContext)],
) -> Vec<&'a Message> {
    let mut differing = Vec::new();
    for (_, bytes, msg, ctx) in all {
        if let Message::Update(u) = msg {
            assert!(
                u.errors.is_empty(),
                "{}: RFC 7606 problems {:?}",
                c.name,
                u.errors
            );
        }
        let mut out = Vec::new();
        encode(msg, ctx, &mut out).unwrap_or_else(|e| panic!("{}: {e} for {msg:?}", c.name));
        let (again, _) = decode(&out, ctx).unwrap().unwrap();
        assert_eq!(&again, msg, "{}", c.name);
        if &out != bytes {
            differing.push(msg);
        }
    }
    differing
}

/// FRR and GoBGP order and size some fields differently from us (documented in
/// docs/bgp-wire.md); only OPENs and UPDATEs that carry routes may differ.
fn only_open_or_route_updates_differ(differing: &[&Message]) {
    for m in differing {
        match m {
            Message::Open(_) => {}
            Message::Update(u) => {
                assert!(u.end_of_rib_family().is_none(), "End-of-RIB must be exact")
            }
            other => panic!("{other:?} must re-encode byte for byte"),
        }
    }
}

#[test]
fn bird_modern_session_vectors() {
    let c = load("bird");
    let all = decoded(&c);
    let ups = updates(&all);
    // ADD-PATH tx from BIRD: every prefix carries a path id.
    assert!(ups
        .iter()
        .flat_map(|u| &u.nlri)
        .all(|n| n.path_id.is_some()));
    assert!(ups.iter().map(|u| u.nlri.len()).sum::<usize>() >= 1002);
    let v6 = ups
        .iter()
        .find_map(|u| u.attributes.mp_reach.as_ref())
        .expect("IPv6 routes");
    assert_eq!(v6.family, Family::IPV6_UNICAST);
    assert!(
        matches!(v6.next_hop, NextHop::V6 { global, .. } if global == "fd99:1::2".parse::<std::net::Ipv6Addr>().unwrap())
    );
    let a = &ups.iter().find(|u| !u.nlri.is_empty()).unwrap().attributes;
    assert_eq!(a.med, Some(50));
    assert_eq!(
        a.communities,
        vec![tortie_bgp_wire::Community::new(65001, 100)]
    );
    assert_eq!(a.large_communities.len(), 1);
    assert_eq!(
        a.extended_communities,
        vec![tortie_bgp_wire::ExtendedCommunity::route_target(65001, 7)]
    );
    let eors: Vec<Family> = ups.iter().filter_map(|u| u.end_of_rib_family()).collect();
    assert!(eors.contains(&Family::IPV4_UNICAST) && eors.contains(&Family::IPV6_UNICAST));
    // `birdc disable modern "maintenance window"`: RFC 9003 shutdown communication.
    let Some((_, _, Message::Notification(n), _)) = all.last() else {
        panic!("ends with a NOTIFICATION")
    };
    assert_eq!(n.shutdown_communication(), Some(Ok("maintenance window")));
    // BIRD writes what we write: every message re-encodes byte for byte.
    assert_eq!(round_trip(&c, &all), Vec::<&Message>::new());
}

#[test]
fn bird_legacy_session_merges_as4_path() {
    let c = load("bird-legacy");
    let all = decoded(&c);
    assert!(!open_of(&c, true)
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::FourOctetAs(_))));
    let ups = updates(&all);
    let path = ups
        .iter()
        .find_map(|u| u.attributes.as_path.as_ref())
        .unwrap();
    assert_eq!(
        path.segments[0].asns,
        vec![65001, 4_200_000_002, 4_200_000_001]
    );
    assert_eq!(round_trip(&c, &all), Vec::<&Message>::new());
}

#[test]
fn frr_session_vectors() {
    let c = load("frr");
    let all = decoded(&c);
    let ups = updates(&all);
    let a = &ups.iter().find(|u| !u.nlri.is_empty()).unwrap().attributes;
    assert_eq!(a.med, Some(20));
    assert!(a
        .communities
        .contains(&tortie_bgp_wire::Community::NO_EXPORT));
    let subtypes: Vec<RouteRefreshSubtype> = all
        .iter()
        .filter_map(|(rx, _, m, _)| match m {
            Message::RouteRefresh(r) if *rx => Some(r.subtype),
            _ => None,
        })
        .collect();
    assert_eq!(
        subtypes,
        vec![
            RouteRefreshSubtype::BeginningOfRouteRefresh,
            RouteRefreshSubtype::EndOfRouteRefresh
        ]
    );
    only_open_or_route_updates_differ(&round_trip(&c, &all));
}

#[test]
fn gobgp_session_vectors() {
    let c = load("gobgp");
    let all = decoded(&c);
    let ups = updates(&all);
    assert!(ups
        .iter()
        .flat_map(|u| &u.nlri)
        .all(|n| n.path_id.is_some()));
    only_open_or_route_updates_differ(&round_trip(&c, &all));
}

#[test]
#[ignore = "root: runs BIRD, FRR and GoBGP in network namespaces (capture.sh)"]
fn capture_script_still_records_sessions_that_decode() {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(vectors_dir().join("capture.sh"))
        .arg(out.path())
        .status()
        .expect("run capture.sh");
    assert!(status.success(), "capture.sh failed: {status}");
    for name in ["bird", "bird-legacy", "frr", "gobgp"] {
        let c = load_from(out.path(), name);
        let all = decoded(&c);
        assert!(
            updates(&all).iter().any(|u| !u.nlri.is_empty()),
            "{name}: no routes"
        );
        round_trip(&c, &all);
    }
}

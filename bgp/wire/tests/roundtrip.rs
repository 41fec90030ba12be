//! Property: `decode(encode(m)) == m` for generated messages of every type,
//! on 4-octet and 2-octet sessions, with and without ADD-PATH.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tortie_bgp_wire::*;

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![
        Just(Family::IPV4_UNICAST),
        Just(Family::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family::new(a, s)),
    ]
}

fn known_cap_code(c: u8) -> bool {
    matches!(c, 1 | 2 | 5 | 6 | 64 | 65 | 69 | 70)
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        Just(Capability::ExtendedMessage),
        (
            any::<bool>(),
            any::<bool>(),
            0..4096u16,
            vec((family(), any::<bool>()), 0..4)
        )
            .prop_map(|(restart_state, notification, restart_time, fams)| {
                Capability::GracefulRestart(GracefulRestartCap {
                    restart_state,
                    notification,
                    restart_time,
                    families: fams
                        .into_iter()
                        .map(|(family, forwarding_preserved)| GracefulRestartFamily {
                            family,
                            forwarding_preserved,
                        })
                        .collect(),
                })
            }),
        vec(
            (
                family(),
                prop_oneof![
                    Just(AddPathMode::Receive),
                    Just(AddPathMode::Send),
                    Just(AddPathMode::Both)
                ]
            ),
            0..4
        )
        .prop_map(|v| Capability::AddPath(
            v.into_iter()
                .map(|(family, mode)| AddPathFamily { family, mode })
                .collect()
        )),
        vec((family(), any::<u16>()), 0..4).prop_map(|v| Capability::ExtendedNextHop(
            v.into_iter()
                .map(|(family, nh)| ExtendedNextHopEntry {
                    family,
                    next_hop_afi: nh.into()
                })
                .collect()
        )),
        (
            any::<u8>().prop_filter("unknown code", |c| !known_cap_code(*c)),
            vec(any::<u8>(), 0..20)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = OpenMsg> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3..=u16::MAX],
        1..=u32::MAX,
        vec(capability(), 0..12),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| OpenMsg {
            version: 4,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
}

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0..=32u8).prop_map(|(a, l)| Prefix::new(IpAddr::V4(a.into()), l).unwrap())
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0..=128u8).prop_map(|(a, l)| Prefix::new(IpAddr::V6(a.into()), l).unwrap())
}

fn entries(
    prefix: BoxedStrategy<Prefix>,
    add_path: bool,
    max: usize,
) -> impl Strategy<Value = Vec<Nlri>> {
    vec((prefix, any::<u32>()), 0..max).prop_map(move |v| {
        v.into_iter()
            .map(|(p, id)| Nlri {
                path_id: add_path.then_some(id),
                prefix: p,
            })
            .collect()
    })
}

fn as_path(confed: bool) -> impl Strategy<Value = AsPath> {
    let kinds = if confed {
        vec![
            SegmentType::Set,
            SegmentType::Sequence,
            SegmentType::ConfedSequence,
            SegmentType::ConfedSet,
        ]
    } else {
        vec![SegmentType::Set, SegmentType::Sequence]
    };
    vec(
        (proptest::sample::select(kinds), vec(any::<u32>(), 1..10)),
        0..4,
    )
    .prop_map(|segs| AsPath {
        segments: segs
            .into_iter()
            .map(|(kind, asns)| AsSegment { kind, asns })
            .collect(),
    })
}

fn mp_reach(ctx: &DecodeContext) -> impl Strategy<Value = MpReach> {
    let (v4, v6) = (
        ctx.has_add_path(Family::IPV4_UNICAST),
        ctx.has_add_path(Family::IPV6_UNICAST),
    );
    let next_hop = prop_oneof![
        any::<u32>().prop_map(|a| NextHop::V4(a.into())),
        (any::<u128>(), option::of(any::<u128>())).prop_map(|(g, l)| NextHop::V6 {
            global: Ipv6Addr::from(g),
            link_local: l.map(Ipv6Addr::from),
        }),
    ];
    prop_oneof![
        (next_hop, entries(v4_prefix().boxed(), v4, 20)).prop_map(|(next_hop, nlri)| MpReach {
            family: Family::IPV4_UNICAST,
            next_hop,
            nlri,
        }),
        (any::<u128>(), entries(v6_prefix().boxed(), v6, 20)).prop_map(|(g, nlri)| MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: NextHop::V6 {
                global: g.into(),
                link_local: None
            },
            nlri,
        }),
    ]
}

fn raw_attribute() -> impl Strategy<Value = RawAttribute> {
    let known = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32];
    (
        any::<u8>().prop_filter("unknown type", move |t| !known.contains(t)),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(|(type_code, value)| RawAttribute {
            flags: 0xe0,
            type_code,
            value,
        })
}

fn attributes(ctx: &DecodeContext, confed: bool) -> impl Strategy<Value = PathAttributes> {
    let v6 = ctx.has_add_path(Family::IPV6_UNICAST);
    let base = (
        option::of(prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ]),
        option::of(as_path(confed)),
        option::of(any::<u32>().prop_map(Ipv4Addr::from)),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        any::<bool>(),
        option::of((any::<u32>(), any::<u32>())),
    );
    let lists = (
        vec(any::<u32>().prop_map(Community), 0..5),
        option::of(any::<u32>().prop_map(Ipv4Addr::from)),
        vec(any::<u32>().prop_map(Ipv4Addr::from), 0..4),
        vec(any::<[u8; 8]>().prop_map(ExtendedCommunity), 0..4),
        vec(
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(g, a, b)| LargeCommunity {
                global_admin: g,
                local_data1: a,
                local_data2: b,
            }),
            0..4,
        ),
        vec(raw_attribute(), 0..2),
        option::of(mp_reach(ctx)),
        option::of(entries(v6_prefix().boxed(), v6, 10)),
    );
    (base, lists).prop_map(|(base, lists)| assemble(base, lists))
}

type Base = (
    Option<Origin>,
    Option<AsPath>,
    Option<Ipv4Addr>,
    Option<u32>,
    Option<u32>,
    bool,
    Option<(u32, u32)>,
);
type Lists = (
    Vec<Community>,
    Option<Ipv4Addr>,
    Vec<Ipv4Addr>,
    Vec<ExtendedCommunity>,
    Vec<LargeCommunity>,
    Vec<RawAttribute>,
    Option<MpReach>,
    Option<Vec<Nlri>>,
);

fn assemble(base: Base, lists: Lists) -> PathAttributes {
    let (origin, as_path, next_hop, med, local_pref, atomic_aggregate, agg) = base;
    let (
        communities,
        originator_id,
        cluster_list,
        extended_communities,
        large_communities,
        mut unknown,
        mp_reach,
        unreach,
    ) = lists;
    unknown.sort_by_key(|u| u.type_code);
    unknown.dedup_by_key(|u| u.type_code);
    PathAttributes {
        origin,
        as_path,
        next_hop,
        med,
        local_pref,
        atomic_aggregate,
        aggregator: agg.map(|(asn, a)| Aggregator {
            asn,
            address: a.into(),
        }),
        communities,
        originator_id,
        cluster_list,
        mp_reach,
        mp_unreach: unreach.map(|withdrawn| MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn,
        }),
        extended_communities,
        large_communities,
        unknown,
    }
}

fn update(ctx: &DecodeContext, confed: bool) -> impl Strategy<Value = UpdateMsg> {
    let v4 = ctx.has_add_path(Family::IPV4_UNICAST);
    (
        entries(v4_prefix().boxed(), v4, 30),
        attributes(ctx, confed),
        entries(v4_prefix().boxed(), v4, 30),
    )
        .prop_map(|(withdrawn, attributes, nlri)| UpdateMsg {
            withdrawn,
            attributes,
            nlri,
            errors: vec![],
        })
}

fn message(ctx: &DecodeContext, confed: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(ctx, confed).prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..40)).prop_map(|(c, s, data)| {
            Message::Notification(NotificationMsg::new(c.into(), s, data))
        }),
        Just(Message::Keepalive),
        (family(), any::<u8>()).prop_map(|(family, s)| {
            let subtype = match s {
                0 => RouteRefreshSubtype::Normal,
                1 => RouteRefreshSubtype::BeginningOfRouteRefresh,
                2 => RouteRefreshSubtype::EndOfRouteRefresh,
                s => RouteRefreshSubtype::Other(s),
            };
            Message::RouteRefresh(RouteRefreshMsg { family, subtype })
        }),
    ]
}

fn context() -> impl Strategy<Value = DecodeContext> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(v4, v6, ext)| {
        let mut add_path = Vec::new();
        if v4 {
            add_path.push(Family::IPV4_UNICAST);
        }
        if v6 {
            add_path.push(Family::IPV6_UNICAST);
        }
        DecodeContext {
            four_octet_as: true,
            add_path,
            extended_message: ext,
            extended_next_hop: vec![],
        }
    })
}

fn strip_reports(m: Message) -> Message {
    match m {
        Message::Update(mut u) => {
            u.errors.clear();
            Message::Update(u)
        }
        m => m,
    }
}

fn assert_round_trip(msg: &Message, ctx: &DecodeContext) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    match encode(msg, ctx, &mut out) {
        Ok(()) => {}
        Err(EncodeError::MessageTooLarge { .. }) => return Err(TestCaseError::reject("too large")),
        Err(e) => return Err(TestCaseError::fail(format!("encode: {e}"))),
    }
    let (back, used) = decode(&out, ctx)
        .map_err(|e| TestCaseError::fail(format!("decode: {e:?}")))?
        .ok_or_else(|| TestCaseError::fail("incomplete"))?;
    prop_assert_eq!(used, out.len());
    prop_assert_eq!(strip_reports(back), msg.clone());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_message_survives_encode_then_decode_on_four_octet_sessions(
        (ctx, msg) in context().prop_flat_map(|ctx| (Just(ctx.clone()), message(&ctx, true)))
    ) {
        assert_round_trip(&msg, &ctx)?;
    }

    #[test]
    fn updates_survive_encode_then_decode_on_two_octet_sessions(
        (ctx, msg) in context().prop_flat_map(|mut ctx| {
            ctx.four_octet_as = false;
            (Just(ctx.clone()), update(&ctx, false).prop_map(Message::Update))
        })
    ) {
        assert_round_trip(&msg, &ctx)?;
    }

    #[test]
    fn packed_announcements_carry_every_prefix_exactly_once(
        (ctx, attrs, nlri) in context().prop_flat_map(|ctx| {
            let v4 = ctx.has_add_path(Family::IPV4_UNICAST);
            (Just(ctx.clone()), attributes(&ctx, true), entries(v4_prefix().boxed(), v4, 3000))
        })
    ) {
        let mut attrs = attrs;
        attrs.mp_reach = None;
        attrs.mp_unreach = None;
        let mut out = Vec::new();
        let n = match encode_announcements(&attrs, &nlri, &ctx, &mut out) {
            Ok(n) => n,
            Err(EncodeError::MessageTooLarge { .. }) => return Err(TestCaseError::reject("attributes too large")),
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        let mut rest = &out[..];
        let mut seen = Vec::new();
        let mut count = 0;
        while let Some((m, used)) = decode(rest, &ctx).map_err(|e| TestCaseError::fail(format!("{e:?}")))? {
            prop_assert!(used <= ctx.max_message_len());
            let Message::Update(u) = m else { return Err(TestCaseError::fail("not an UPDATE")) };
            prop_assert_eq!(&u.attributes, &attrs);
            seen.extend(u.nlri);
            rest = &rest[used..];
            count += 1;
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(count, n);
        prop_assert_eq!(seen, nlri);
    }
}

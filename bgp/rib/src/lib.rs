//! BGP RIB: turns the routes peers announce into a Loc-RIB of best and
//! multipath (ECMP) sets, and turns Loc-RIB changes into what each update
//! group of peers must be sent and what the FIB must change.
//!
//! **Must not:** do I/O, read clocks (time is a `now: Duration` parameter,
//! measured from any fixed origin), log, spawn tasks or know about sockets:
//! inputs go in as method calls on one [`Rib`] value owned by the speaker's
//! instance loop, and every call returns an [`Output`].
//!
//! **Implements:** RFC 4271 §9 (decision process: §9.1.2.2 best path as a
//! chain of steps with a [`BestPathReason`], §9.1.3 and §9.2 dissemination,
//! §5.1 attribute rules), RFC 4456 (route reflection: clients, non-clients,
//! ORIGINATOR_ID, CLUSTER_LIST, loop checks), RFC 4724 (graceful restart,
//! receiving and restarting speaker), RFC 7911 (ADD-PATH path ids), RFC 1997
//! (NO_EXPORT, NO_ADVERTISE), RFC 4486 (max-prefix, as an event), RFC 7606
//! (treat-as-withdraw), and Calico's BIRD export/import filters
//! (confd's `bird.cfg.template`, `bird_ipam.cfg.template`, `bird_aggr.cfg.template`).
//!
//! # API overview
//!
//! | input | call |
//! |---|---|
//! | session Established | [`Rib::peer_up`] with a [`PeerInfo`] |
//! | session gone | [`Rib::peer_down`] with [`DownKind`] (`Graceful` keeps routes stale, RFC 4724) |
//! | UPDATE received | [`Rib::update`] (End-of-RIB markers included) or [`Rib::end_of_rib`] |
//! | our own routes | [`Rib::originate`], [`Rib::withdraw_local`] |
//! | timers | [`Rib::tick`] at [`Output::next_deadline`] |
//! | config change | [`Rib::set_policy`] |
//! | `tortiectl bgp rib` | [`Rib::query`] → [`RibEntry`] (serde) |
//! | what a peer was sent | [`Rib::adj_rib_out`] |
//!
//! Every call returns an [`Output`]: [`FibUpdate`]s (best/ECMP next hops,
//! with a stale flag), [`UpdateBatch`]es (per update group: peers, withdrawals,
//! and `(attributes, NLRI)` announcements ready for
//! `tortie_bgp_wire::encode_announcements`), [`RibEvent`]s, and the next deadline.
//!
//! ```
//! use std::time::Duration;
//! use tortie_bgp_rib::{PeerInfo, Rib, RibConfig};
//! use tortie_bgp_wire::{AsPath, Nlri, Origin, PathAttributes, UpdateMsg};
//! let mut cfg = RibConfig::new(64512, "10.0.0.1".parse().unwrap());
//! cfg.policy.pools.push(tortie_bgp_rib::PoolConfig { cidr: "10.244.0.0/16".parse().unwrap(), disable_bgp_export: false });
//! let mut rib = Rib::new(cfg, Duration::ZERO);
//! let peer = PeerInfo::new("10.0.0.2".parse().unwrap(), 64512, "10.0.0.2".parse().unwrap(), 64512);
//! rib.peer_up(peer, Duration::ZERO).unwrap();
//! let msg = UpdateMsg {
//!     attributes: PathAttributes { origin: Some(Origin::Igp), as_path: Some(AsPath::default()),
//!         next_hop: Some("10.0.0.2".parse().unwrap()), local_pref: Some(100), ..Default::default() },
//!     nlri: vec![Nlri::new("10.244.2.0/26".parse().unwrap())],
//!     ..Default::default()
//! };
//! let out = rib.update("10.0.0.2".parse().unwrap(), &msg, Duration::ZERO).unwrap();
//! assert_eq!(out.fib[0].route.as_ref().unwrap().next_hops, vec!["10.0.0.2".parse::<std::net::IpAddr>().unwrap()]);
//! assert_eq!(rib.query(None)[0].paths[0].reason, Some(tortie_bgp_rib::BestPathReason::OnlyPath));
//! ```

mod adj_out;
mod best;
mod config;
mod error;
mod export;
mod filter;
mod gr;
mod input;
mod output;
mod policy;
mod query;
mod reconfig;
mod rib;
mod table;

pub use best::BestPathReason;
pub use config::{
    DownKind, ImportScope, LocalAddrs, NextHopMode, PeerInfo, PeerRole, RestartConfig, RibConfig,
};
pub use error::RibError;
pub use filter::{FilterAction, FilterRule, FilterRules, MatchOperator, PeerFilters, PrefixMatch};
pub use output::{Announcement, FibRoute, FibUpdate, Output, RibEvent, UpdateBatch};
pub use policy::{contains, PolicyConfig, PoolConfig, PrefixAdvertisement};
pub use query::{RibEntry, RibPath};
pub use rib::Rib;
pub use table::RouteAttrs;

//! What the RIB hands back after each input: forwarding changes for the FIB
//! side, UPDATE contents per update group for the speaker, events, and the
//! next deadline at which [`crate::Rib::tick`] must run.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tortie_bgp_wire::{Family, Nlri, PathAttributes, Prefix};

/// Everything one input produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Loc-RIB changes that matter for forwarding, in prefix order.
    pub fib: Vec<FibUpdate>,
    /// UPDATE contents to send.
    pub updates: Vec<UpdateBatch>,
    /// Things the speaker must act on.
    pub events: Vec<RibEvent>,
    /// When [`crate::Rib::tick`] must be called next (`None` = no timer running).
    pub next_deadline: Option<Duration>,
}

impl Output {
    /// True when the input changed nothing observable.
    pub fn is_empty(&self) -> bool {
        self.fib.is_empty() && self.updates.is_empty() && self.events.is_empty()
    }

    /// Appends `other`'s changes (the later deadline wins).
    pub fn merge(&mut self, other: Output) {
        self.fib.extend(other.fib);
        self.updates.extend(other.updates);
        self.events.extend(other.events);
        self.next_deadline = other.next_deadline;
    }
}

/// The forwarding state of one prefix after a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibUpdate {
    /// The prefix.
    pub prefix: Prefix,
    /// The route to install, or `None` to remove it (no path left, or the
    /// best path is our own, which felix programs itself).
    pub route: Option<FibRoute>,
}

/// A route learned over BGP as the kernel should carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibRoute {
    /// Next hops of the multipath set, best first, without duplicates.
    pub next_hops: Vec<IpAddr>,
    /// Some path of the set waits for its restarting peer (RFC 4724 §4.2):
    /// keep forwarding, expect a sweep.
    pub stale: bool,
}

/// UPDATE contents for a group of peers that receive identical bytes
/// (FRR's update group: format once, send to each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateBatch {
    /// Receivers, in address order.
    pub peers: Vec<IpAddr>,
    /// The family of every NLRI below.
    pub family: Family,
    /// Withdrawals (path ids set when ADD-PATH send applies).
    pub withdraw: Vec<Nlri>,
    /// Announcements, one entry per attribute set: each is one
    /// `tortie_bgp_wire::encode_announcements(&attrs, &nlri, ..)` call.
    pub announce: Vec<Announcement>,
    /// Send End-of-RIB for `family` after the above (RFC 4724 §2).
    pub end_of_rib: bool,
    /// How many paths each receiver's Adj-RIB-Out gains with this batch
    /// (negative: loses): new NLRI announced minus NLRI withdrawn, a
    /// replaced path counting 0. The speaker keeps `prefixes_sent` as a
    /// running sum of these instead of walking the table.
    pub adj_out_delta: i64,
}

/// Prefixes sharing one attribute set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// Attributes with NEXT_HOP (IPv4) or MP_REACH_NLRI (family and next hop) filled in.
    pub attrs: Arc<PathAttributes>,
    /// The NLRI.
    pub nlri: Vec<Nlri>,
}

/// Something the speaker must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RibEvent {
    /// The peer sent more prefixes than allowed: close the session with
    /// Cease / Maximum Number of Prefixes Reached (RFC 4486), then call
    /// `peer_down(.., DownKind::Hard, ..)`. Prefixes beyond the limit were dropped.
    MaxPrefixExceeded {
        /// The peer.
        peer: IpAddr,
        /// The configured limit.
        limit: u32,
    },
    /// Stale routes of a restarting peer were removed (End-of-RIB arrived,
    /// or its timer ran out).
    StaleSwept {
        /// The peer.
        peer: IpAddr,
        /// How many paths were removed.
        paths: usize,
    },
    /// Our own restart is over (RFC 4724 §4.1): the FIB has been given the
    /// whole Loc-RIB since, and may now delete BGP routes it was not given.
    RestartComplete,
    /// Import rules changed: ask the peer to send its routes again (RFC 2918).
    RouteRefreshNeeded {
        /// The peer.
        peer: IpAddr,
    },
}

//! Graceful restart (RFC 4724), both roles.
//!
//! Receiving speaker (§4.2): a GR-capable peer's session drops → its routes
//! of the preserved families stay, marked stale, until it comes back and
//! sends End-of-RIB, or its restart time (capped by Calico's
//! `maxRestartTime`) runs out; then they are swept.
//!
//! Restarting speaker (§4.1): after tortie restarts, selection is deferred
//! until the expected peers that come back have sent End-of-RIB — peers that
//! stay down are only waited for `peer_wait`, and nothing waits longer than
//! the Selection_Deferral_Timer — then the FIB gets the whole Loc-RIB and
//! may sweep the routes it kept from before the restart.

use std::net::IpAddr;
use std::time::Duration;

use tortie_bgp_wire::Family;

use crate::adj_out;
use crate::config::{PeerInfo, RestartConfig};
use crate::error::RibError;
use crate::input::UNICAST;
use crate::output::{FibUpdate, Output, RibEvent};
use crate::rib::{fib_view, Changes, Rib, StaleState};
use crate::table::Path;

/// Our own restart in progress (RFC 4724 §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RestartState {
    expected: Vec<IpAddr>,
    deferral_deadline: Duration,
    peer_wait_deadline: Duration,
}

impl RestartState {
    /// Starts the wait at `now`.
    pub(crate) fn new(cfg: &RestartConfig, now: Duration) -> Self {
        RestartState {
            expected: cfg.expected_peers.clone(),
            deferral_deadline: now + cfg.selection_deferral,
            peer_wait_deadline: now + cfg.peer_wait.min(cfg.selection_deferral),
        }
    }

    /// The next time the wait may end by a timer.
    pub(crate) fn next_deadline(&self) -> Duration {
        self.peer_wait_deadline.min(self.deferral_deadline)
    }
}

impl Rib {
    /// While our own restart defers selection, also waits for `peer` (one
    /// configured after the start, e.g. added once the datastore was read);
    /// it counts as staying down until the same `peer_wait` deadline as the
    /// others. No effect once the restart is over.
    pub fn expect_peer(&mut self, peer: IpAddr) {
        if let Some(r) = self.restart.as_mut() {
            if !r.expected.contains(&peer) {
                r.expected.push(peer);
            }
        }
    }

    /// When [`Rib::tick`] must next run (stale timers, our own restart's
    /// deadlines), without running anything: for a caller that has not
    /// had an [`Output`] yet.
    pub fn deadline(&self) -> Option<Duration> {
        self.next_deadline()
    }

    /// RFC 4724 §4.2: keeps `slot`'s routes as stale when it advertised
    /// graceful restart with a non-zero restart time; false = flush instead.
    pub(crate) fn retain_stale(&mut self, slot: u16, now: Duration, changes: &mut Changes) -> bool {
        let Some(s) = self.slot_mut(slot) else {
            return false;
        };
        let Some(cap) = s
            .info
            .graceful_restart
            .as_ref()
            .filter(|c| c.restart_time > 0)
        else {
            return false;
        };
        let families: Vec<Family> = cap
            .families
            .iter()
            .map(|f| f.family)
            .filter(|f| s.info.families.contains(f))
            .collect();
        if families.is_empty() {
            return false;
        }
        let mut restart = Duration::from_secs(u64::from(cap.restart_time));
        if let Some(max) = s.info.max_restart_time {
            restart = restart.min(max);
        }
        s.up = false;
        s.eor.clear();
        s.stale = Some(StaleState {
            families: families.clone(),
            deadline: now + restart,
        });
        // RFC 4724 §4.2: routes of families the peer does not preserve go now.
        let dropped: Vec<Family> = UNICAST
            .into_iter()
            .filter(|f| !families.contains(f))
            .collect();
        self.remove_paths_of(slot, &dropped, changes, |_| true);
        self.mark_stale(slot, &families, changes);
        true
    }

    fn mark_stale(&mut self, slot: u16, families: &[Family], changes: &mut Changes) {
        for family in families {
            for (prefix, before) in self.tables.mark_stale(*family, |p| p.peer == slot) {
                changes.note_with(prefix, Some(before));
            }
        }
    }

    /// The peer in `slot` re-established with `info`. RFC 4724 §4.2: stale
    /// routes of families missing from its new capability, or whose
    /// forwarding state was not preserved (F bit clear), are deleted now; the
    /// others wait for End-of-RIB at most `stale_path_time`. A peer that was
    /// still up lost its old session without telling us: its routes go.
    pub(crate) fn on_reconnect(
        &mut self,
        slot: u16,
        info: &PeerInfo,
        now: Duration,
        changes: &mut Changes,
    ) {
        let stale_path_time = self.cfg.stale_path_time;
        let Some(s) = self.slot_mut(slot) else {
            return;
        };
        let Some(stale) = s.stale.take().filter(|_| !s.up) else {
            self.remove_paths_of(slot, &UNICAST, changes, |_| true);
            return;
        };
        let kept: Vec<Family> = stale
            .families
            .iter()
            .copied()
            .filter(|f| {
                info.graceful_restart.as_ref().is_some_and(|c| {
                    c.families
                        .iter()
                        .any(|g| g.family == *f && g.forwarding_preserved)
                })
            })
            .collect();
        let gone: Vec<Family> = stale
            .families
            .iter()
            .copied()
            .filter(|f| !kept.contains(f))
            .collect();
        if !kept.is_empty() {
            s.stale = Some(StaleState {
                families: kept,
                deadline: now + stale_path_time,
            });
        }
        self.remove_paths_of(slot, &gone, changes, Path::is_stale);
    }

    /// End-of-RIB from `peer` for `family` (RFC 4724 §2): its remaining stale
    /// routes of that family are swept, and our own restart may complete.
    pub fn end_of_rib(
        &mut self,
        peer: IpAddr,
        family: Family,
        now: Duration,
    ) -> Result<Output, RibError> {
        let slot = self.slot_index(peer)?;
        let mut changes = Changes::default();
        let mut swept = None;
        if let Some(s) = self.slot_mut(slot) {
            if !s.eor.contains(&family) {
                s.eor.push(family);
            }
            if let Some(st) = s.stale.as_mut().filter(|st| st.families.contains(&family)) {
                st.families.retain(|f| *f != family);
                if st.families.is_empty() {
                    s.stale = None;
                }
                swept = Some(self.remove_paths_of(slot, &[family], &mut changes, Path::is_stale));
            }
        }
        let mut out = self.finish(changes);
        if let Some(paths) = swept {
            out.events.push(RibEvent::StaleSwept { peer, paths });
        }
        self.check_restart_done(now, &mut out);
        Ok(out)
    }

    /// Runs the timers due at `now`: restart times of peers that stayed away,
    /// stale path times of peers that never sent End-of-RIB, and our own
    /// restart's deferral.
    pub fn tick(&mut self, now: Duration) -> Output {
        let due: Vec<u16> = (0..self.peers.len())
            .filter(|&i| {
                self.peers[i]
                    .as_ref()
                    .and_then(|s| s.stale.as_ref())
                    .is_some_and(|st| st.deadline <= now)
            })
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        let mut changes = Changes::default();
        let mut events = Vec::new();
        for slot in due {
            let Some(s) = self.slot_mut(slot) else {
                continue;
            };
            s.stale = None;
            let (peer, up) = (s.info.addr, s.up);
            let paths = self.remove_paths_of(slot, &UNICAST, &mut changes, Path::is_stale);
            // RFC 4724 §4.2: the peer did not come back in time: forget it.
            if !up {
                self.flush_peer(slot, &mut changes);
            }
            events.push(RibEvent::StaleSwept { peer, paths });
        }
        let mut out = self.finish(changes);
        out.events.extend(events);
        self.check_restart_done(now, &mut out);
        out
    }

    /// Ends our own restart when every expected peer has sent End-of-RIB for
    /// all its families (or stayed down past `peer_wait`, or came back without
    /// the capability or restarting itself), or at the deferral deadline.
    /// With no expected peer at all, it ends at `peer_wait`.
    pub(crate) fn check_restart_done(&mut self, now: Duration, out: &mut Output) {
        let Some(r) = self.restart.as_ref() else {
            out.next_deadline = self.next_deadline();
            return;
        };
        let settled = |peer: &IpAddr| match self.slot_of(*peer).filter(|s| s.up) {
            // RFC 4724 §4.1: peers without the capability, or restarting
            // themselves (R bit), are not waited for.
            Some(s)
                if s.info
                    .graceful_restart
                    .as_ref()
                    .is_none_or(|c| c.restart_state) =>
            {
                true
            }
            Some(s) => s.info.families.iter().all(|f| s.eor.contains(f)),
            None => now >= r.peer_wait_deadline,
        };
        // No expected peer yet may mean none configured yet (the owner adds
        // them once it has read its datastore): wait for `peer_wait` then.
        let nothing_yet = r.expected.is_empty() && now < r.peer_wait_deadline;
        if now < r.deferral_deadline && (nothing_yet || !r.expected.iter().all(settled)) {
            out.next_deadline = self.next_deadline();
            return;
        }
        self.restart = None;
        for family in UNICAST {
            let mut prefixes = self.tables.prefixes(family);
            prefixes.sort();
            for prefix in prefixes {
                if let Some(route) = fib_view(self.tables.get(&prefix)) {
                    out.fib.push(FibUpdate {
                        prefix,
                        route: Some(route),
                    });
                }
            }
        }
        out.events.push(RibEvent::RestartComplete);
        let up: Vec<u16> = (0..self.peers.len())
            .filter(|&i| self.peers[i].as_ref().is_some_and(|s| s.up))
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        for slot in up {
            out.updates.extend(adj_out::full_dump(self, slot));
        }
        out.next_deadline = self.next_deadline();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RibConfig;
    use crate::output::RibEvent;

    fn restarting(expected: &[&str]) -> Rib {
        let mut cfg = RibConfig::new(64512, "10.0.0.1".parse().unwrap());
        cfg.restart = Some(RestartConfig {
            expected_peers: expected.iter().map(|s| s.parse().unwrap()).collect(),
            selection_deferral: Duration::from_secs(300),
            peer_wait: Duration::from_secs(30),
        });
        Rib::new(cfg, Duration::ZERO)
    }

    #[test]
    fn the_deadline_is_known_before_any_input() {
        let r = restarting(&[]);
        assert_eq!(r.deadline(), Some(Duration::from_secs(30)));
        assert_eq!(RibConfig::new(1, "10.0.0.1".parse().unwrap()).restart, None);
    }

    #[test]
    fn a_peer_added_during_the_restart_is_waited_for() {
        let mut r = restarting(&[]);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        r.expect_peer(peer);
        r.expect_peer(peer);
        // The added peer is up without End-of-RIB: not settled at peer_wait.
        let mut info = PeerInfo::new(peer, 64512, "10.0.0.2".parse().unwrap(), 64512);
        info.families = vec![Family::IPV4_UNICAST];
        info.graceful_restart = Some(tortie_bgp_wire::GracefulRestartCap {
            restart_state: false,
            notification: false,
            restart_time: 120,
            families: vec![],
        });
        let out = r.peer_up(info, Duration::ZERO).unwrap();
        assert!(out.events.is_empty());
        assert!(r.tick(Duration::from_secs(31)).events.is_empty());
        assert!(r.is_restarting());
        let out = r
            .end_of_rib(peer, Family::IPV4_UNICAST, Duration::from_secs(32))
            .unwrap();
        assert_eq!(out.events, vec![RibEvent::RestartComplete]);
        // Once over, expecting a peer changes nothing.
        r.expect_peer("10.0.0.3".parse().unwrap());
        assert!(!r.is_restarting());
    }

    #[test]
    fn without_expected_peers_the_restart_ends_at_peer_wait() {
        let mut r = restarting(&[]);
        assert!(r.tick(Duration::from_secs(29)).events.is_empty());
        assert_eq!(
            r.tick(Duration::from_secs(30)).events,
            vec![RibEvent::RestartComplete]
        );
    }
}

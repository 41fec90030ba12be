//! Allocation: addresses from the node's affine blocks, then newly claimed
//! blocks (affinity pending → confirmed), then borrowed from other nodes'
//! blocks unless strict affinity forbids it. Every write is a bounded-retry
//! compare-and-swap; the block and its handle change in one commit.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;

use ipnet::IpNet;
use tortie_model::ipam::{
    AffinityState, AllocationBlock, BlockAffinity, IpamConfig, IpamHandle, HOST_AFFINITY_PREFIX,
};

use crate::block_ops::{self, Owner};
use crate::cas::Attempt;
use crate::error::{Exhaustion, IpamError, Limit, PoolUsage};
use crate::pools::{select_pools, start_index, AllowedUse, IpVersion, PoolView};
use crate::store::{encode, IpamKey, IpamStore, StoreError, TypedStore, Write};

/// Compare-and-swap attempts per object before giving up.
pub const DEFAULT_MAX_RETRIES: u32 = 64;

/// The IPAM algorithm over a store. Holds no state but the store and a
/// hint of the affine blocks this process last found full (see
/// [`Ipam::auto_assign`]), which never decides anything on its own.
#[derive(Debug)]
pub struct Ipam<S> {
    pub(crate) store: S,
    pub(crate) max_retries: u32,
    /// Affine blocks seen full by this process: tried after the others.
    full_hint: Mutex<BTreeSet<IpNet>>,
}

/// An automatic assignment request (Calico's `AutoAssignArgs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignRequest {
    /// The handle that will own the addresses.
    pub handle_id: String,
    /// The requesting node.
    pub node: String,
    /// IPv4 addresses wanted.
    pub num_v4: usize,
    /// IPv6 addresses wanted.
    pub num_v6: usize,
    /// Explicit IPv4 pools (empty: choose automatically).
    pub v4_pools: Vec<IpNet>,
    /// Explicit IPv6 pools (empty: choose automatically).
    pub v6_pools: Vec<IpNet>,
    /// Secondary attributes stored with the allocation.
    pub attrs: BTreeMap<String, String>,
    /// What the addresses are for.
    pub use_: AllowedUse,
}

impl AssignRequest {
    /// A request for `num_v4` IPv4 workload addresses and nothing else.
    pub fn v4(handle_id: &str, node: &str, num_v4: usize) -> Self {
        Self {
            handle_id: handle_id.to_string(),
            node: node.to_string(),
            num_v4,
            num_v6: 0,
            v4_pools: Vec::new(),
            v6_pools: Vec::new(),
            attrs: BTreeMap::new(),
            use_: AllowedUse::Workload,
        }
    }

    /// The owner recorded with the allocation; the `node` attribute (which
    /// `ipam show --show-borrowed` reads) defaults to the requesting node.
    fn owner(&self) -> Owner {
        let mut attrs = self.attrs.clone();
        attrs
            .entry("node".to_string())
            .or_insert_with(|| self.node.clone());
        Owner {
            handle_id: self.handle_id.clone(),
            attrs,
        }
    }
}

/// The addresses an assignment produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assigned {
    /// IPv4 addresses.
    pub v4: Vec<IpAddr>,
    /// IPv6 addresses.
    pub v6: Vec<IpAddr>,
}

/// Which blocks an assignment may take addresses from.
#[derive(Debug, Clone, Copy)]
enum BlockMode<'a> {
    /// Only a block affine to this node.
    Affine(&'a str),
    /// Any block that allows borrowing (no strict affinity).
    Borrow,
}

impl BlockMode<'_> {
    fn allows(&self, b: &AllocationBlock) -> bool {
        !b.deleted
            && match self {
                BlockMode::Affine(node) => b.host() == Some(node),
                BlockMode::Borrow => !b.strict_affinity,
            }
    }
}

/// One version's share of a request, with the pools chosen for it.
struct Want<'a> {
    req: &'a AssignRequest,
    owner: Owner,
    version: IpVersion,
    pools: Vec<PoolView>,
    count: usize,
}

/// The creation of handle `handle_id` owning `n` addresses of `cidr`.
fn new_handle(handle_id: &str, cidr: IpNet, n: usize) -> Write {
    let h = IpamHandle {
        handle_id: handle_id.to_string(),
        block: [(cidr.to_string(), n as u64)].into(),
        deleted: false,
    };
    Write::Create(IpamKey::Handle(handle_id.to_string()), encode(&h))
}

pub(crate) fn handle_write(
    store: &(impl IpamStore + ?Sized),
    handle_id: &str,
    cidr: IpNet,
    delta: i64,
) -> Result<Option<Write>, StoreError> {
    let key = IpamKey::Handle(handle_id.to_string());
    let Some(mut h) = store.get_typed::<IpamHandle>(&key)? else {
        if delta <= 0 {
            return Ok(None);
        }
        let mut block = BTreeMap::new();
        block.insert(cidr.to_string(), delta.unsigned_abs());
        let h = IpamHandle {
            handle_id: handle_id.to_string(),
            block,
            deleted: false,
        };
        return Ok(Some(Write::Create(key, encode(&h))));
    };
    let c = h.value.block.entry(cidr.to_string()).or_insert(0);
    *c = c.saturating_add_signed(delta);
    if *c == 0 {
        h.value.block.remove(&cidr.to_string());
    }
    Ok(Some(if h.value.total() == 0 {
        Write::Delete(key, h.revision)
    } else {
        Write::Update(key, encode(&h.value), h.revision)
    }))
}

impl<S: IpamStore> Ipam<S> {
    /// IPAM over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            max_retries: DEFAULT_MAX_RETRIES,
            full_hint: Mutex::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The IPAM configuration (defaults when none is stored).
    pub fn config(&self) -> Result<IpamConfig, IpamError> {
        Ok(self.store.config()?)
    }

    /// Assigns `num_v4` + `num_v6` addresses to `req.handle_id` from `pools`
    /// (every IPPool, as the caller read them). All or nothing: on failure
    /// nothing stays allocated by this call.
    pub fn auto_assign(
        &self,
        req: &AssignRequest,
        pools: &[PoolView],
    ) -> Result<Assigned, IpamError> {
        let cfg = self.store.config()?;
        let mut out = Assigned::default();
        for (version, count, requested) in [
            (IpVersion::V4, req.num_v4, &req.v4_pools),
            (IpVersion::V6, req.num_v6, &req.v6_pools),
        ] {
            if count == 0 {
                continue;
            }
            let chosen = select_pools(pools, requested, version, req.use_)
                .map_err(|(cidr, why)| IpamError::Pool { cidr, why })?;
            if chosen.is_empty() {
                self.rollback(req, &out)?;
                return Err(IpamError::NoPools {
                    version,
                    node: req.node.clone(),
                });
            }
            let want = Want {
                req,
                owner: req.owner(),
                version,
                pools: chosen,
                count,
            };
            match self.assign_version(&want, &cfg) {
                Ok(ips) if version == IpVersion::V4 => out.v4 = ips,
                Ok(ips) => out.v6 = ips,
                Err(e) => {
                    self.rollback(req, &out)?;
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    fn rollback(&self, req: &AssignRequest, got: &Assigned) -> Result<(), IpamError> {
        let ips: Vec<IpAddr> = got.v4.iter().chain(&got.v6).copied().collect();
        if !ips.is_empty() {
            self.release_owned(&ips, &req.handle_id)?;
        }
        Ok(())
    }

    fn assign_version(&self, w: &Want<'_>, cfg: &IpamConfig) -> Result<Vec<IpAddr>, IpamError> {
        let node = w.req.node.as_str();
        let mut got = self.take_from_affine_blocks(w)?;
        let mut limits = Vec::new();
        if got.len() < w.count && !cfg.auto_allocate_blocks {
            limits.push(Limit::NoAutoAllocate);
        }
        if got.len() < w.count && cfg.auto_allocate_blocks {
            let mut held = self.blocks_held(node, w.version)?;
            while got.len() < w.count {
                let max = cfg.max_blocks_per_host;
                if max > 0 && held >= max as usize {
                    limits.push(Limit::MaxBlocksPerHost(max));
                    break;
                }
                let Some(cidr) = self.claim_block(node, &w.pools, cfg.strict_affinity)? else {
                    break;
                };
                held += 1;
                let more =
                    self.assign_from_block(cidr, w.count - got.len(), w, BlockMode::Affine(node))?;
                got.extend(more);
            }
        }
        if got.len() < w.count && cfg.strict_affinity {
            limits.push(Limit::StrictAffinity);
        } else if got.len() < w.count {
            got.extend(self.borrow(w, w.count - got.len())?);
        }
        if got.len() < w.count {
            let found = got.len();
            self.release_owned(&got, &w.req.handle_id)?;
            let pools = self.usage(&w.pools)?;
            return Err(IpamError::Exhausted(Box::new(Exhaustion {
                version: w.version,
                node: node.to_string(),
                wanted: w.count,
                found,
                pools,
                limits,
            })));
        }
        Ok(got)
    }

    fn blocks_held(&self, node: &str, version: IpVersion) -> Result<usize, IpamError> {
        Ok(self
            .store
            .list_affinities(Some(node))?
            .iter()
            .filter(|(_, c, _)| IpVersion::of(c) == version)
            .count())
    }

    /// Addresses from the node's affine blocks, lowest block first, except
    /// that blocks this process last found full are tried after the others
    /// (a long-running caller then skips reading full blocks one by one); every
    /// affine block is still tried before a new block is claimed.
    fn take_from_affine_blocks(&self, w: &Want<'_>) -> Result<Vec<IpAddr>, IpamError> {
        let node = w.req.node.as_str();
        let mut affs = self.store.list_affinities(Some(node))?;
        affs.retain(|(_, c, _)| w.pools.iter().any(|p| p.cidr.contains(c)));
        affs.sort_by_key(|(_, c, _)| *c);
        {
            let hint = self.full_hint.lock().unwrap_or_else(|p| p.into_inner());
            // Stable: CIDR order within the not-full and the full group.
            affs.sort_by_key(|(_, c, _)| hint.contains(c));
        }
        let mut got = Vec::new();
        for (_, cidr, aff) in affs {
            if got.len() >= w.count {
                break;
            }
            match aff.value.state {
                AffinityState::Confirmed => {}
                AffinityState::Pending => {
                    if !self.settle_pending(node, cidr, aff.revision)? {
                        continue;
                    }
                }
                AffinityState::PendingDeletion => continue,
            }
            let wanted = w.count - got.len();
            let more = self.assign_from_block(cidr, wanted, w, BlockMode::Affine(node))?;
            let mut hint = self.full_hint.lock().unwrap_or_else(|p| p.into_inner());
            if more.len() < wanted {
                hint.insert(cidr);
            } else {
                hint.remove(&cidr);
            }
            drop(hint);
            got.extend(more);
        }
        Ok(got)
    }

    /// A pending affinity left by a crash or an in-flight claim: confirm it
    /// when the block is ours, drop it when another node owns the block,
    /// leave it alone while no block exists. True when the block is usable.
    fn settle_pending(&self, node: &str, cidr: IpNet, rev: u64) -> Result<bool, IpamError> {
        let akey = IpamKey::Affinity {
            node: node.to_string(),
            cidr,
        };
        let Some(b) = self
            .store
            .get_typed::<AllocationBlock>(&IpamKey::Block(cidr))?
        else {
            return Ok(false);
        };
        let ours = b.value.host() == Some(node);
        let write = if ours {
            let confirmed = BlockAffinity {
                state: AffinityState::Confirmed,
                deleted: false,
            };
            Write::Update(akey, encode(&confirmed), rev)
        } else {
            Write::Delete(akey, rev)
        };
        match self.store.commit(&[write]) {
            Ok(_) | Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => Ok(ours),
            Err(e) => Err(e.into()),
        }
    }

    fn assign_from_block(
        &self,
        cidr: IpNet,
        n: usize,
        w: &Want<'_>,
        mode: BlockMode<'_>,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let key = IpamKey::Block(cidr);
        let hkey = IpamKey::Handle(w.owner.handle_id.clone());
        // Most handles are new: try to create it without reading it first;
        // `AlreadyExists` on it switches to read-modify-write.
        let handle_is_new = Cell::new(true);
        let attempt = || {
            let Some(mut b) = self.store.get_typed::<AllocationBlock>(&key)? else {
                return Ok(Attempt::Done(Vec::new()));
            };
            if !mode.allows(&b.value) {
                return Ok(Attempt::Done(Vec::new()));
            }
            let ips = block_ops::assign(&mut b.value, n, &w.owner);
            if ips.is_empty() {
                return Ok(Attempt::Done(ips));
            }
            let mut writes = vec![Write::Update(key.clone(), encode(&b.value), b.revision)];
            let delta = ips.len() as i64;
            writes.extend(if handle_is_new.get() {
                Some(new_handle(&w.owner.handle_id, cidr, ips.len()))
            } else {
                handle_write(&self.store, &w.owner.handle_id, cidr, delta)?
            });
            Ok(Attempt::Commit(writes, ips))
        };
        let on_conflict = |e: &StoreError| match e {
            // The block itself went away (released by its node): nothing here.
            StoreError::NotFound(k) if *k == key => Some(Vec::new()),
            StoreError::AlreadyExists(k) if *k == hkey => {
                handle_is_new.set(false);
                None
            }
            _ => None,
        };
        self.cas_retry_with(&key, attempt, on_conflict)
    }

    /// Claims a free block of `pools` for `node`, starting at a per-node
    /// offset so that nodes rarely race for the same block.
    fn claim_block(
        &self,
        node: &str,
        pools: &[PoolView],
        strict: bool,
    ) -> Result<Option<IpNet>, IpamError> {
        let existing: BTreeSet<IpNet> = self
            .store
            .list(&crate::store::ListScope::Blocks)?
            .into_iter()
            .filter_map(|(k, _)| match k {
                IpamKey::Block(c) => Some(c),
                _ => None,
            })
            .collect();
        for pool in pools {
            let n = pool.num_blocks();
            let start = start_index(node, n);
            let mut i: u128 = 0;
            while i < n {
                let idx = if i < n - start {
                    start + i
                } else {
                    i - (n - start)
                };
                i += 1;
                let Some(cidr) = pool.block_at(idx) else {
                    continue;
                };
                if existing.contains(&cidr) {
                    continue;
                }
                if self.try_claim(node, cidr, strict)? {
                    return Ok(Some(cidr));
                }
                if i > existing.len() as u128 + 1024 {
                    break; // pathological contention: let the caller report it
                }
            }
        }
        Ok(None)
    }

    /// Step 1 writes a pending affinity; step 2 creates the block and
    /// confirms the affinity in one commit. A crash between the two leaves
    /// only a pending affinity, which `ipam check` reports and a later
    /// claim by the same node adopts.
    pub(crate) fn try_claim(
        &self,
        node: &str,
        cidr: IpNet,
        strict: bool,
    ) -> Result<bool, IpamError> {
        let akey = IpamKey::Affinity {
            node: node.to_string(),
            cidr,
        };
        let pending = BlockAffinity::default();
        let arev = match self.store.create_typed(&akey, &pending) {
            Ok(r) => r,
            Err(StoreError::AlreadyExists(_)) => {
                match self.store.get_typed::<BlockAffinity>(&akey)? {
                    Some(a) => a.revision,
                    None => return Ok(false),
                }
            }
            Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let block =
            AllocationBlock::new(cidr, Some(format!("{HOST_AFFINITY_PREFIX}{node}")), strict);
        let confirmed = BlockAffinity {
            state: AffinityState::Confirmed,
            deleted: false,
        };
        let writes = [
            Write::Create(IpamKey::Block(cidr), encode(&block)),
            Write::Update(akey.clone(), encode(&confirmed), arev),
        ];
        match self.store.commit(&writes) {
            Ok(_) => Ok(true),
            Err(
                StoreError::AlreadyExists(_) | StoreError::Conflict(_) | StoreError::NotFound(_),
            ) => {
                let b = self
                    .store
                    .get_typed::<AllocationBlock>(&IpamKey::Block(cidr))?;
                if b.as_ref().and_then(|b| b.value.host()) == Some(node) {
                    return Ok(true); // another process of this node claimed it
                }
                match self.store.commit(&[Write::Delete(akey, arev)]) {
                    Ok(_) | Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    fn borrow(&self, w: &Want<'_>, n: usize) -> Result<Vec<IpAddr>, IpamError> {
        let mut blocks = self.store.list_blocks()?;
        blocks.retain(|b| {
            w.pools.iter().any(|p| p.cidr.contains(&b.value.cidr))
                && b.value.host() != Some(w.req.node.as_str())
                && BlockMode::Borrow.allows(&b.value)
                && !b.value.unallocated.is_empty()
        });
        blocks.sort_by_key(|b| b.value.cidr);
        let mut got = Vec::new();
        for b in blocks {
            if got.len() >= n {
                break;
            }
            got.extend(self.assign_from_block(
                b.value.cidr,
                n - got.len(),
                w,
                BlockMode::Borrow,
            )?);
        }
        Ok(got)
    }

    /// How full each pool is (for errors and `ipam show`).
    pub fn usage(&self, pools: &[PoolView]) -> Result<Vec<PoolUsage>, IpamError> {
        let blocks = self.store.list_blocks()?;
        Ok(pools
            .iter()
            .map(|p| {
                let mine: Vec<_> = blocks
                    .iter()
                    .filter(|b| p.cidr.contains(&b.value.cidr))
                    .collect();
                let host_bits = u32::from(p.cidr.max_prefix_len() - p.cidr.prefix_len());
                PoolUsage {
                    cidr: p.cidr,
                    in_use: mine.iter().map(|b| b.value.in_use() as u128).sum(),
                    capacity: 1u128.checked_shl(host_bits).unwrap_or(u128::MAX),
                    blocks_claimed: mine.len() as u128,
                    blocks_total: p.num_blocks(),
                }
            })
            .collect())
    }

    /// Assigns the specific address `ip` to `owner` on `node`, claiming its
    /// block for the node when the block does not exist yet.
    pub fn assign_ip(
        &self,
        ip: IpAddr,
        owner: &Owner,
        node: &str,
        pools: &[PoolView],
    ) -> Result<(), IpamError> {
        let pool = pools
            .iter()
            .find(|p| p.cidr.contains(&ip))
            .ok_or(IpamError::NotInPool { ip })?;
        let cidr = pool.block_of(ip).ok_or(IpamError::NotInPool { ip })?;
        let key = IpamKey::Block(cidr);
        let strict = self.store.config()?.strict_affinity;
        self.cas_retry(&key, || {
            let Some(mut b) = self.store.get_typed::<AllocationBlock>(&key)? else {
                self.try_claim(node, cidr, strict)?;
                return Ok(Attempt::Again);
            };
            if !block_ops::assign_ip(&mut b.value, ip, owner) {
                let handle = b
                    .value
                    .ip_to_ordinal(ip)
                    .and_then(|o| b.value.handle_of(o))
                    .map(str::to_string);
                return Err(IpamError::AddressInUse { ip, handle });
            }
            let mut writes = vec![Write::Update(key.clone(), encode(&b.value), b.revision)];
            writes.extend(handle_write(&self.store, &owner.handle_id, cidr, 1)?);
            Ok(Attempt::Commit(writes, ()))
        })
    }

    pub(crate) fn release_owned(&self, ips: &[IpAddr], handle: &str) -> Result<(), IpamError> {
        self.release_selected(ips, Some(handle)).map(|_| ())
    }
}

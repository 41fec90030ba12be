//! Pure changes to one allocation block: take free addresses, release
//! addresses, keep the attribute table compact. No store, no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use tortie_model::ipam::{AllocationAttribute, AllocationBlock};

/// The owner recorded with an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    /// The handle (`k8s-pod-network.<containerID>` ...).
    pub handle_id: String,
    /// Secondary attributes (`node`, `namespace`, `pod`, `type`).
    pub attrs: BTreeMap<String, String>,
}

fn attribute_index(block: &mut AllocationBlock, owner: &Owner) -> usize {
    let wanted = AllocationAttribute {
        handle_id: Some(owner.handle_id.clone()),
        secondary: owner.attrs.clone(),
    };
    if let Some(i) = block.attributes.iter().position(|a| *a == wanted) {
        return i;
    }
    block.attributes.push(wanted);
    block.attributes.len() - 1
}

/// Takes up to `n` free addresses from the front of the free list (the ones
/// free the longest) for `owner`. Returns the addresses taken.
pub fn assign(block: &mut AllocationBlock, n: usize, owner: &Owner) -> Vec<IpAddr> {
    let k = n.min(block.unallocated.len());
    if k == 0 {
        return Vec::new();
    }
    let attr = attribute_index(block, owner);
    let taken: Vec<usize> = block.unallocated.drain(..k).collect();
    for &o in &taken {
        block.allocations[o] = Some(attr);
    }
    block.sequence_number += 1;
    taken
        .into_iter()
        .filter_map(|o| block.ordinal_to_ip(o))
        .collect()
}

/// Takes the specific address `ip` for `owner`; false if it is not free
/// (or not in the block).
pub fn assign_ip(block: &mut AllocationBlock, ip: IpAddr, owner: &Owner) -> bool {
    let Some(o) = block.ip_to_ordinal(ip) else {
        return false;
    };
    let Some(pos) = block.unallocated.iter().position(|u| *u == o) else {
        return false;
    };
    let attr = attribute_index(block, owner);
    block.unallocated.remove(pos);
    block.allocations[o] = Some(attr);
    block.sequence_number += 1;
    true
}

/// One address freed from a block, with the handle that owned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freed {
    /// The address.
    pub ip: IpAddr,
    /// Its former handle (`None` for allocations without one).
    pub handle_id: Option<String>,
}

/// What to release from a block.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// These addresses (others in the list are ignored).
    Ips(&'a [IpAddr]),
    /// Every address owned by this handle.
    Handle(&'a str),
    /// These addresses, but only while `handle` still owns them.
    IpsOwnedBy(&'a [IpAddr], &'a str),
}

fn selected(block: &AllocationBlock, o: usize, sel: Selection<'_>) -> bool {
    let owned_by = |h: &str| block.handle_of(o) == Some(h);
    let listed = |ips: &[IpAddr]| block.ordinal_to_ip(o).is_some_and(|ip| ips.contains(&ip));
    match sel {
        Selection::Ips(ips) => listed(ips),
        Selection::Handle(h) => owned_by(h),
        Selection::IpsOwnedBy(ips, h) => listed(ips) && owned_by(h),
    }
}

/// Frees the selected allocated addresses: they go to the back of the free
/// list (reused last) and unreferenced attributes are dropped.
pub fn release(block: &mut AllocationBlock, sel: Selection<'_>) -> Vec<Freed> {
    let mut freed = Vec::new();
    for o in 0..block.size() {
        if block.allocations[o].is_none() || !selected(block, o, sel) {
            continue;
        }
        let handle_id = block.handle_of(o).map(str::to_string);
        block.allocations[o] = None;
        block.unallocated.push(o);
        if let Some(ip) = block.ordinal_to_ip(o) {
            freed.push(Freed { ip, handle_id });
        }
    }
    if !freed.is_empty() {
        compact_attributes(block);
        block.sequence_number += 1;
    }
    freed
}

/// Drops attributes no allocation refers to, renumbering the references.
pub fn compact_attributes(block: &mut AllocationBlock) {
    let mut used = vec![false; block.attributes.len()];
    for i in block.allocations.iter().flatten() {
        if let Some(u) = used.get_mut(*i) {
            *u = true;
        }
    }
    let mut remap = vec![0usize; used.len()];
    let mut next = 0;
    for (i, u) in used.iter().enumerate() {
        remap[i] = next;
        if *u {
            next += 1;
        }
    }
    let mut i = 0;
    block.attributes.retain(|_| {
        let keep = used[i];
        i += 1;
        keep
    });
    for a in block.allocations.iter_mut().flatten() {
        *a = remap.get(*a).copied().unwrap_or(*a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(h: &str) -> Owner {
        Owner {
            handle_id: h.into(),
            attrs: BTreeMap::new(),
        }
    }

    fn block() -> AllocationBlock {
        AllocationBlock::new(
            "10.0.0.0/29".parse().unwrap(),
            Some("host:n1".into()),
            false,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn assign_takes_addresses_in_order_and_shares_one_attribute_per_owner() {
        let mut b = block();
        assert_eq!(
            assign(&mut b, 2, &owner("a")),
            vec![ip("10.0.0.0"), ip("10.0.0.1")]
        );
        assert_eq!(assign(&mut b, 1, &owner("a")), vec![ip("10.0.0.2")]);
        assert_eq!(b.attributes.len(), 1);
        assert_eq!(assign(&mut b, 10, &owner("b")).len(), 5);
        assert!(assign(&mut b, 1, &owner("c")).is_empty());
        assert_eq!(b.sequence_number, 3);
    }

    #[test]
    fn released_addresses_are_reused_oldest_first() {
        let mut b = block();
        assign(&mut b, 8, &owner("a"));
        release(&mut b, Selection::Ips(&[ip("10.0.0.5")]));
        release(&mut b, Selection::Ips(&[ip("10.0.0.2")]));
        assert_eq!(assign(&mut b, 1, &owner("b")), vec![ip("10.0.0.5")]);
        assert_eq!(assign(&mut b, 1, &owner("b")), vec![ip("10.0.0.2")]);
    }

    #[test]
    fn release_by_handle_frees_only_that_handle_and_compacts_attributes() {
        let mut b = block();
        assign(&mut b, 2, &owner("a"));
        assign(&mut b, 2, &owner("b"));
        let freed = release(&mut b, Selection::Handle("a"));
        assert_eq!(freed.len(), 2);
        assert_eq!(freed[0].handle_id.as_deref(), Some("a"));
        assert_eq!(b.attributes.len(), 1);
        assert_eq!(b.handle_of(2), Some("b"));
        assert_eq!(b.in_use(), 2);
    }

    #[test]
    fn release_owned_by_skips_addresses_reassigned_to_another_handle() {
        let mut b = block();
        assign(&mut b, 1, &owner("a"));
        let freed = release(&mut b, Selection::IpsOwnedBy(&[ip("10.0.0.0")], "z"));
        assert!(freed.is_empty());
        assert_eq!(b.in_use(), 1);
    }

    #[test]
    fn assign_ip_takes_only_a_free_address() {
        let mut b = block();
        assert!(assign_ip(&mut b, ip("10.0.0.3"), &owner("a")));
        assert!(!assign_ip(&mut b, ip("10.0.0.3"), &owner("b")));
        assert!(!assign_ip(&mut b, ip("10.0.1.3"), &owner("b")));
        assert_eq!(b.handle_of(3), Some("a"));
        assert!(!b.unallocated.contains(&3));
    }
}

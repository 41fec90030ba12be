//! `IPPool`: a range of pod addresses, how it is split into blocks and how
//! traffic to it is encapsulated.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Checker, FieldError, Reason};
use crate::meta::{resource_serde, ObjectMeta};
use crate::selector::{Labels, Selector};
use crate::validate;

/// An `IPPool` resource (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPool {
    /// Name, labels and datastore bookkeeping.
    pub metadata: ObjectMeta,
    /// The pool itself.
    pub spec: IpPoolSpec,
}
resource_serde!(IpPool, IpPoolSpec, "IPPool");

/// How packets to a pool's addresses are encapsulated between nodes
/// (Calico's `IPIPMode` and `VXLANMode` share these values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum EncapMode {
    /// Never encapsulate: route natively (BGP).
    #[default]
    Never,
    /// Always encapsulate.
    Always,
    /// Encapsulate only towards nodes on another subnet.
    CrossSubnet,
}

impl EncapMode {
    /// True for `Always` and `CrossSubnet`.
    pub fn is_enabled(self) -> bool {
        self != EncapMode::Never
    }
}

/// What addresses from a pool may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AllowedUse {
    /// Pod (workload) addresses.
    Workload,
    /// Tunnel device addresses (IPIP `tunl0`, VXLAN).
    Tunnel,
    /// Service LoadBalancer addresses.
    LoadBalancer,
}

/// Whether IPAM hands out a pool's addresses without being asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum AssignmentMode {
    /// Used for any allocation that does not name a pool.
    #[default]
    Automatic,
    /// Used only when an allocation names this pool.
    Manual,
}

/// `IPPool.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPoolSpec {
    /// The pool's prefix, host bits zero (e.g. `10.244.0.0/16`).
    pub cidr: IpNet,
    /// Prefix length of the blocks IPAM carves out of the pool
    /// (default 26 for IPv4, 122 for IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    /// IPIP encapsulation (default `Never`; IPv4 pools only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_mode: Option<EncapMode>,
    /// VXLAN encapsulation (default `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mode: Option<EncapMode>,
    /// Masquerade traffic from the pool to destinations outside all pools.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nat_outgoing: bool,
    /// IPAM hands out no new addresses from a disabled pool.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// Do not advertise the pool's routes over BGP.
    #[serde(rename = "disableBGPExport", default, skip_serializing_if = "is_false")]
    pub disable_bgp_export: bool,
    /// Nodes that may allocate from the pool (selector; default `all()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Namespaces whose pods may allocate from the pool (selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// What the addresses may be used for (default `[Workload, Tunnel]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_uses: Vec<AllowedUse>,
    /// Automatic or manual assignment (default `Automatic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_mode: Option<AssignmentMode>,
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// Default block size of IPv4 pools.
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
/// Default block size of IPv6 pools.
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;

impl IpPoolSpec {
    /// A spec with only the CIDR set; everything else takes its default.
    pub fn new(cidr: IpNet) -> Self {
        Self {
            cidr,
            block_size: None,
            ipip_mode: None,
            vxlan_mode: None,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
            node_selector: None,
            namespace_selector: None,
            allowed_uses: Vec::new(),
            assignment_mode: None,
        }
    }

    /// The effective block size (26 for IPv4, 122 for IPv6 when unset).
    pub fn block_size(&self) -> u8 {
        self.block_size.unwrap_or(match self.cidr {
            IpNet::V4(_) => DEFAULT_BLOCK_SIZE_V4,
            IpNet::V6(_) => DEFAULT_BLOCK_SIZE_V6,
        })
    }

    /// The effective IPIP mode.
    pub fn ipip_mode(&self) -> EncapMode {
        self.ipip_mode.unwrap_or_default()
    }

    /// The effective VXLAN mode.
    pub fn vxlan_mode(&self) -> EncapMode {
        self.vxlan_mode.unwrap_or_default()
    }

    /// The effective node selector text.
    pub fn node_selector(&self) -> &str {
        self.node_selector.as_deref().unwrap_or("all()")
    }

    /// The effective allowed uses.
    pub fn allowed_uses(&self) -> Vec<AllowedUse> {
        if self.allowed_uses.is_empty() {
            vec![AllowedUse::Workload, AllowedUse::Tunnel]
        } else {
            self.allowed_uses.clone()
        }
    }

    /// True if a node with these labels may allocate from the pool. A
    /// selector that does not parse selects nothing (validation rejects it).
    pub fn selects_node<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        Selector::parse(self.node_selector()).is_ok_and(|s| s.matches(labels))
    }

    /// True if addresses may be used for `what`.
    pub fn allows(&self, what: AllowedUse) -> bool {
        self.allowed_uses().contains(&what)
    }
}

impl IpPool {
    /// A pool named `name` over `cidr`, all else default.
    pub fn new(name: impl Into<String>, cidr: IpNet) -> Self {
        Self {
            metadata: ObjectMeta::named(name),
            spec: IpPoolSpec::new(cidr),
        }
    }

    /// True if the two pools share any address (Calico refuses a pool that
    /// overlaps an existing one).
    pub fn overlaps(&self, other: &IpPool) -> bool {
        overlaps(&self.spec.cidr.trunc(), &other.spec.cidr.trunc())
    }

    /// The error to report when this pool overlaps `other`.
    pub fn overlap_error(&self, other: &IpPool) -> FieldError {
        let mut c = Checker::new(format!("IPPool({})", self.metadata.name));
        let what = format!("IPPool({}) {}", other.metadata.name, other.spec.cidr);
        c.reject_display(
            "spec.cidr",
            self.spec.cidr,
            Reason::Overlaps { other: what },
        );
        c.finish().remove(0)
    }

    /// Fills every defaulted field so that the stored object is complete.
    pub fn apply_defaults(&mut self) {
        let s = &mut self.spec;
        s.block_size = Some(s.block_size());
        s.ipip_mode = Some(s.ipip_mode());
        s.vxlan_mode = Some(s.vxlan_mode());
        s.node_selector = Some(s.node_selector().to_owned());
        s.allowed_uses = s.allowed_uses();
        s.assignment_mode = Some(s.assignment_mode.unwrap_or_default());
    }

    /// Checks the pool the way Calico's validator does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("IPPool({})", self.metadata.name));
        validate::check_meta(&mut c, &self.metadata);
        let s = &self.spec;
        check_cidr(&mut c, s);
        check_block_size(&mut c, s);
        check_encapsulation(&mut c, s);
        validate::check_selector(&mut c, "spec.nodeSelector", s.node_selector.as_deref());
        validate::check_selector(
            &mut c,
            "spec.namespaceSelector",
            s.namespace_selector.as_deref(),
        );
        check_allowed_uses(&mut c, s);
        c.finish()
    }
}

/// Ranges no pool may overlap: (name, range).
const RESERVED: [(&str, &str); 6] = [
    ("link-local", "169.254.0.0/16"),
    ("link-local", "fe80::/10"),
    ("loopback", "127.0.0.0/8"),
    ("loopback", "::1/128"),
    ("multicast", "224.0.0.0/4"),
    ("multicast", "ff00::/8"),
];

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_cidr(c: &mut Checker, s: &IpPoolSpec) {
    validate::check_masked(c, "spec.cidr", &s.cidr);
    for (what, range) in RESERVED {
        let reserved: IpNet = range.parse().expect("constant CIDR");
        if overlaps(&s.cidr.trunc(), &reserved) {
            c.reject_display("spec.cidr", s.cidr, Reason::ReservedRange { what, range });
        }
    }
}

fn check_block_size(c: &mut Checker, s: &IpPoolSpec) {
    let (min, max, context) = match s.cidr {
        IpNet::V4(_) => (20, 32, " for an IPv4 pool"),
        IpNet::V6(_) => (116, 128, " for an IPv6 pool"),
    };
    let bs = s.block_size();
    if !(min..=max).contains(&bs) {
        let reason = Reason::OutOfRange {
            min: u64::from(min),
            max: u64::from(max),
            context,
        };
        c.reject_display("spec.blockSize", bs, reason);
    } else if !s.disabled && s.cidr.prefix_len() > bs {
        let reason = Reason::PoolSmallerThanBlock { block_size: bs };
        c.reject_display("spec.cidr", s.cidr, reason);
    }
}

fn check_encapsulation(c: &mut Checker, s: &IpPoolSpec) {
    if matches!(s.cidr, IpNet::V6(_)) && s.ipip_mode().is_enabled() {
        c.reject(
            "spec.ipipMode",
            s.ipip_mode(),
            Reason::NotOnIpv6 { what: "IPIP" },
        );
    }
    if s.ipip_mode().is_enabled() && s.vxlan_mode().is_enabled() {
        let reason = Reason::Exclusive {
            other: "spec.vxlanMode",
        };
        c.reject("spec.ipipMode", s.ipip_mode(), reason);
    }
}

fn check_allowed_uses(c: &mut Checker, s: &IpPoolSpec) {
    let uses = &s.allowed_uses;
    if uses.contains(&AllowedUse::LoadBalancer) && uses.len() > 1 {
        c.reject(
            "spec.allowedUses",
            uses,
            Reason::NotAllowed("LoadBalancer cannot be combined with other uses"),
        );
    }
    if uses.contains(&AllowedUse::Tunnel) && s.namespace_selector.is_some() {
        let reason = Reason::Exclusive {
            other: "spec.allowedUses Tunnel",
        };
        c.reject("spec.namespaceSelector", &s.namespace_selector, reason);
    }
}

#[cfg(test)]
mod tests;

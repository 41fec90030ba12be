//! Validation errors: the field path, the offending value, and what would
//! be valid.

use std::fmt;

use crate::selector::SelectorError;

/// One invalid field of one resource, e.g.
/// `IPPool(pool-a).spec.blockSize: 33 is invalid: must be between 20 and 32 for an IPv4 pool`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {value} is invalid: {reason}")]
pub struct FieldError {
    /// `Kind(name).field.path` of the rejected field.
    pub path: String,
    /// The rejected value as the user wrote it (quoted when a string).
    pub value: String,
    /// What is wrong and what would be valid.
    pub reason: Reason,
}

/// What is wrong with a field, phrased so that the fix is clear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// A number outside its allowed range.
    #[error("must be between {min} and {max}{context}")]
    OutOfRange {
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
        /// Extra context such as " for an IPv4 pool" (may be empty).
        context: &'static str,
    },
    /// A CIDR with host bits set.
    #[error("host bits must be zero; use {masked}")]
    NotMasked {
        /// The same prefix with the host bits cleared.
        masked: String,
    },
    /// A pool CIDR that overlaps a range which cannot carry pod traffic.
    #[error("overlaps the {what} range {range}; use a routable unicast range")]
    ReservedRange {
        /// Name of the reserved range ("link-local", "loopback", "multicast").
        what: &'static str,
        /// The reserved range itself.
        range: &'static str,
    },
    /// A pool prefix longer than its block size.
    #[error("the pool is smaller than one block (/{block_size}); use a pool prefix of at most /{block_size} or a larger blockSize")]
    PoolSmallerThanBlock {
        /// Effective block size of the pool.
        block_size: u8,
    },
    /// An encapsulation that the address family does not support.
    #[error("{what} is not supported on an IPv6 pool; use Never")]
    NotOnIpv6 {
        /// "IPIP" or "VXLAN".
        what: &'static str,
    },
    /// Two settings that cannot be combined.
    #[error("cannot be used together with {other}; set only one of them")]
    Exclusive {
        /// Path (relative to the resource) of the conflicting field.
        other: &'static str,
    },
    /// A selector that does not parse.
    #[error("{0}")]
    Selector(#[from] SelectorError),
    /// A resource name that is not a DNS-1123 subdomain.
    #[error("must be a DNS-1123 subdomain: at most 253 lower case alphanumerics, '-' or '.', starting and ending with an alphanumeric")]
    NotDns1123Subdomain,
    /// A name that must be a single DNS-1123 label.
    #[error("must be a DNS-1123 label: at most 63 lower case alphanumerics or '-', starting and ending with an alphanumeric")]
    NotDns1123Label,
    /// A label or annotation key that is not a Kubernetes qualified name.
    #[error("must be a qualified name: an optional DNS subdomain prefix and '/', then at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric")]
    NotQualifiedName,
    /// A label value that Kubernetes would refuse.
    #[error("must be empty or at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric")]
    NotLabelValue,
    /// A BGP community value in the wrong format.
    #[error("must be `aa:nn` (two 16-bit numbers) or `aa:nn:mm` (three 32-bit numbers)")]
    NotCommunity,
    /// A community name that is neither defined nor a literal value.
    #[error("is neither a name defined in spec.communities nor a value `aa:nn` / `aa:nn:mm`")]
    UnknownCommunity,
    /// A field that must be set.
    #[error("is required")]
    Required,
    /// A field that is not allowed in this position.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// An address of the wrong family or kind.
    #[error("must be {expected}")]
    WrongAddress {
        /// What kind of address would be valid.
        expected: &'static str,
    },
    /// A MAC address in the wrong format.
    #[error("must be a MAC address such as 66:ad:ab:fe:12:34")]
    NotMac,
    /// An interface name the kernel would refuse.
    #[error("must be 1 to 15 characters without '/', ':' or whitespace")]
    NotInterfaceName,
    /// A pool range that overlaps another pool's.
    #[error("overlaps {other}; pool ranges must be disjoint")]
    Overlaps {
        /// `IPPool(name) cidr` of the other pool.
        other: String,
    },
    /// A field name the kind does not define.
    #[error("is not a field of this kind in Calico's API; check the spelling (names are camelCase, e.g. vxlanVNI)")]
    UnknownField,
    /// A route protocol number that another program's routes carry.
    #[error("is the route protocol of {by}: routes of that number would be taken as tortie's; pick a number no routing daemon here uses (tortie's defaults are 80 and 84)")]
    RouteProtocolInUse {
        /// Who uses the number.
        by: &'static str,
    },
    /// A string not among the accepted values.
    #[error("must be one of {allowed}")]
    NotOneOf {
        /// The accepted values, comma separated.
        allowed: &'static str,
    },
    /// A port name that is not a Kubernetes IANA service name.
    #[error("must be a port name: 1 to 15 lower case alphanumerics or '-', with at least one letter, no leading, trailing or doubled '-'")]
    NotPortName,
    /// A Calico field tortie does not implement (refused rather than ignored).
    #[error("is not supported by tortie: {0}; remove the field")]
    Unsupported(&'static str),
    /// A value that is invalid for a reason stated in words.
    #[error("{0}")]
    Invalid(String),
}

/// Collects the field errors of one resource under its `Kind(name)` prefix.
#[derive(Debug)]
pub(crate) struct Checker {
    prefix: String,
    errors: Vec<FieldError>,
}

impl Checker {
    /// Starts collecting for the resource identified by `prefix`.
    pub(crate) fn new(prefix: String) -> Self {
        Self {
            prefix,
            errors: Vec::new(),
        }
    }

    /// Records that `field` (relative, e.g. `spec.cidr`) holds an invalid value.
    pub(crate) fn reject(&mut self, field: &str, value: impl fmt::Debug, reason: Reason) {
        self.errors.push(FieldError {
            path: format!("{}.{}", self.prefix, field),
            value: format!("{value:?}"),
            reason,
        });
    }

    /// Records a rejection whose value is already formatted.
    pub(crate) fn reject_display(&mut self, field: &str, value: impl fmt::Display, reason: Reason) {
        self.errors.push(FieldError {
            path: format!("{}.{}", self.prefix, field),
            value: value.to_string(),
            reason,
        });
    }

    /// The collected errors; empty when the resource is valid.
    pub(crate) fn finish(self) -> Vec<FieldError> {
        self.errors
    }
}

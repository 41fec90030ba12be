//! Field checks shared by the resource kinds (names, labels, selectors,
//! addresses, communities), following Calico's validator.

use ipnet::IpNet;

use crate::error::{Checker, Reason};
use crate::meta::ObjectMeta;
use crate::selector::Selector;

/// Longest DNS-1123 subdomain (Kubernetes `DNS1123SubdomainMaxLength`).
const MAX_SUBDOMAIN: usize = 253;
/// Longest label name part or label value.
const MAX_LABEL: usize = 63;

/// True if `s` is a DNS-1123 subdomain: dot-separated labels of lower case
/// alphanumerics and '-', each starting and ending with an alphanumeric.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SUBDOMAIN && s.split('.').all(is_dns1123_label_part)
}

/// True if `s` is a DNS-1123 label: at most 63 lower case alphanumerics or
/// '-', starting and ending with an alphanumeric (no dots).
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= MAX_LABEL && is_dns1123_label_part(s)
}

fn is_dns1123_label_part(part: &str) -> bool {
    let b = part.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// True for a label name part or label value body: alphanumerics, '-', '_'
/// and '.', starting and ending with an alphanumeric, at most 63 bytes.
fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// True if `key` is a Kubernetes qualified name (`[prefix/]name`).
pub fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_label_token(name),
        None => is_label_token(key),
    }
}

/// True if `value` is a valid Kubernetes label value (may be empty).
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_label_token(value)
}

/// Checks the name, labels and annotation keys of a resource.
pub(crate) fn check_meta(c: &mut Checker, meta: &ObjectMeta) {
    if meta.name.is_empty() {
        c.reject("metadata.name", "", Reason::Required);
    } else if !is_dns1123_subdomain(&meta.name) {
        c.reject("metadata.name", &meta.name, Reason::NotDns1123Subdomain);
    }
    for (k, v) in &meta.labels {
        if !is_qualified_name(k) {
            c.reject(
                &format!("metadata.labels[{k}]"),
                k,
                Reason::NotQualifiedName,
            );
        }
        if !is_label_value(v) {
            c.reject(&format!("metadata.labels[{k}]"), v, Reason::NotLabelValue);
        }
    }
    for k in meta.annotations.keys() {
        if !is_qualified_name(&k.to_ascii_lowercase()) {
            c.reject(
                &format!("metadata.annotations[{k}]"),
                k,
                Reason::NotQualifiedName,
            );
        }
    }
}

/// Checks that an optional selector parses.
pub(crate) fn check_selector(c: &mut Checker, field: &str, selector: Option<&str>) {
    if let Some(s) = selector {
        if let Err(e) = Selector::parse(s) {
            c.reject(field, s, Reason::Selector(e));
        }
    }
}

/// Checks that a name-valued reference (node name, filter name) is a
/// DNS-1123 subdomain.
pub(crate) fn check_name_ref(c: &mut Checker, field: &str, name: Option<&str>) {
    if let Some(n) = name {
        if !is_dns1123_subdomain(n) {
            c.reject(field, n, Reason::NotDns1123Subdomain);
        }
    }
}

/// Checks that a CIDR has no host bits set.
pub(crate) fn check_masked(c: &mut Checker, field: &str, cidr: &IpNet) {
    if cidr.trunc() != *cidr {
        c.reject_display(
            field,
            cidr,
            Reason::NotMasked {
                masked: cidr.trunc().to_string(),
            },
        );
    }
}

/// True if `v` is `aa:nn` with 16-bit parts or `aa:nn:mm` with 32-bit parts.
pub fn is_community_value(v: &str) -> bool {
    let parts: Vec<&str> = v.split(':').collect();
    let all_digits = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    all_digits
        && match parts.len() {
            2 => parts.iter().all(|p| p.parse::<u16>().is_ok()),
            3 => parts.iter().all(|p| p.parse::<u32>().is_ok()),
            _ => false,
        }
}

/// True if `mac` is six hex octets separated by ':' or '-'.
pub fn is_mac(mac: &str) -> bool {
    let sep = if mac.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = mac.split(sep).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// True if the kernel would accept `name` as an interface name.
pub fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains_follow_kubernetes_rules() {
        for ok in ["a", "pool-a", "node1.example.com", "0abc"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", "Pool", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn label_keys_may_carry_a_dns_prefix() {
        assert!(is_qualified_name("kubernetes.io/hostname"));
        assert!(is_qualified_name("rack"));
        assert!(is_qualified_name("My_Key.x"));
        assert!(!is_qualified_name("/x"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(!is_qualified_name(&"k".repeat(64)));
        assert!(is_label_value(""));
        assert!(!is_label_value("a b"));
    }

    #[test]
    fn community_values_are_standard_or_large() {
        assert!(is_community_value("65001:100"));
        assert!(is_community_value("4200000000:1:2"));
        assert!(!is_community_value("65536:1"));
        assert!(!is_community_value("1"));
        assert!(!is_community_value("1:2:3:4"));
        assert!(!is_community_value("a:b"));
    }

    #[test]
    fn macs_and_interface_names() {
        assert!(is_mac("66:ad:ab:fe:12:34"));
        assert!(is_mac("66-AD-AB-FE-12-34"));
        assert!(!is_mac("66:ad:ab:fe:12"));
        assert!(is_interface_name("cali1234567890a"));
        assert!(!is_interface_name("cali1234567890ab"));
        assert!(!is_interface_name("eth/0"));
    }
}

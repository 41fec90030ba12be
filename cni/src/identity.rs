//! Who an attachment belongs to, and the WorkloadEndpoint name and
//! namespace derived from that, decided as Calico's CNI plugin decides
//! (`GetIdentifiers`, `CalculateWorkloadEndpointName`):
//!
//! - `K8S_POD_NAMESPACE` **and** `K8S_POD_NAME` given (a Kubernetes
//!   runtime): orchestrator `k8s`, `<node>-k8s-<pod>-<iface>` in the pod's
//!   namespace;
//! - otherwise (podman passes only `K8S_POD_NAME`, plain CNI callers pass
//!   nothing): orchestrator `cni`, `<node>-cni-<containerID>-<iface>` in
//!   namespace `default`.
//!
//! Each part's `-` is doubled, so the name splits back unambiguously. A part
//! that is not already usable in a DNS-1123 name (upper case, `_`, too long
//! for the 253-character limit, ...) is escaped the way Calico's name
//! converter does it: lower-cased, other characters to `-`, then a `-` and
//! the first 8 hex digits of the sha1 of the original appended, so the
//! result is valid, stable and (but for a sha1 prefix collision) unique.
//! Names Kubernetes itself accepts are kept unchanged, so for pods the name
//! is exactly Calico's.
//!
//! Pure: no I/O.

use sha1::{Digest, Sha1};

use crate::env::CniArgs;
use crate::error::CniError;

/// Orchestrator of attachments with a Kubernetes pod identity.
pub const ORCHESTRATOR_K8S: &str = "k8s";
/// Orchestrator of every other attachment (Calico's name for it).
pub const ORCHESTRATOR_CNI: &str = "cni";
/// The namespace of `cni` attachments (Calico's choice).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Longest resource name (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;
/// Longest namespace (a DNS-1123 label; also the label value limit).
const MAX_LABEL: usize = 63;
/// Hex digits of the sha1 qualifier of an escaped part (Calico's 8).
const QUALIFIER: usize = 8;
/// The most an escaped interface name may take of the endpoint name.
const MAX_ENDPOINT_PART: usize = 32;

/// The WorkloadEndpoint identity of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointId {
    /// `k8s` or `cni`.
    pub orchestrator: &'static str,
    /// The endpoint's namespace (a DNS-1123 label).
    pub namespace: String,
    /// `spec.pod` (`k8s` only; escaped when not a valid name).
    pub pod: String,
    /// `spec.workload`: the runtime's container name (`cni` with
    /// `K8S_POD_NAME` only, e.g. podman's `happy_mcnulty`, escaped).
    pub workload: String,
    /// `metadata.name`.
    pub name: String,
}

/// The identity of the attachment (`container_id`, `ifname`) on `node`.
///
/// Fails (code 7, naming `nodename`) only when the node name itself cannot
/// be part of a resource name.
pub fn endpoint_id(
    node: &str,
    args: &CniArgs,
    container_id: &str,
    ifname: &str,
) -> Result<EndpointId, CniError> {
    if !is_clean(node, Form::Segment) {
        return Err(CniError::config(
            "nodename",
            format!(
                "{node:?} is not a DNS-1123 subdomain; the WorkloadEndpoint name starts with it"
            ),
        ));
    }
    let endpoint = escape(ifname, MAX_ENDPOINT_PART, Form::Segment).unwrap_or_default();
    let (orchestrator, namespace, workload_part, pod, workload) = match args.k8s_pod() {
        Some((ns, pod)) => (
            ORCHESTRATOR_K8S,
            escape(ns, MAX_LABEL, Form::Label).unwrap_or_default(),
            pod,
            true,
            String::new(),
        ),
        None => (
            ORCHESTRATOR_CNI,
            DEFAULT_NAMESPACE.to_string(),
            container_id,
            false,
            args.pod_name
                .as_deref()
                .and_then(|n| escape(n, MAX_LABEL, Form::Label))
                .unwrap_or_default(),
        ),
    };
    let fixed = cost(node, Form::Segment) + orchestrator.len() + 3 + cost(&endpoint, Form::Segment);
    let part = MAX_NAME
        .checked_sub(fixed)
        .and_then(|room| escape(workload_part, room, Form::Segment))
        .ok_or_else(|| {
            CniError::config(
                "nodename",
                format!("{node:?} is too long to leave room for the pod in a 253-character WorkloadEndpoint name"),
            )
        })?;
    let name = join_parts(&[node, orchestrator, &part, &endpoint]);
    Ok(EndpointId {
        orchestrator,
        namespace,
        pod: if pod { part } else { String::new() },
        workload,
        name,
    })
}

/// Calico's `<a>-<b>-...`, each part's `-` doubled.
pub fn join_parts(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.replace('-', "--"))
        .collect::<Vec<_>>()
        .join("-")
}

/// What kind of name a part must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A DNS-1123 label: `[a-z0-9-]`, alphanumeric at both ends.
    Label,
    /// A part of a dash-joined subdomain: labels joined by `.`, each dash
    /// counted twice (it is doubled when joined).
    Segment,
}

fn alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_label(s: &str) -> bool {
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || c == '-')
}

/// True when `s` can be used as it is (length aside).
fn is_clean(s: &str, form: Form) -> bool {
    match form {
        Form::Label => is_label(s),
        Form::Segment => !s.is_empty() && s.split('.').all(is_label),
    }
}

/// The length `s` takes in the final name.
fn cost(s: &str, form: Form) -> usize {
    match form {
        Form::Label => s.len(),
        Form::Segment => s.len() + s.matches('-').count(),
    }
}

/// Calico's name normalisation: lower case, `/` to `.`, anything else
/// outside `[a-z0-9.-]` to `-`, a run of `.`/`-` holding a `.` to one `.`,
/// no `.`/`-` at either end. A label then gets `-` for every `.`.
fn normalize(s: &str, form: Form) -> String {
    let mapped: String = s
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c if alnum(c) => c,
            '.' | '/' => '.',
            _ => '-',
        })
        .collect();
    let mut out = String::with_capacity(mapped.len());
    let mut run = String::new();
    for c in mapped.chars() {
        if c == '.' || c == '-' {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            if !out.is_empty() {
                out.push(if run.contains('.') { '.' } else { '-' });
                if !run.contains('.') {
                    out.push_str(&run[1..]);
                }
            }
            run.clear();
        }
        out.push(c);
    }
    match form {
        Form::Label => out.replace('.', "-"),
        Form::Segment => out,
    }
}

/// `s` unchanged when it is clean and fits in `max` (as counted by
/// [`cost`]); else its normalised form cut to fit, then `-` and the first
/// 8 hex digits of sha1(`s`). `None` when not even the qualifier fits.
fn escape(s: &str, max: usize, form: Form) -> Option<String> {
    if is_clean(s, form) && cost(s, form) <= max {
        return Some(s.to_string());
    }
    if max < QUALIFIER {
        return None;
    }
    let tag = hex::encode(Sha1::digest(s.as_bytes()))[..QUALIFIER].to_string();
    let room = max.saturating_sub(QUALIFIER + cost("-", form));
    let mut base = String::new();
    for c in normalize(s, form).chars() {
        if cost(&base, form) + cost(c.encode_utf8(&mut [0; 4]), form) > room {
            break;
        }
        base.push(c);
    }
    let base = base.trim_end_matches(['.', '-']);
    Some(if base.is_empty() {
        tag
    } else {
        format!("{base}-{tag}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_model::validate::{is_dns1123_subdomain, is_label_value};

    fn args(ns: Option<&str>, pod: Option<&str>) -> CniArgs {
        CniArgs {
            pod_namespace: ns.map(str::to_string),
            pod_name: pod.map(str::to_string),
            infra_container_id: None,
        }
    }

    const CID: &str = "99057d450ce6614709e17e7b8b11d70ae3716a30ecc9ec398b934481a58fc2b5";

    fn assert_valid(id: &EndpointId) {
        assert!(is_dns1123_subdomain(&id.name), "{}", id.name);
        assert!(
            is_label(&id.namespace) && id.namespace.len() <= 63,
            "{id:?}"
        );
        assert!(is_label_value(&id.namespace), "{id:?}");
        assert!(id.pod.is_empty() || is_dns1123_subdomain(&id.pod), "{id:?}");
        assert!(id.workload.is_empty() || is_label(&id.workload), "{id:?}");
    }

    #[test]
    fn kubernetes_pods_keep_calicos_exact_name() {
        let id = endpoint_id("node-1", &args(Some("default"), Some("web-0")), CID, "eth0").unwrap();
        assert_eq!(id.name, "node--1-k8s-web--0-eth0");
        assert_eq!((id.orchestrator, id.namespace.as_str()), ("k8s", "default"));
        assert_eq!(id.pod, "web-0");
        let id = endpoint_id("n", &args(Some("kube-system"), Some("a.b-c")), CID, "eth0").unwrap();
        assert_eq!(id.name, "n-k8s-a.b--c-eth0");
    }

    #[test]
    fn podmans_container_name_alone_makes_a_cni_endpoint_named_by_container_id() {
        let id = endpoint_id("node1", &args(None, Some("happy_mcnulty")), CID, "eth0").unwrap();
        assert_eq!(id.orchestrator, "cni");
        assert_eq!(id.name, format!("node1-cni-{CID}-eth0"));
        assert_eq!(id.namespace, "default");
        assert_eq!(id.pod, "");
        assert!(id.workload.starts_with("happy-mcnulty-"), "{}", id.workload);
        assert_valid(&id);
    }

    #[test]
    fn plain_cni_callers_get_a_cni_endpoint() {
        let id = endpoint_id("node1", &args(None, None), "abc", "eth0").unwrap();
        assert_eq!(id.name, "node1-cni-abc-eth0");
        assert_eq!(id.workload, "");
        let id = endpoint_id("node1", &args(Some("ns"), None), "My_Box.1", "eth0").unwrap();
        assert_eq!(
            id.orchestrator, "cni",
            "a namespace alone is no pod identity"
        );
        assert!(id.name.starts_with("node1-cni-my--box.1--"), "{}", id.name);
        assert_valid(&id);
    }

    #[test]
    fn any_container_name_and_namespace_yields_a_valid_stable_unique_name() {
        let long = format!("Web_App.{}", "X".repeat(92));
        assert_eq!(long.len(), 100);
        let names = [
            ("default", "happy_mcnulty"),
            ("default", "Happy_McNulty"),
            ("My_Namespace.With.Dots", &long),
            ("ns", "-leading-and-trailing-"),
            ("ns", "..."),
            ("ns", "ünïcødé"),
            (&*"N".repeat(300), &*"p-".repeat(200)),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (ns, pod) in names {
            let a = args(Some(ns), Some(pod));
            let id = endpoint_id("node-1", &a, CID, "eth0").unwrap();
            assert_valid(&id);
            assert_eq!(
                endpoint_id("node-1", &a, CID, "eth0").unwrap(),
                id,
                "stable"
            );
            assert!(seen.insert(id.name.clone()), "unique: {}", id.name);
        }
    }

    #[test]
    fn the_escape_keeps_what_it_can_and_qualifies_with_a_sha1_prefix() {
        // sha1("happy_mcnulty") starts 96b0f9bf (python3 hashlib).
        assert_eq!(
            escape("happy_mcnulty", 63, Form::Label).unwrap(),
            "happy-mcnulty-96b0f9bf"
        );
        assert_eq!(escape("web-0", 63, Form::Label).unwrap(), "web-0");
        assert_eq!(normalize("A_b..-c/d", Form::Segment), "a-b.c.d");
        assert_eq!(normalize("A_b..-c/d", Form::Label), "a-b-c-d");
        assert_eq!(normalize("--a--b--", Form::Segment), "a--b");
        assert_eq!(escape("X", 7, Form::Segment), None);
        assert_eq!(escape("x", 7, Form::Segment).as_deref(), Some("x"));
        let cut = escape(&"a-".repeat(100), 40, Form::Segment).unwrap();
        assert!(cost(&cut, Form::Segment) <= 40, "{cut}");
    }

    #[test]
    fn odd_interface_names_are_escaped_too() {
        let id = endpoint_id("n", &args(Some("d"), Some("p")), CID, "Net_1").unwrap();
        assert!(id.name.starts_with("n-k8s-p-net--1--"), "{}", id.name);
        assert_valid(&id);
    }

    #[test]
    fn a_node_name_that_cannot_start_a_resource_name_is_refused_by_field() {
        let e = endpoint_id("Node_1", &args(None, None), CID, "eth0").unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("nodename"), "{e}");
        let e = endpoint_id(&"n".repeat(250), &args(None, None), CID, "eth0").unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
    }
}

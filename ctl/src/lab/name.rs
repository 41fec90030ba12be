//! Lab names and what a lab may touch. A lab name becomes a path
//! (`/run/tortie-lab/<name>`, removed recursively by `lab down`) and the
//! prefix of namespace names, so it must be a DNS label — lower-case
//! letters, digits and `-`, alphanumeric at both ends — of at most 63
//! characters: no `/`, no `.`/`..`, nothing absolute. 63 also bounds what
//! the lab derives from it: namespaces `<name>-node200-pod50` (78 bytes;
//! `ip netns` names are file names, up to 255) and control sockets
//! `/run/tortie-lab/<name>/node200.sock` (92 bytes; a Unix socket path
//! holds 107). Interface names never contain the lab name.
//!
//! A lab acts only on namespaces of its own shapes (`<name>-router`,
//! `-nodeN`, `-rrN`, `-nodeN-podM`), so `lab down --name a` leaves lab
//! `a-b`'s namespaces alone, and only on paths inside its state folder.
//! Pure.

use std::path::Path;

use super::plan::Plan;

/// Longest lab name (a DNS label).
pub const MAX_NAME: usize = 63;

/// Why `name` is not a lab name, or `None` when it is one.
fn problem(name: &str) -> Option<&'static str> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME {
        Some("it is longer than 63 characters")
    } else if !name.chars().all(|c| alnum(c) || c == '-') {
        Some("only lower-case letters, digits and '-' are allowed (no '/', '.', upper case)")
    } else if !name.starts_with(alnum) || !name.ends_with(alnum) {
        Some("it must start and end with a letter or digit")
    } else {
        None
    }
}

/// clap's value parser for `--name`: the name, or why it is refused.
pub fn parse_lab_name(name: &str) -> Result<String, String> {
    match problem(name) {
        None => Ok(name.to_string()),
        Some(why) => Err(format!(
            "{name:?} is not a lab name: {why}; a lab name is a DNS label of at most {MAX_NAME} characters, e.g. \"tortie\" or \"lab-2\""
        )),
    }
}

/// A namespace name the lab may hand to `ip netns` or open under
/// `/var/run/netns`: not empty, no `/`, not `.` or `..`, at most 255 bytes.
pub fn check_netns_name(ns: &str) -> Result<(), String> {
    let ok =
        !ns.is_empty() && ns.len() <= 255 && ns != "." && ns != ".." && !ns.contains(['/', '\0']);
    if ok {
        Ok(())
    } else {
        Err(format!("{ns:?} is not a network namespace name"))
    }
}

fn numbered(s: &str, word: &str) -> bool {
    s.strip_prefix(word)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// True when namespace `ns` has one of the shapes lab `lab` creates.
pub fn is_lab_namespace(lab: &str, ns: &str) -> bool {
    let Some(rest) = ns.strip_prefix(lab).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    match rest.split_once('-') {
        None => rest == "router" || numbered(rest, "node") || numbered(rest, "rr"),
        Some((node, pod)) => numbered(node, "node") && numbered(pod, "pod"),
    }
}

/// True when `f` lies below `dir` without `..` or `.` on the way.
fn inside(dir: &Path, f: &Path) -> bool {
    use std::path::Component;
    f.strip_prefix(dir).is_ok_and(|rest| {
        rest.components().count() > 0
            && rest.components().all(|c| matches!(c, Component::Normal(_)))
    })
}

/// Checks that a loaded plan belongs to lab `lab` in `dir`: same name and
/// folder, every file inside that folder, every namespace of the lab's
/// shapes. A state file changed by hand cannot send the lab elsewhere.
pub fn check_confined(plan: &Plan, lab: &str, dir: &Path) -> Result<(), String> {
    if plan.name != lab || plan.dir != dir {
        return Err(format!(
            "the state names lab {:?} in {}, not {lab:?} in {}",
            plan.name,
            plan.dir.display(),
            dir.display()
        ));
    }
    let nodes = plan
        .nodes
        .iter()
        .chain(&plan.route_reflectors)
        .chain(&plan.router_node);
    let mut files: Vec<&Path> = Vec::new();
    let mut namespaces: Vec<&str> = vec![&plan.router_netns];
    for n in nodes {
        files.extend([n.control_socket.as_path(), &n.log, &n.mtu_file]);
        namespaces.push(&n.netns);
    }
    files.extend(plan.relay.iter().map(|r| r.log.as_path()));
    namespaces.extend(
        plan.pods
            .iter()
            .flat_map(|p| [p.netns.as_str(), &p.node_netns]),
    );
    if let Some(f) = files.iter().find(|f| !inside(dir, f)) {
        return Err(format!("{} is outside {}", f.display(), dir.display()));
    }
    if let Some(ns) = namespaces.iter().find(|ns| !is_lab_namespace(lab, ns)) {
        return Err(format!("namespace {ns:?} is not one of lab {lab:?}'s"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::plan::{plan, LabSpec, Mode};
    use super::*;

    /// The longest control socket path of a plan's agents (a Unix socket
    /// path must stay under 108 bytes).
    fn longest_socket(p: &super::super::plan::Plan) -> usize {
        p.nodes
            .iter()
            .chain(&p.route_reflectors)
            .map(|n| n.control_socket.as_os_str().len())
            .max()
            .unwrap()
    }

    #[test]
    fn dns_labels_up_to_63_characters_are_lab_names() {
        for ok in ["tortie", "lab-2", "a", "0", &"a".repeat(63), "tt123-x"] {
            assert_eq!(parse_lab_name(ok).as_deref(), Ok(ok), "{ok}");
        }
    }

    #[test]
    fn hostile_names_are_refused_saying_why() {
        let cases = [
            ("", "empty"),
            ("/tmp", "only lower-case"),
            ("../../tmp", "only lower-case"),
            ("..", "only lower-case"),
            ("a/b", "only lower-case"),
            ("a.b", "only lower-case"),
            ("Upper", "only lower-case"),
            ("-x", "start and end"),
            ("x-", "start and end"),
            ("a b", "only lower-case"),
            (&*"a".repeat(64), "longer than 63"),
        ];
        for (bad, why) in cases {
            let e = parse_lab_name(bad).unwrap_err();
            assert!(e.contains(why) && e.contains("DNS label"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn only_the_labs_own_namespace_shapes_belong_to_it() {
        for ns in ["t-router", "t-node1", "t-rr2", "t-node12-pod3"] {
            assert!(is_lab_namespace("t", ns), "{ns}");
        }
        for ns in [
            "t-x-node1",
            "t-node1-router",
            "t-node1-node1",
            "t-node",
            "t-nodex",
            "t-node1-pod",
            "tt-router",
            "t",
            "t-",
            "other-router",
        ] {
            assert!(!is_lab_namespace("t", ns), "{ns}");
        }
        assert!(!is_lab_namespace("tortie", "tortie-x-node1-pod1"));
    }

    #[test]
    fn the_longest_name_keeps_sockets_and_namespaces_within_limits() {
        let name = "a".repeat(MAX_NAME);
        let p = plan(&LabSpec {
            name: &name,
            mode: Mode::Bgp,
            nodes: 200,
            pods: 50,
            route_reflectors: 10,
            datastore: None,
            podman: None,
        });
        let longest = longest_socket(&p);
        assert!(longest < 108, "{longest}");
        assert!(p.pods.iter().all(|pod| pod.netns.len() <= 255));
        assert_eq!(check_confined(&p, &name, &p.dir), Ok(()));
        // With podman the sockets sit one folder deeper, in the node's.
        let p = plan(&LabSpec {
            name: &name,
            mode: Mode::Bgp,
            nodes: 200,
            pods: 0,
            route_reflectors: 10,
            datastore: None,
            podman: Some(super::super::plan::PodmanPlan {
                image: "localhost/tortie:latest".into(),
                root: None,
                runroot: None,
                containers_conf: p.dir.join("containers.conf"),
            }),
        });
        let longest = longest_socket(&p);
        assert!(longest < 108, "{longest}");
        assert_eq!(check_confined(&p, &name, &p.dir), Ok(()));
    }

    #[test]
    fn a_plan_pointing_outside_its_folder_or_lab_is_refused() {
        let p = plan(&LabSpec {
            name: "t",
            mode: Mode::Bgp,
            nodes: 2,
            pods: 1,
            route_reflectors: 0,
            datastore: None,
            podman: None,
        });
        assert_eq!(check_confined(&p, "t", &p.dir), Ok(()));
        assert!(check_confined(&p, "u", &p.dir).is_err());
        let mut bad = p.clone();
        bad.nodes[0].log = "/etc/passwd".into();
        assert!(check_confined(&bad, "t", &p.dir)
            .unwrap_err()
            .contains("/etc/passwd"));
        let mut bad = p.clone();
        bad.nodes[0].control_socket = "/run/tortie-lab/t/node1/../../../etc/x".into();
        assert!(check_confined(&bad, "t", &p.dir).is_err());
        let mut bad = p.clone();
        bad.pods[0].netns = "other-node1-pod1".into();
        assert!(check_confined(&bad, "t", &p.dir).is_err());
        let mut bad = p;
        bad.dir = "/tmp".into();
        assert!(check_confined(&bad, "t", Path::new("/run/tortie-lab/t")).is_err());
    }
}

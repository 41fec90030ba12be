//! A small model of Calico's policy semantics, run over what the datastore
//! holds (policies after the Kubernetes conversion, endpoints with their
//! current labels, network sets): the matrix the probes must find.
//! Written from the semantics in docs/policy.md, independently of the
//! compiler (`tortie-felix`); the property tests of that crate check the
//! compiler against fuller models.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_model::policy::{default_types, Action, EntityRule, PolicyType, Rule};
use tortie_model::{Kind, Port, Resource, Selector, WorkloadEndpoint};

/// `from → to → reachable`, keyed by `NS/POD`.
pub type Matrix = BTreeMap<String, BTreeMap<String, bool>>;

/// Labels of a namespace (as its Namespace resource and the API server
/// give them): what a `namespaceSelector` matches.
pub type NsLabels = fn(&str) -> BTreeMap<String, String>;

/// A network set: its labels, its namespace (`None`: global), its nets.
struct NetSet {
    labels: BTreeMap<String, String>,
    ns: Option<String>,
    nets: Vec<IpNet>,
}

/// Something a rule selector can match at an address.
struct Entity<'a> {
    labels: &'a BTreeMap<String, String>,
    ns: Option<&'a str>,
}

/// What the model knows of the cluster.
pub struct World {
    /// Every workload endpoint.
    pub pods: Vec<WorkloadEndpoint>,
    nps: Vec<tortie_model::NetworkPolicy>,
    gnps: Vec<tortie_model::GlobalNetworkPolicy>,
    sets: Vec<NetSet>,
    ns_labels: NsLabels,
}

/// One policy as the model runs it.
struct Pol<'a> {
    id: String,
    ns: Option<&'a str>,
    order: Option<f64>,
    types: Vec<PolicyType>,
    selector: &'a str,
    namespace_selector: &'a str,
    ingress: &'a [Rule],
    egress: &'a [Rule],
}

fn sel(s: &str) -> Option<Selector> {
    (!s.is_empty()).then(|| Selector::parse(s).unwrap())
}

fn ns_of(w: &WorkloadEndpoint) -> &str {
    w.metadata.namespace.as_deref().unwrap_or("default")
}

fn ip_of(w: &WorkloadEndpoint) -> IpAddr {
    w.spec.ip_networks[0].addr()
}

/// A packet the model judges.
#[derive(Clone, Copy)]
pub struct Packet<'a> {
    src: &'a WorkloadEndpoint,
    dst: &'a WorkloadEndpoint,
    proto: u8,
    port: u16,
}

impl World {
    /// Reads the cluster from the lab's datastore at `url`.
    pub fn read(url: &str, ns_labels: NsLabels) -> World {
        let store = BlockingStore::open(url, &OpenOptions::default()).unwrap();
        let list = |k| {
            store
                .block_on(typed::list(store.store().as_ref(), k, None))
                .unwrap()
        };
        let mut w = World {
            pods: Vec::new(),
            nps: Vec::new(),
            gnps: Vec::new(),
            sets: Vec::new(),
            ns_labels,
        };
        let kinds = [
            Kind::WorkloadEndpoint,
            Kind::NetworkPolicy,
            Kind::GlobalNetworkPolicy,
            Kind::NetworkSet,
            Kind::GlobalNetworkSet,
        ];
        for r in kinds.into_iter().flat_map(list) {
            match r {
                Resource::WorkloadEndpoint(e) => w.pods.push(e),
                Resource::NetworkPolicy(p) => w.nps.push(p),
                Resource::GlobalNetworkPolicy(p) => w.gnps.push(p),
                Resource::NetworkSet(s) => w.sets.push(NetSet {
                    labels: s.metadata.labels.clone(),
                    ns: Some(s.metadata.namespace.clone().unwrap_or("default".into())),
                    nets: s.spec.nets.clone(),
                }),
                Resource::GlobalNetworkSet(s) => w.sets.push(NetSet {
                    labels: s.metadata.labels.clone(),
                    ns: None,
                    nets: s.spec.nets.clone(),
                }),
                other => panic!("unexpected {other:?}"),
            }
        }
        w
    }

    fn pol_list(&self) -> Vec<Pol<'_>> {
        let types = |t: &[PolicyType], i: &[Rule], e: &[Rule]| {
            if t.is_empty() {
                default_types(i, e)
            } else {
                t.to_vec()
            }
        };
        let mut v: Vec<Pol<'_>> = Vec::new();
        for p in &self.nps {
            let ns = p.metadata.namespace.as_deref().unwrap_or("default");
            v.push(Pol {
                id: format!("{ns}/{}", p.metadata.name),
                ns: Some(ns),
                order: p.spec.order.map(|o| o.value()),
                types: types(&p.spec.types, &p.spec.ingress, &p.spec.egress),
                selector: &p.spec.selector,
                namespace_selector: "",
                ingress: &p.spec.ingress,
                egress: &p.spec.egress,
            });
        }
        for p in &self.gnps {
            v.push(Pol {
                id: p.metadata.name.clone(),
                ns: None,
                order: p.spec.order.map(|o| o.value()),
                types: types(&p.spec.types, &p.spec.ingress, &p.spec.egress),
                selector: &p.spec.selector,
                namespace_selector: &p.spec.namespace_selector,
                ingress: &p.spec.ingress,
                egress: &p.spec.egress,
            });
        }
        v
    }

    /// Does policy `p` apply to `w` in direction `dir`?
    fn applies(&self, p: &Pol<'_>, w: &WorkloadEndpoint, dir: PolicyType) -> bool {
        p.types.contains(&dir)
            && p.ns.is_none_or(|ns| ns == ns_of(w))
            && sel(p.selector).is_none_or(|s| s.matches(&w.metadata.labels))
            && sel(p.namespace_selector).is_none_or(|s| s.matches(&(self.ns_labels)(ns_of(w))))
    }

    /// The endpoints and network sets at address `a`.
    fn entities(&self, a: IpAddr) -> Vec<Entity<'_>> {
        let pods = self.pods.iter().filter(|w| ip_of(w) == a).map(|w| Entity {
            labels: &w.metadata.labels,
            ns: Some(ns_of(w)),
        });
        let sets = self
            .sets
            .iter()
            .filter(|s| s.nets.iter().any(|n| n.contains(&a)))
            .map(|s| Entity {
                labels: &s.labels,
                ns: s.ns.as_deref(),
            });
        pods.chain(sets).collect()
    }

    /// Does side `e` of a rule of a policy in `ns` match address `a` and
    /// port `port`?
    fn side(&self, e: &EntityRule, ns: Option<&str>, a: IpAddr, port: u16) -> bool {
        if !e.nets.is_empty() && !e.nets.iter().any(|n| n.contains(&a)) {
            return false;
        }
        if e.not_nets.iter().any(|n| n.contains(&a)) {
            return false;
        }
        let entities = self.entities(a);
        if !e.selector.is_empty() || !e.namespace_selector.is_empty() {
            let (s, nss) = (sel(&e.selector), sel(&e.namespace_selector));
            let hit = entities.iter().any(|x| {
                let ns_ok = match (&nss, ns) {
                    (Some(n), _) => x.ns.is_some_and(|xns| n.matches(&(self.ns_labels)(xns))),
                    (None, Some(pns)) => x.ns == Some(pns),
                    (None, None) => true,
                };
                ns_ok && s.as_ref().is_none_or(|s| s.matches(x.labels))
            });
            if !hit {
                return false;
            }
        }
        if let Some(not) = sel(&e.not_selector) {
            if entities.iter().any(|x| not.matches(x.labels)) {
                return false;
            }
        }
        let in_range =
            |p: &Port| matches!(p, Port::Range { min, max } if (*min..=*max).contains(&port));
        if e.not_ports.iter().any(in_range) {
            return false;
        }
        e.ports.is_empty() || e.ports.iter().any(in_range)
    }

    fn rule(&self, r: &Rule, ns: Option<&str>, p: Packet<'_>) -> bool {
        r.protocol
            .as_ref()
            .is_none_or(|x| x.number() == Some(p.proto))
            && r.not_protocol
                .as_ref()
                .is_none_or(|x| x.number() != Some(p.proto))
            && self.side(&r.source, ns, ip_of(p.src), 40000)
            && self.side(&r.destination, ns, ip_of(p.dst), p.port)
    }

    /// Calico's verdict for endpoint `w` in direction `dir` (profiles of
    /// the namespaces allow everything).
    fn verdict(&self, w: &WorkloadEndpoint, dir: PolicyType, p: Packet<'_>) -> bool {
        let mut pols: Vec<Pol<'_>> = self
            .pol_list()
            .into_iter()
            .filter(|x| self.applies(x, w, dir))
            .collect();
        if pols.is_empty() {
            return true;
        }
        pols.sort_by(|a, b| {
            let key = |p: &Pol<'_>| (p.order.is_none(), p.order.unwrap_or(0.0));
            key(a)
                .partial_cmp(&key(b))
                .unwrap()
                .then_with(|| a.id.cmp(&b.id))
        });
        for pol in pols {
            let rules = if dir == PolicyType::Ingress {
                pol.ingress
            } else {
                pol.egress
            };
            for r in rules {
                if self.rule(r, pol.ns, p) {
                    match r.action {
                        Action::Allow => return true,
                        Action::Deny => return false,
                        Action::Pass => return true,
                        Action::Log => {}
                    }
                }
            }
        }
        false
    }

    /// The expected matrix for protocol number `proto` and port `port`.
    pub fn expected(&self, proto: u8, port: u16) -> Matrix {
        let id = |w: &WorkloadEndpoint| format!("{}/{}", ns_of(w), w.spec.pod);
        let mut m = Matrix::new();
        for src in &self.pods {
            for dst in &self.pods {
                let p = Packet {
                    src,
                    dst,
                    proto,
                    port,
                };
                let ok = id(src) == id(dst)
                    || (self.verdict(src, PolicyType::Egress, p)
                        && self.verdict(dst, PolicyType::Ingress, p));
                m.entry(id(src)).or_default().insert(id(dst), ok);
            }
        }
        m
    }
}

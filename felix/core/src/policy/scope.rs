//! Selectors as Calico's syncer rewrites them before felix sees them
//! (`libcalico-go/.../updateprocessors`): a NetworkPolicy applies only in
//! its namespace; a rule selector of a NetworkPolicy is limited to the
//! policy's namespace unless the rule has a namespaceSelector; a
//! namespaceSelector matches the labels endpoints inherit from their
//! namespace (`pcns.` prefix), with `all()` meaning "any namespace".

use tortie_model::policy::EntityRule;
use tortie_model::selector::Expr;
use tortie_model::workload_endpoint::{LABEL_NAMESPACE, NAMESPACE_LABEL_PREFIX};
use tortie_model::Selector;

/// The selector `text` parsed (empty: `None`); `Err` when it does not parse.
pub(crate) fn parse(text: &str) -> Result<Option<Expr>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Selector::parse(text)
        .map(|s| Some(s.expr().clone()))
        .map_err(|e| format!("selector {text:?}: {e}"))
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::And(Box::new(a), Box::new(b))
}

/// `projectcalico.org/namespace == ns`.
pub(crate) fn in_namespace(ns: &str) -> Expr {
    Expr::Eq(LABEL_NAMESPACE.into(), ns.into())
}

/// `e` with every label key prefixed by `pcns.` and `all()` turned into
/// "has a namespace".
pub(crate) fn namespace_expr(e: &Expr) -> Expr {
    let p = |k: &String| format!("{NAMESPACE_LABEL_PREFIX}{k}");
    let b = |e: &Expr| Box::new(namespace_expr(e));
    match e {
        Expr::All => Expr::Has(LABEL_NAMESPACE.into()),
        Expr::Has(k) => Expr::Has(p(k)),
        Expr::Eq(k, v) => Expr::Eq(p(k), v.clone()),
        Expr::Ne(k, v) => Expr::Ne(p(k), v.clone()),
        Expr::In(k, s) => Expr::In(p(k), s.clone()),
        Expr::NotIn(k, s) => Expr::NotIn(p(k), s.clone()),
        Expr::Contains(k, v) => Expr::Contains(p(k), v.clone()),
        Expr::StartsWith(k, v) => Expr::StartsWith(p(k), v.clone()),
        Expr::EndsWith(k, v) => Expr::EndsWith(p(k), v.clone()),
        Expr::Not(x) => Expr::Not(b(x)),
        Expr::And(x, y) => Expr::And(b(x), b(y)),
        Expr::Or(x, y) => Expr::Or(b(x), b(y)),
    }
}

/// The endpoints a NetworkPolicy in `ns` applies to.
pub(crate) fn network_policy_selector(selector: &str, ns: &str) -> Result<Expr, String> {
    Ok(match parse(selector)? {
        Some(s) => and(s, in_namespace(ns)),
        None => in_namespace(ns),
    })
}

/// The endpoints a GlobalNetworkPolicy applies to.
pub(crate) fn global_policy_selector(selector: &str, ns_selector: &str) -> Result<Expr, String> {
    let s = parse(selector)?.unwrap_or(Expr::All);
    Ok(match parse(ns_selector)? {
        Some(n) => and(s, namespace_expr(&n)),
        None => s,
    })
}

/// A rule side's selectors after scoping.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScopedSelectors {
    /// Positive selector (namespace scoping included).
    pub(crate) selector: Option<Expr>,
    /// Negated selector (never scoped).
    pub(crate) not_selector: Option<Expr>,
}

/// Calico's `getEndpointSelector` for one side of a rule of a policy in
/// namespace `ns` (`None`: a global policy or a profile).
pub(crate) fn scope_side(e: &EntityRule, ns: Option<&str>) -> Result<ScopedSelectors, String> {
    let selector = parse(&e.selector)?;
    let not_selector = parse(&e.not_selector)?;
    let ns_selector = match parse(&e.namespace_selector)? {
        Some(n) => Some(namespace_expr(&n)),
        None => ns.map(in_namespace),
    };
    let scoped = selector.is_some() || not_selector.is_some() || !e.namespace_selector.is_empty();
    let selector = match (ns_selector, selector) {
        (Some(n), Some(s)) if scoped => Some(and(n, s)),
        (Some(n), None) if scoped => Some(n),
        (_, s) => s,
    };
    Ok(ScopedSelectors {
        selector,
        not_selector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(sel: &str, not: &str, ns_sel: &str) -> EntityRule {
        EntityRule {
            selector: sel.into(),
            not_selector: not.into(),
            namespace_selector: ns_sel.into(),
            ..EntityRule::default()
        }
    }

    fn text(e: &Option<Expr>) -> String {
        e.as_ref().map(ToString::to_string).unwrap_or_default()
    }

    #[test]
    fn namespaced_rules_stay_in_their_namespace_unless_a_namespace_selector_says_otherwise() {
        let s = scope_side(&side("app == 'a'", "", ""), Some("ns1")).unwrap();
        assert_eq!(
            text(&s.selector),
            "(projectcalico.org/namespace == \"ns1\" && app == \"a\")"
        );
        let s = scope_side(&side("app == 'a'", "", "team == 'x'"), Some("ns1")).unwrap();
        assert_eq!(text(&s.selector), "(pcns.team == \"x\" && app == \"a\")");
        let s = scope_side(&side("", "", "all()"), Some("ns1")).unwrap();
        assert_eq!(text(&s.selector), "has(projectcalico.org/namespace)");
    }

    #[test]
    fn a_not_selector_alone_scopes_the_positive_side_to_the_namespace() {
        let s = scope_side(&side("", "has(x)", ""), Some("ns1")).unwrap();
        assert_eq!(text(&s.selector), "projectcalico.org/namespace == \"ns1\"");
        assert_eq!(text(&s.not_selector), "has(x)");
    }

    #[test]
    fn global_rules_and_rules_without_selectors_are_not_scoped() {
        let s = scope_side(&side("app == 'a'", "", ""), None).unwrap();
        assert_eq!(text(&s.selector), "app == \"a\"");
        let s = scope_side(&EntityRule::default(), Some("ns1")).unwrap();
        assert!(s.selector.is_none() && s.not_selector.is_none());
    }

    #[test]
    fn policy_selectors_add_the_namespace() {
        assert_eq!(
            network_policy_selector("", "ns1").unwrap().to_string(),
            "projectcalico.org/namespace == \"ns1\""
        );
        assert_eq!(
            global_policy_selector("app == 'a'", "!has(x)")
                .unwrap()
                .to_string(),
            "(app == \"a\" && !has(pcns.x))"
        );
        assert!(global_policy_selector("app = 'a'", "").is_err());
    }
}

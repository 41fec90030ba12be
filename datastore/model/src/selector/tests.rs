use std::collections::BTreeMap;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn empty_selector_means_all() {
    assert_eq!(sel("").expr(), &Expr::All);
    assert_eq!(sel("  ").expr(), &Expr::All);
    assert!(sel("all()").matches(&labels(&[])));
}

#[test]
fn equality_needs_the_label_present() {
    let s = sel("rack == 'r1'");
    assert!(s.matches(&labels(&[("rack", "r1")])));
    assert!(!s.matches(&labels(&[("rack", "r2")])));
    assert!(!s.matches(&labels(&[])));
}

#[test]
fn inequality_matches_when_the_label_is_absent() {
    let s = sel(r#"rack != "r1""#);
    assert!(s.matches(&labels(&[])));
    assert!(s.matches(&labels(&[("rack", "r2")])));
    assert!(!s.matches(&labels(&[("rack", "r1")])));
}

#[test]
fn set_membership_and_its_negation() {
    let s = sel("zone in {'a', \"b\"}");
    assert!(s.matches(&labels(&[("zone", "b")])));
    assert!(!s.matches(&labels(&[("zone", "c")])));
    assert!(!s.matches(&labels(&[])));
    let n = sel("zone not in {'a','b'}");
    assert!(n.matches(&labels(&[])));
    assert!(n.matches(&labels(&[("zone", "c")])));
    assert!(!n.matches(&labels(&[("zone", "a")])));
    assert!(!sel("zone in {}").matches(&labels(&[("zone", "a")])));
}

#[test]
fn has_and_negated_has() {
    let l = labels(&[("route-reflector", "true")]);
    assert!(sel("has(route-reflector)").matches(&l));
    assert!(!sel("!has(route-reflector)").matches(&l));
    assert!(sel("!has(other)").matches(&l));
}

#[test]
fn string_operators() {
    let l = labels(&[("host", "node-12.example")]);
    assert!(sel("host contains '12'").matches(&l));
    assert!(sel("host starts with 'node-'").matches(&l));
    assert!(sel("host ends with '.example'").matches(&l));
    assert!(!sel("host ends with 'node'").matches(&l));
    assert!(!sel("missing contains ''").matches(&l));
}

#[test]
fn two_word_operators_may_be_written_without_the_space_as_in_calico() {
    assert_eq!(sel("a notin {'x'}"), sel("a not in {'x'}"));
    assert_eq!(sel("a startswith 'x'"), sel("a starts with 'x'"));
    assert_eq!(sel("a endswith 'x'"), sel("a ends with 'x'"));
}

#[test]
fn and_binds_tighter_than_or() {
    // a || b && c  ==  a || (b && c)
    let s = sel("has(a) || has(b) && has(c)");
    assert!(s.matches(&labels(&[("a", "")])));
    assert!(!s.matches(&labels(&[("b", "")])));
    let p = sel("(has(a) || has(b)) && has(c)");
    assert!(!p.matches(&labels(&[("a", "")])));
    assert!(p.matches(&labels(&[("b", ""), ("c", "")])));
}

#[test]
fn label_keys_may_carry_prefixes_and_dots() {
    let s = sel("kubernetes.io/hostname == 'node-1' && topology.kubernetes.io/zone in {'z1'}");
    assert!(s.matches(&labels(&[
        ("kubernetes.io/hostname", "node-1"),
        ("topology.kubernetes.io/zone", "z1"),
    ])));
}

#[test]
fn canonical_text_parses_back_to_the_same_expression() {
    for src in [
        "all()",
        "!has(a) && (b == 'x' || c not in {'1', '2'})",
        "a starts with 'p' || a ends with \"q\" || a contains 'r'",
        "x != \"it's\"",
    ] {
        let s = sel(src);
        assert_eq!(sel(&s.to_string()), s, "{src} -> {s}");
    }
}

#[test]
fn errors_name_the_position_and_what_was_expected() {
    let e = Selector::parse("rack == r1").unwrap_err();
    assert_eq!(e.position, 9);
    assert!(e.to_string().contains("expected a quoted string"), "{e}");

    let e = Selector::parse("has(a) &&").unwrap_err();
    assert_eq!(e.position, 10);
    assert!(e.to_string().contains("end of selector"), "{e}");

    let e = Selector::parse("a == 'x").unwrap_err();
    assert_eq!(e.kind, SelectorErrorKind::UnterminatedString);
    assert_eq!(e.position, 6);

    let e = Selector::parse("a = 'x'").unwrap_err();
    assert_eq!(e.kind, SelectorErrorKind::UnexpectedChar('='));

    let e = Selector::parse("(has(a)").unwrap_err();
    assert!(e.to_string().contains("`)`"), "{e}");

    let e = Selector::parse("a in {'x' 'y'}").unwrap_err();
    assert!(e.to_string().contains("`,` or `}`"), "{e}");

    let e = Selector::parse("a not {'x'}").unwrap_err();
    assert!(e.to_string().contains("`in` after `not`"), "{e}");

    let e = Selector::parse("a").unwrap_err();
    assert!(e.to_string().contains("found end of selector"), "{e}");
}

#[test]
fn huge_selectors_are_refused_instead_of_overflowing_the_stack() {
    let deep = format!("{}has(a){}", "(".repeat(10_000), ")".repeat(10_000));
    let e = Selector::parse(&deep).unwrap_err();
    assert_eq!(e.kind, SelectorErrorKind::TooDeep(64));
    let bangs = format!("{}has(a)", "!".repeat(10_000));
    assert!(Selector::parse(&bangs).is_err());
    let long = vec!["has(a)"; 5_000].join(" && ");
    assert_eq!(
        Selector::parse(&long).unwrap_err().kind,
        SelectorErrorKind::TooLong(1024)
    );
    let fine = format!("{}has(a){}", "(".repeat(60), ")".repeat(60));
    assert!(Selector::parse(&fine).is_ok());
}

#[test]
fn serde_round_trips_as_a_string() {
    let s = sel("a == 'b'");
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(json, r#""a == \"b\"""#);
    let back: Selector = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert!(serde_json::from_str::<Selector>(r#""a ==""#).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("kubernetes.io/zone".to_owned())
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("x".to_owned()),
            Just("y z".to_owned())
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            Just(Expr::All),
            key().prop_map(Expr::Has),
            (key(), value()).prop_map(|(k, v)| Expr::Eq(k, v)),
            (key(), value()).prop_map(|(k, v)| Expr::Ne(k, v)),
            (key(), prop::collection::vec(value(), 0..3)).prop_map(|(k, s)| Expr::In(k, s)),
            (key(), prop::collection::vec(value(), 0..3)).prop_map(|(k, s)| Expr::NotIn(k, s)),
            (key(), value()).prop_map(|(k, v)| Expr::Contains(k, v)),
            (key(), value()).prop_map(|(k, v)| Expr::StartsWith(k, v)),
            (key(), value()).prop_map(|(k, v)| Expr::EndsWith(k, v)),
        ];
        leaf.prop_recursive(4, 32, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            ]
        })
    }

    fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map(key(), value(), 0..3)
    }

    proptest! {
        #[test]
        fn printed_selectors_parse_back_to_the_same_tree(e in expr()) {
            let text = e.to_string();
            let parsed = Selector::parse(&text).unwrap();
            prop_assert_eq!(parsed.expr(), &e, "{}", text);
        }

        #[test]
        fn negation_matches_exactly_the_complement(e in expr(), l in label_map()) {
            let not = Expr::Not(Box::new(e.clone()));
            prop_assert_eq!(not.matches(&l), !e.matches(&l));
        }

        #[test]
        fn arbitrary_text_never_panics_the_parser(s in "\\PC{0,40}") {
            let _ = Selector::parse(&s);
        }
    }
}

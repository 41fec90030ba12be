//! `label KIND NAME key=value... | key-... [--overwrite]`: sets or removes
//! labels by compare-and-swap on the resource.

use clap::Args;
use tortie_datastore::typed;

use crate::context::{Context, UsageError};
use crate::resources::parse_kind;

/// `label nodes NAME key=value | key-`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// Resource kind (usually `nodes`).
    pub kind: String,
    /// Resource name.
    pub name: String,
    /// `key=value` to set, `key-` to remove (several allowed).
    #[arg(required = true, value_name = "key=value|key-")]
    pub labels: Vec<String>,
    /// Replace a label that already has another value.
    #[arg(long)]
    pub overwrite: bool,
    /// Remove the named keys (calicoctl's form: `label nodes N key --remove`).
    #[arg(long)]
    pub remove: bool,
    /// Namespace of a namespaced kind.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

/// One requested label change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Set(String, String),
    Remove(String),
}

fn parse_changes(a: &LabelArgs) -> Result<Vec<Change>, UsageError> {
    a.labels
        .iter()
        .map(
            |l| match (l.split_once('='), l.strip_suffix('-'), a.remove) {
                (Some(("", _)), _, _) => Err(UsageError(format!("label {l:?}: empty key"))),
                (Some(_), _, true) => {
                    Err(UsageError(format!("label {l:?}: --remove takes keys only")))
                }
                (Some((k, v)), _, false) => Ok(Change::Set(k.into(), v.into())),
                (None, Some(k), false) if !k.is_empty() => Ok(Change::Remove(k.into())),
                (None, None, true) => Ok(Change::Remove(l.clone())),
                _ => Err(UsageError(format!(
                    "label {l:?}: use key=value to set or key- to remove"
                ))),
            },
        )
        .collect()
}

/// Applies `changes` to `labels`; every problem, one per line.
fn apply_changes(
    labels: &mut std::collections::BTreeMap<String, String>,
    changes: &[Change],
    overwrite: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for c in changes {
        match c {
            Change::Set(k, v) => match labels.get(k) {
                Some(old) if old != v && !overwrite => problems.push(format!(
                    "label {k} already has value {old:?}; pass --overwrite to set {v:?}"
                )),
                _ => {
                    labels.insert(k.clone(), v.clone());
                }
            },
            Change::Remove(k) => {
                if labels.remove(k).is_none() {
                    problems.push(format!("label {k} is not set"));
                }
            }
        }
    }
    problems
}

/// `tortiectl label`.
pub fn label(ctx: &Context, a: &LabelArgs) -> anyhow::Result<()> {
    let kind = parse_kind(&a.kind)?;
    let changes = parse_changes(a)?;
    let store = ctx.open()?;
    let s = store.store().as_ref();
    let mut r = store.block_on(typed::get(s, kind, Some(&a.namespace), &a.name))?;
    let problems = apply_changes(&mut r.metadata_mut().labels, &changes, a.overwrite);
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    // r carries the resourceVersion it was read at: the write is a compare-and-swap.
    store.block_on(typed::replace(s, vec![r]))?;
    for c in &changes {
        match c {
            Change::Set(k, _) => {
                println!("Successfully set label {k} on {} {}", kind.plural(), a.name)
            }
            Change::Remove(k) => println!(
                "Successfully removed label {k} from {} {}",
                kind.plural(),
                a.name
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_different_value_needs_overwrite() {
        let mut l = labels(&[("rack", "a")]);
        let change = [Change::Set("rack".into(), "b".into())];
        assert_eq!(apply_changes(&mut l, &change, false).len(), 1);
        assert_eq!(l["rack"], "a");
        assert!(apply_changes(&mut l, &change, true).is_empty());
        assert_eq!(l["rack"], "b");
    }

    #[test]
    fn removing_an_absent_label_is_a_problem() {
        let mut l = labels(&[]);
        let p = apply_changes(&mut l, &[Change::Remove("rack".into())], false);
        assert_eq!(p, ["label rack is not set"]);
    }
}

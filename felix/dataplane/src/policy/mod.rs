//! Programs felix's policy table (`inet tortie-policy`) with `nft -f`:
//! the first write (and any write after a failure or drift) replaces the
//! table atomically; later writes are the minimal transaction from what was
//! applied. [`PolicyProgrammer::check`] reads the table back and says
//! whether it still holds what was applied, so that a repair loop can put
//! it back after someone flushed, edited or deleted it.
//!
//! Must not: touch any other table.

pub mod nfrules;
pub mod readback;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tortie_felix::policy::nft::Ruleset;
use tortie_felix::policy::{diff, full_replace};

use crate::nftcmd::{self, NftError};
use crate::nftmon::OwnPids;
use nfrules::DumpError;
use readback::{parse_listing, quick_view, summarize, ReadbackError};

/// Programming or reading the policy table failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// `nft` failed (also when a full replace was refused).
    #[error("policy table: {0}")]
    Nft(#[from] NftError),
    /// The table's listing could not be read.
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    /// The kernel's rule dump failed.
    #[error(transparent)]
    Dump(#[from] DumpError),
}

/// What one [`PolicyProgrammer::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyReport {
    /// Nothing to do: the kernel already holds the desired table.
    pub unchanged: bool,
    /// The table was replaced whole (first write, or after a failure).
    pub full: bool,
    /// An incremental transaction was refused and the full replace followed.
    pub fell_back: bool,
    /// `nft` commands written.
    pub commands: usize,
    /// Time spent in `nft`.
    pub elapsed: Duration,
}

/// Whether the kernel holds what was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    /// Nothing applied yet.
    Unknown,
    /// The table matches.
    InSync,
    /// The table is missing or differs (flushed, edited, deleted).
    Drifted,
}

/// The policy table of one network namespace.
#[derive(Debug)]
pub struct PolicyProgrammer {
    netns: Option<PathBuf>,
    table: String,
    applied: Option<Ruleset>,
    own: OwnPids,
}

impl PolicyProgrammer {
    /// Programs table `inet TABLE` in the namespace at `netns` (`None`: this one).
    pub fn new(netns: Option<&Path>, table: &str) -> Self {
        Self {
            netns: netns.map(Path::to_path_buf),
            table: table.to_string(),
            applied: None,
            own: OwnPids::default(),
        }
    }

    /// The PIDs of the `nft` processes that wrote the table (for an
    /// nftables monitor, which must not report our own commits).
    pub fn own_pids(&self) -> OwnPids {
        self.own.clone()
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// What the kernel holds, as far as this programmer knows.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }

    /// Forgets what was applied: the next [`apply`](Self::apply) replaces
    /// the table whole.
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    fn run(&self, script: &str) -> Result<(), NftError> {
        let own = self.own.clone();
        nftcmd::run_with(self.netns.as_deref(), &["-f", "-"], script, move |pid| {
            own.record(pid)
        })
        .map(drop)
    }

    /// Brings the table to `desired`: the minimal transaction from what was
    /// applied, or a whole replace the first time and when the minimal one
    /// is refused (the kernel no longer holds what we think).
    pub fn apply(&mut self, desired: &Ruleset) -> Result<ApplyReport, PolicyError> {
        let start = Instant::now();
        let mut report = ApplyReport::default();
        if let Some(old) = &self.applied {
            let Some(script) = diff(&self.table, old, desired) else {
                report.unchanged = true;
                return Ok(report);
            };
            report.commands = script.lines().count();
            match self.run(&script) {
                Ok(()) => {
                    self.applied = Some(desired.clone());
                    report.elapsed = start.elapsed();
                    return Ok(report);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "incremental policy update refused; replacing the table");
                    report.fell_back = true;
                }
            }
        }
        self.applied = None;
        let script = full_replace(&self.table, desired);
        report.full = true;
        report.commands = script.lines().count();
        self.run(&script)?;
        self.applied = Some(desired.clone());
        report.elapsed = start.elapsed();
        Ok(report)
    }

    /// Compares the table with what was applied, cheaply: every rule (its
    /// chain and fingerprint) from one kernel dump, and the sets' and maps'
    /// elements. Catches a flushed, deleted or edited table, chain, rule,
    /// set or map; not a base chain's changed hook (see [`check_full`]).
    ///
    /// [`check_full`]: Self::check_full
    pub fn check(&self) -> Result<TableState, PolicyError> {
        let Some(applied) = &self.applied else {
            return Ok(TableState::Unknown);
        };
        let rules = match nfrules::dump(self.netns.as_deref(), &self.table) {
            Ok(r) => r,
            Err(e) if e.no_table() => return Ok(TableState::Drifted),
            Err(e) => return Err(e.into()),
        };
        let ns = self.netns.as_deref();
        let sets = nftcmd::run(ns, &["-j", "list", "sets", "inet"], "")?;
        let maps = nftcmd::run(ns, &["-j", "list", "maps", "inet"], "")?;
        let seen = quick_view(rules, &sets, &maps, &self.table)?;
        Ok(if seen == summarize(applied).rules_view() {
            TableState::InSync
        } else {
            TableState::Drifted
        })
    }

    /// Reads the whole table back with `nft -j list table` (chains with
    /// their hooks included) and compares it with what was applied. About a
    /// second of `nft` CPU for twenty thousand rules: for rare use.
    pub fn check_full(&self) -> Result<TableState, PolicyError> {
        let Some(applied) = &self.applied else {
            return Ok(TableState::Unknown);
        };
        let listing = match nftcmd::run(
            self.netns.as_deref(),
            &["-j", "list", "table", "inet", &self.table],
            "",
        ) {
            Ok(out) => out,
            // No such table: it was deleted.
            Err(NftError::Rejected { .. }) => return Ok(TableState::Drifted),
            Err(e) => return Err(e.into()),
        };
        let seen = parse_listing(&listing)?;
        Ok(if seen == summarize(applied) {
            TableState::InSync
        } else {
            TableState::Drifted
        })
    }

    /// Checks the table and replaces it whole when it drifted; true if it did.
    pub fn repair(&mut self) -> Result<bool, PolicyError> {
        if self.check()? != TableState::Drifted {
            return Ok(false);
        }
        let Some(desired) = self.applied.take() else {
            return Ok(false);
        };
        tracing::warn!(table = %self.table, "policy table changed behind our back; restoring it");
        self.apply(&desired)?;
        Ok(true)
    }

    /// Deletes the table (when policy is turned off).
    pub fn remove(&mut self) -> Result<(), PolicyError> {
        let t = &self.table;
        self.run(&format!("add table inet {t}\ndelete table inet {t}\n"))?;
        self.applied = None;
        Ok(())
    }
}

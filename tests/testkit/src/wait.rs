//! Poll a condition until it holds or a deadline passes (never a bare sleep).

use std::fmt;
use std::time::{Duration, Instant};

/// The condition did not hold before the deadline.
#[derive(Debug)]
pub struct WaitError {
    /// What was waited for.
    pub what: String,
    /// How long was waited.
    pub waited: Duration,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.waited, self.what
        )
    }
}

impl std::error::Error for WaitError {}

/// Calls `cond` every `every` until it returns true or `timeout` passes.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<Duration, WaitError> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(WaitError {
                what: what.to_string(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_the_condition_holds() {
        let mut n = 0;
        let r = wait_until(
            "n to reach 3",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                n >= 3
            },
        );
        assert!(r.is_ok());
        assert_eq!(n, 3);
    }

    #[test]
    fn times_out_naming_what_it_waited_for() {
        let e = wait_until(
            "never",
            Duration::from_millis(20),
            Duration::from_millis(5),
            || false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("never"), "{e}");
    }
}

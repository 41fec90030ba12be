//! Turning a process's environment and stdin into a validated invocation.

use crate::config::NetConf;
use crate::env::{CniEnv, Command};
use crate::error::CniError;
use crate::plugin::{Fault, Invocation, FAIL_AFTER_ENV};

/// What a plugin process received: the environment, and stdin unless the
/// command is VERSION (which needs no configuration).
#[derive(Debug)]
pub enum Input {
    /// CNI_COMMAND=VERSION.
    Version,
    /// Any other command, with its configuration.
    Invoke(Box<Invocation>),
}

impl Input {
    /// Reads `std::env` and validates `raw` against it.
    pub fn from_process(raw: Vec<u8>) -> Result<Self, CniError> {
        let env = CniEnv::from_vars(|k| std::env::var(k).ok())?;
        if env.command == Command::Version {
            return Ok(Self::Version);
        }
        let conf = NetConf::parse(&raw)?;
        Ok(Self::Invoke(Box::new(Invocation {
            env,
            conf,
            raw,
            fail_after: Fault::from_env_value(std::env::var(FAIL_AFTER_ENV).ok().as_deref()),
        })))
    }
}

//! `install-cni`: puts tortie's CNI plugins and network configuration on a
//! node, as Calico's install-cni init container does. It runs in the
//! tortie image with the host's `/opt/cni/bin` mounted at
//! `/host/opt/cni/bin` and `/etc/cni/net.d` at `/host/etc/cni/net.d`:
//!
//! - copies `tortie` and `tortie-ipam` from the image into the host's
//!   plugin folder when the host's copy differs (new file + rename, so a
//!   runtime never runs a half-written plugin);
//! - installs `portmap` (chained in the configuration, as Calico chains
//!   it) only when the host has none, never replacing the host's own;
//! - writes `10-tortie.conflist` built from the environment when its
//!   content changes (new file + rename).
//!
//! Rerunning with the same input changes nothing. The settings come from
//! [`settings`] (pure), the file work is in [`files`].
//!
//! Must not: write anything outside the two host folders, replace a
//! `portmap` the host already has, or write a configuration the `tortie`
//! plugin would refuse (the rendered plugin entry is checked with
//! [`crate::config::NetConf::parse`] before anything is written).

pub mod cli;
pub mod files;
pub mod settings;

pub use files::{install, Action, Report};
pub use settings::{InstallSettings, SettingsError};

/// Why `install-cni` failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The environment is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A plugin the image must ship is missing from the source folder.
    #[error("{path}: missing in the image (TORTIE_CNI_SOURCE_DIR); cannot install {name}, which the configuration needs")]
    MissingSource {
        /// The plugin's name.
        name: &'static str,
        /// Where it was looked for.
        path: String,
    },
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl InstallError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

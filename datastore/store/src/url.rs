//! Datastore URLs: `sqlite:///path` and `etcd://h1:2379[,h2:2379]`.

use std::path::PathBuf;

use crate::error::{Result, StoreError};

/// The datastore used when neither `--datastore` nor `TORTIE_DATASTORE` is set.
pub const DEFAULT_DATASTORE: &str = "sqlite:///var/lib/tortie/tortie.db";

/// A parsed datastore URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatastoreUrl {
    /// An SQLite database file (absolute path).
    Sqlite(PathBuf),
    /// etcd endpoints as `host:port`.
    Etcd(Vec<String>),
}

fn invalid(url: &str, why: &str) -> StoreError {
    StoreError::Config(format!(
        "datastore URL {url:?}: {why}; valid forms are sqlite:///absolute/path.db \
         and etcd://host:port[,host:port...]"
    ))
}

impl DatastoreUrl {
    /// Parses `url`, naming the valid forms when it is not one of them.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') {
                return Err(invalid(
                    url,
                    "the sqlite path must be an absolute file path",
                ));
            }
            return Ok(DatastoreUrl::Sqlite(PathBuf::from(path)));
        }
        if let Some(hosts) = url.strip_prefix("etcd://") {
            let endpoints: Vec<String> = hosts
                .trim_end_matches('/')
                .split(',')
                .map(str::trim)
                .map(str::to_string)
                .collect();
            for e in &endpoints {
                let port_ok = e
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !port_ok {
                    return Err(invalid(url, &format!("endpoint {e:?} is not host:port")));
                }
            }
            return Ok(DatastoreUrl::Etcd(endpoints));
        }
        Err(invalid(url, "unknown scheme"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_an_absolute_file() {
        assert_eq!(
            DatastoreUrl::parse("sqlite:///var/lib/tortie/tortie.db").unwrap(),
            DatastoreUrl::Sqlite("/var/lib/tortie/tortie.db".into())
        );
        assert!(DatastoreUrl::parse("sqlite://relative.db").is_err());
        assert!(DatastoreUrl::parse("sqlite:///").is_err());
    }

    #[test]
    fn etcd_urls_list_host_port_endpoints() {
        assert_eq!(
            DatastoreUrl::parse("etcd://10.0.0.1:2379,h2:2379").unwrap(),
            DatastoreUrl::Etcd(vec!["10.0.0.1:2379".into(), "h2:2379".into()])
        );
        assert!(DatastoreUrl::parse("etcd://h1").is_err());
    }

    #[test]
    fn unknown_schemes_are_rejected_naming_the_valid_forms() {
        let e = DatastoreUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(e.contains("sqlite:///") && e.contains("etcd://"), "{e}");
    }
}

//! `ETCD_*` environment variables (etcd's `pkg/flags.SetFlagsFromEnv`).
//!
//! Every flag `--foo-bar` is also read from `ETCD_FOO_BAR`, including
//! Synod's own `--zk-listen-addr` (`ETCD_ZK_LISTEN_ADDR`).  Rules, as etcd:
//! * flags are visited in name order; a variable whose flag was not given
//!   on the command line and whose value is non-empty sets the flag;
//! * a variable whose flag *was* given on the command line is fatal
//!   (even when the variable is empty);
//! * other `ETCD_*` variables (including recognised ones set to "") are
//!   reported as unrecognized;
//! * an unparsable value is an error; the conflict check wins over it.
//!
//! There are no special cases: `ETCD_VERSION` is the `--version` flag's
//! variable (it is applied after the version check, so it can only fail
//! to parse), `ETCD_CONFIG_FILE` is read earlier by the caller.

use std::collections::BTreeSet;

use super::flags::{FlagSet, FLAGS};
use super::go::quote;
use super::ConfigError;

/// `ETCD_<FLAG_UPPER_SNAKE>`.
pub fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.replace('-', "_").to_uppercase())
}

/// First value of `key` in `env` (first occurrence wins, as in Go).
pub fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Apply the environment to `fs`.  Returns the unrecognized `ETCD_*`
/// variables as `(name, value)`.
pub fn apply(
    fs: &mut FlagSet,
    env: &[(String, String)],
) -> Result<Vec<(String, String)>, ConfigError> {
    let already_set: BTreeSet<String> = FLAGS
        .iter()
        .enumerate()
        .filter(|(i, _)| fs.on_cmdline[*i])
        .map(|(_, f)| env_name(f.name))
        .collect();
    let mut order: Vec<usize> = (0..FLAGS.len()).collect();
    order.sort_by_key(|&i| FLAGS[i].name);

    let mut used = BTreeSet::new();
    let mut err = None;
    for i in order {
        let key = env_name(FLAGS[i].name);
        if already_set.contains(&key) {
            continue;
        }
        match lookup(env, &key) {
            Some(val) if !val.is_empty() => {
                used.insert(key.clone());
                if let Err(e) = fs.set_str(i, val) {
                    // etcd keeps the last error.
                    err = Some(ConfigError::Invalid(format!(
                        "invalid value {} for {key}: {e}",
                        quote(val)
                    )));
                }
            }
            _ => {}
        }
    }

    let mut unrecognized = Vec::new();
    for (k, v) in env {
        if used.contains(k) {
            continue;
        }
        if already_set.contains(k) {
            return Err(ConfigError::EnvConflict(k.clone()));
        }
        if k.starts_with("ETCD_") {
            unrecognized.push((k.clone(), v.clone()));
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(unrecognized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names() {
        assert_eq!(env_name("name"), "ETCD_NAME");
        assert_eq!(env_name("listen-client-urls"), "ETCD_LISTEN_CLIENT_URLS");
        assert_eq!(env_name("zk-listen-addr"), "ETCD_ZK_LISTEN_ADDR");
    }

    #[test]
    fn reads_env_and_reports_unrecognized() {
        let mut fs = FlagSet::new();
        let un = apply(
            &mut fs,
            &env(&[
                ("ETCD_NAME", "n1"),
                ("ETCD_FORCE_NEW_CLUSTER", "T"),
                ("ETCD_FOO", "bar"),
                ("ETCD_DATA_DIR", ""),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(fs.str("name"), "n1");
        assert!(fs.bool("force-new-cluster"));
        assert!(fs.is_set("name"));
        assert!(!fs.on_cmdline[super::super::flags::index_of("name").unwrap()]);
        assert_eq!(un, env(&[("ETCD_FOO", "bar"), ("ETCD_DATA_DIR", "")]));
    }

    #[test]
    fn conflict_even_when_empty_and_before_value_errors() {
        let mut fs = FlagSet::new();
        fs.parse_args(&["--name".to_string(), "x".to_string()])
            .unwrap();
        let e = apply(
            &mut fs,
            &env(&[("ETCD_HEARTBEAT_INTERVAL", "bad"), ("ETCD_NAME", "")]),
        )
        .unwrap_err();
        assert_eq!(e, ConfigError::EnvConflict("ETCD_NAME".into()));
    }

    #[test]
    fn bad_value() {
        let mut fs = FlagSet::new();
        let e = apply(&mut fs, &env(&[("ETCD_VERSION", "3.4.23")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value \"3.4.23\" for ETCD_VERSION: parse error"
        );
    }
}

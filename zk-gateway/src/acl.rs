//! ACLs: upstream's permission check (`ZooKeeperServer.checkACL`), the fix-up of a client's
//! ACL list on create/setACL (`PrepRequestProcessor.fixupACL`), and the digest scheme. Pure
//! functions over the connection's identities; never reads the store.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::jute::{Acl, Id};

/// Who a connection is: its ip identity plus what `addauth` added.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub ids: Vec<Id>,
    /// Authenticated as the configured super digest.
    pub superuser: bool,
}

impl Identity {
    pub fn for_peer(ip: IpAddr) -> Identity {
        Identity {
            ids: vec![Id {
                scheme: "ip".into(),
                id: ip.to_string(),
            }],
            superuser: false,
        }
    }

    /// The identities in the order upstream iterates them: its `authInfo` is a set backed by
    /// a `ConcurrentHashMap`, so whoAmI and `auth` ACLs list ids by hash bucket, then by
    /// insertion. Clients see that order, so it is reproduced.
    pub fn ordered(&self) -> Vec<&Id> {
        let mut table = 16usize;
        while self.ids.len() * 4 > table * 3 {
            table *= 2;
        }
        let mut v: Vec<(usize, usize, &Id)> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let h = java_id_hash(id);
                let spread = (h ^ ((h as u32) >> 16) as i32) & 0x7fff_ffff;
                (spread as usize & (table - 1), i, id)
            })
            .collect();
        v.sort_by_key(|(bucket, i, _)| (*bucket, *i));
        v.into_iter().map(|(_, _, id)| id).collect()
    }

    /// Whether `perm` is granted by `acl` (upstream: an empty ACL grants everything).
    pub fn allowed(&self, acl: &[Acl], perm: i32) -> bool {
        if self.superuser || acl.is_empty() {
            return true;
        }
        acl.iter().any(|a| {
            a.perms & perm != 0
                && ((a.id.scheme == "world" && a.id.id == "anyone")
                    || self
                        .ids
                        .iter()
                        .any(|id| id.scheme == a.id.scheme && matches(&a.id, id)))
        })
    }
}

/// Java's `String.hashCode` (over UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The jute-generated `Id.hashCode`.
fn java_id_hash(id: &Id) -> i32 {
    let mut r: i32 = 17;
    r = r
        .wrapping_mul(37)
        .wrapping_add(java_string_hash(&id.scheme));
    r.wrapping_mul(37).wrapping_add(java_string_hash(&id.id))
}

/// Whether the ACL id `acl_id` (same scheme as `id`) admits the connection identity `id`.
fn matches(acl_id: &Id, id: &Id) -> bool {
    match id.scheme.as_str() {
        "ip" => ip_matches(&acl_id.id, &id.id),
        _ => acl_id.id == id.id,
    }
}

/// `IPAuthenticationProvider.matches`: an address or a CIDR block.
fn ip_matches(pattern: &str, ip: &str) -> bool {
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return false;
    };
    let (net, bits) = match pattern.split_once('/') {
        Some((n, b)) => match b.parse::<u32>() {
            Ok(b) => (n, Some(b)),
            Err(_) => return false,
        },
        None => (pattern, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    let (a, n, width) = match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u32::from(a) as u128, u32::from(n) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (n >> shift)
}

fn ip_valid(pattern: &str) -> bool {
    let (net, bits) = match pattern.split_once('/') {
        Some((n, b)) => (n, Some(b)),
        None => (pattern, None),
    };
    match net.parse::<IpAddr>() {
        Ok(addr) => match bits {
            None => true,
            Some(b) => b
                .parse::<u32>()
                .is_ok_and(|b| b <= if addr.is_ipv4() { 32 } else { 128 }),
        },
        Err(_) => false,
    }
}

/// `DigestAuthenticationProvider.generateDigest`: `user:base64(sha1("user:password"))`.
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The ACL list to store, or `None` for InvalidACL (upstream's `fixupACL`): duplicates removed,
/// `auth` ids replaced by the connection's authenticated (non-ip) ids, other ids validated by
/// their scheme.
pub fn fixup(identity: &Identity, acl: &[Acl]) -> Option<Vec<Acl>> {
    if acl.is_empty() {
        return None;
    }
    let mut unique: Vec<Acl> = Vec::new();
    for a in acl {
        if !unique.contains(a) {
            unique.push(a.clone());
        }
    }
    let mut out = Vec::new();
    for a in unique {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a);
        } else if a.id.scheme == "auth" {
            let mut added = false;
            for id in identity.ordered() {
                if id.scheme != "ip" {
                    out.push(Acl {
                        perms: a.perms,
                        id: id.clone(),
                    });
                    added = true;
                }
            }
            if !added {
                return None;
            }
        } else {
            let valid = match a.id.scheme.as_str() {
                "digest" => a.id.id.split(':').count() == 2,
                "ip" => ip_valid(&a.id.id),
                _ => false,
            };
            if !valid {
                return None;
            }
            out.push(a);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id {
                scheme: scheme.into(),
                id: id.into(),
            },
        }
    }

    #[test]
    fn digest_matches_upstream() {
        // zkCli: addauth digest user:pass; upstream's generateDigest("user:pass").
        assert_eq!(digest("user:pass"), "user:smGaoVKd/cQkjm7b88GyorAUz20=");
    }

    #[test]
    fn world_ip_and_digest_checks() {
        let mut me = Identity::for_peer("127.0.0.1".parse().unwrap());
        assert!(me.allowed(&[acl(1, "world", "anyone")], 1));
        assert!(!me.allowed(&[acl(2, "world", "anyone")], 1));
        assert!(me.allowed(&[acl(31, "ip", "127.0.0.0/8")], 8));
        assert!(!me.allowed(&[acl(31, "ip", "10.0.0.1")], 8));
        let d = digest("u:p");
        assert!(!me.allowed(&[acl(31, "digest", &d)], 1));
        me.ids.push(Id {
            scheme: "digest".into(),
            id: d.clone(),
        });
        assert!(me.allowed(&[acl(31, "digest", &d)], 1));
        assert!(me.allowed(&[], 16));
    }

    #[test]
    fn identities_come_in_java_hash_set_order() {
        // upstream (verified): ip:127.0.0.1 before digest:user1:..., but digest:alice:...
        // before ip:127.0.0.1
        let mut me = Identity::for_peer("127.0.0.1".parse().unwrap());
        me.ids.push(Id {
            scheme: "digest".into(),
            id: digest("alice:secret"),
        });
        let schemes: Vec<&str> = me.ordered().iter().map(|i| i.scheme.as_str()).collect();
        assert_eq!(schemes, ["digest", "ip"]);
        let mut other = Identity::for_peer("127.0.0.1".parse().unwrap());
        other.ids.push(Id {
            scheme: "digest".into(),
            id: digest("user1:pw1"),
        });
        let schemes: Vec<&str> = other.ordered().iter().map(|i| i.scheme.as_str()).collect();
        assert_eq!(schemes, ["ip", "digest"]);
        assert_eq!(java_string_hash("ip"), 3367);
    }

    #[test]
    fn fixup_rules() {
        let me = Identity::for_peer("127.0.0.1".parse().unwrap());
        assert_eq!(fixup(&me, &[]), None);
        assert_eq!(fixup(&me, &[acl(31, "auth", "")]), None);
        assert_eq!(fixup(&me, &[acl(31, "world", "nobody")]), None);
        assert_eq!(fixup(&me, &[acl(31, "digest", "nocolon")]), None);
        assert_eq!(fixup(&me, &[acl(31, "ip", "300.1.1.1")]), None);
        let w = acl(31, "world", "anyone");
        assert_eq!(fixup(&me, &[w.clone(), w.clone()]), Some(vec![w]));
        let mut authed = me.clone();
        authed.ids.push(Id {
            scheme: "digest".into(),
            id: "u:x".into(),
        });
        assert_eq!(
            fixup(&authed, &[acl(7, "auth", "")]),
            Some(vec![acl(7, "digest", "u:x")])
        );
    }
}

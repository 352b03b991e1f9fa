//! Member and cluster IDs as etcd computes them
//! (`etcdserver/api/membership/member.go` `newMember`, `cluster.go` `genID`),
//! and etcd's bootstrap checks of the initial cluster
//! (`etcdserver/config.go` `VerifyBootstrap` / `VerifyJoinExisting`).
//!
//! SHA-1 is implemented here (60 lines, checked against the FIPS 180
//! test vectors) rather than pulling in a crate for two call sites.

use std::collections::BTreeSet;

use super::urls::{format_cluster, ListenUrl};

/// etcd's member ID: the first 8 bytes (big endian) of
/// SHA-1(sorted peer URLs concatenated ++ cluster token [++ unix time]).
///
/// Members of the initial cluster use `now_unix = None`; members added
/// later at runtime (`MemberAdd`) hash the current Unix time in seconds.
/// The member *name* does not take part.
pub fn member_id(peer_urls: &[String], cluster_token: &str, now_unix: Option<i64>) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut b = Vec::new();
    for u in urls {
        b.extend_from_slice(u.as_bytes());
    }
    b.extend_from_slice(cluster_token.as_bytes());
    if let Some(t) = now_unix {
        b.extend_from_slice(t.to_string().as_bytes());
    }
    first_u64(&sha1(&b))
}

/// etcd's cluster ID: first 8 bytes (big endian) of SHA-1 over the
/// sorted member IDs, each as 8 big-endian bytes.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut b = Vec::with_capacity(8 * ids.len());
    for id in ids {
        b.extend_from_slice(&id.to_be_bytes());
    }
    first_u64(&sha1(&b))
}

fn first_u64(h: &[u8; 20]) -> u64 {
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

/// `VerifyBootstrap`: the local member is in the cluster with exactly its
/// advertised peer URLs, no URL is shared, and the cluster is not empty.
pub(crate) fn verify_bootstrap(
    name: &str,
    advertise_peer_urls: &[ListenUrl],
    members: &[(String, Vec<ListenUrl>)],
    discovery: bool,
) -> Result<(), String> {
    has_local_member(name, members)?;
    advertise_matches_cluster(name, advertise_peer_urls, members)?;
    if has_duplicate_url(members) {
        return Err(format!(
            "initial cluster {} has duplicate url",
            format_cluster(members)
        ));
    }
    if members.is_empty() && !discovery {
        return Err("initial cluster unset and no discovery URL found".into());
    }
    Ok(())
}

/// `VerifyJoinExisting`.
pub(crate) fn verify_join_existing(
    name: &str,
    members: &[(String, Vec<ListenUrl>)],
    discovery: bool,
) -> Result<(), String> {
    has_local_member(name, members)?;
    if has_duplicate_url(members) {
        return Err(format!(
            "initial cluster {} has duplicate url",
            format_cluster(members)
        ));
    }
    if discovery {
        return Err("discovery URL should not be set when joining existing initial cluster".into());
    }
    Ok(())
}

fn has_local_member(name: &str, members: &[(String, Vec<ListenUrl>)]) -> Result<(), String> {
    if members.iter().any(|(n, _)| n == name) {
        Ok(())
    } else {
        Err(format!(
            "couldn't find local name {} in the initial cluster configuration",
            super::go::quote(name)
        ))
    }
}

fn has_duplicate_url(members: &[(String, Vec<ListenUrl>)]) -> bool {
    let mut seen = BTreeSet::new();
    members
        .iter()
        .flat_map(|(_, us)| us)
        .any(|u| !seen.insert(u.to_string()))
}

/// `advertiseMatchesCluster`, with etcd's messages.  Like etcd, URLs that
/// differ as strings are compared again after resolving host names
/// (`localhost` and IP literals are never resolved).
fn advertise_matches_cluster(
    name: &str,
    advertise: &[ListenUrl],
    members: &[(String, Vec<ListenUrl>)],
) -> Result<(), String> {
    let cluster: Vec<String> = {
        let mut v: Vec<String> = members
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, us)| us.iter().map(|u| u.to_string()))
            .collect();
        v.sort();
        v
    };
    let mut ap: Vec<String> = advertise.iter().map(|u| u.to_string()).collect();
    ap.sort();
    let detail = match urls_equal(&ap, &cluster, advertise, members, name) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let ap_set: BTreeSet<&String> = ap.iter().collect();
    let init_set: BTreeSet<&String> = cluster.iter().collect();
    let missing: Vec<String> = init_set
        .iter()
        .filter(|u| !ap_set.contains(*u))
        .map(|u| format!("{name}={u}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({detail})",
            missing.join(","),
            ap.join(",")
        ));
    }
    let own = format_cluster(&[(name.to_string(), advertise.to_vec())]);
    let missing: Vec<&String> = ap_set
        .iter()
        .filter(|u| !init_set.contains(*u))
        .copied()
        .collect();
    if !missing.is_empty() {
        let m: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(format!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={own}",
            m.join(",")
        ));
    }
    Err(format!(
        "failed to resolve {} to match --initial-cluster={own} ({detail})",
        ap.join(",")
    ))
}

fn urls_equal(
    a: &[String],
    b: &[String],
    advertise: &[ListenUrl],
    members: &[(String, Vec<ListenUrl>)],
    name: &str,
) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!(
            "len({}) != len({})",
            super::go::quote_list(a),
            super::go::quote_list(b)
        ));
    }
    if a == b {
        return Ok(());
    }
    let resolve = |urls: &[ListenUrl]| -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(urls.len());
        for u in urls {
            let literal = u.scheme.is_unix()
                || u.host == "localhost"
                || u.host.parse::<std::net::IpAddr>().is_ok();
            if literal {
                out.push(u.to_string());
                continue;
            }
            let addr = u.socket_addr().map_err(|e| {
                format!(
                    "failed to resolve {} ({e})",
                    super::go::quote(&u.to_string())
                )
            })?;
            out.push(format!("{}://{addr}", u.scheme.as_str()));
        }
        out.sort();
        Ok(out)
    };
    let ra = resolve(advertise)?;
    let own: Vec<ListenUrl> = members
        .iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, us)| us.iter().cloned())
        .collect();
    let rb = resolve(&own)?;
    for (x, y) in ra.iter().zip(&rb) {
        if x != y {
            return Err(format!(
                "resolved urls: {} != {}",
                super::go::quote(x),
                super::go::quote(y)
            ));
        }
    }
    Ok(())
}

/// SHA-1 (FIPS 180-4).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::urls::parse_initial_cluster;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(&sha1(&vec![b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn default_single_member_ids_match_etcd() {
        // A fresh `etcd` with no flags reports member 8e9e05c52164694d in
        // cluster cdf818194e3a8c32.
        let m = member_id(&["http://localhost:2380".into()], "etcd-cluster", None);
        assert_eq!(m, 0x8e9e05c52164694d);
        assert_eq!(cluster_id(&[m]), 0xcdf818194e3a8c32);
    }

    #[test]
    fn member_id_sorts_urls_and_uses_time() {
        let a = member_id(&["http://b:1".into(), "http://a:1".into()], "t", None);
        let b = member_id(&["http://a:1".into(), "http://b:1".into()], "t", None);
        assert_eq!(a, b);
        assert_ne!(
            a,
            member_id(&["http://a:1".into(), "http://b:1".into()], "t", Some(1))
        );
        assert_eq!(cluster_id(&[1, 2]), cluster_id(&[2, 1]));
    }

    #[test]
    fn bootstrap_checks() {
        let m = parse_initial_cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:2").unwrap();
        let ap = |s: &str| vec![s.parse::<ListenUrl>().unwrap()];
        assert_eq!(
            verify_bootstrap("a", &ap("http://127.0.0.1:1"), &m, false),
            Ok(())
        );
        assert_eq!(
            verify_bootstrap("x", &ap("http://127.0.0.1:1"), &m, false).unwrap_err(),
            "couldn't find local name \"x\" in the initial cluster configuration"
        );
        assert_eq!(
            verify_bootstrap("a", &ap("http://127.0.0.1:9"), &m, false).unwrap_err(),
            "--initial-cluster has a=http://127.0.0.1:1 but missing from --initial-advertise-peer-urls=http://127.0.0.1:9 (resolved urls: \"http://127.0.0.1:9\" != \"http://127.0.0.1:1\")"
        );
        let dup = parse_initial_cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:1").unwrap();
        assert_eq!(
            verify_bootstrap("a", &ap("http://127.0.0.1:1"), &dup, false).unwrap_err(),
            "initial cluster a=http://127.0.0.1:1,b=http://127.0.0.1:1 has duplicate url"
        );
        assert_eq!(verify_join_existing("b", &m, false), Ok(()));
        assert!(verify_join_existing("b", &m, true).is_err());
    }
}

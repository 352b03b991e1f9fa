//! URL lists as etcd accepts them (`pkg/types/urls.go`, `embed/config.go`).
//!
//! etcd parses every URL with Go's `net/url` and then insists on
//! `scheme://host:port` with no path.  This is a small hand-written
//! parser for exactly that shape (no `url` crate): it reproduces the
//! error texts of both layers for the inputs people actually get wrong
//! (`127.0.0.1:2379`, `localhost:2379`, a trailing `/`, a missing port,
//! a bad port, an unterminated IPv6 literal).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use super::go::quote;

/// URL scheme accepted by etcd for listen / advertise URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Http,
    Https,
    /// `unix://host:port`: a unix socket whose file name is `host:port`.
    Unix,
    /// TLS over a unix socket.
    Unixs,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Unix => "unix",
            Scheme::Unixs => "unixs",
        }
    }

    /// `https` and `unixs` carry TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Unixs)
    }

    /// `unix` and `unixs` are unix-domain sockets.
    pub fn is_unix(self) -> bool {
        matches!(self, Scheme::Unix | Scheme::Unixs)
    }
}

/// One `scheme://host:port` URL (listen, advertise or peer URL).
///
/// `host` is kept exactly as written (without the brackets of an IPv6
/// literal), so `to_string()` gives back the same text Go's
/// `url.URL.String()` gives, which matters for member-ID hashing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenUrl {
    pub scheme: Scheme,
    /// Host name or IP literal, IPv6 without brackets; may be empty
    /// (`http://:2379`), which etcd rejects later for binding.
    pub host: String,
    pub port: u16,
}

impl ListenUrl {
    pub fn is_tls(&self) -> bool {
        self.scheme.is_tls()
    }

    /// `host:port` as Go's `url.URL.Host` (IPv6 in brackets).
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// For `unix`/`unixs` URLs: the socket path etcd uses (`host:port`).
    pub fn unix_path(&self) -> Option<String> {
        self.scheme.is_unix().then(|| self.host_port())
    }

    /// Resolve to the socket address(es) to bind or dial.
    ///
    /// `localhost` is `127.0.0.1` (etcd never resolves it), an IP literal
    /// is itself, an empty host is the IPv4 wildcard, any other name goes
    /// through the system resolver.  Unix-socket URLs are an error.
    pub fn socket_addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        if self.scheme.is_unix() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{self} is a unix socket URL, not a TCP address"),
            ));
        }
        if let Some(ip) = literal_ip(&self.host) {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }

    /// First address of [`socket_addrs`](Self::socket_addrs).
    pub fn socket_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket_addrs()?.into_iter().next().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{self} resolved to no address"),
            )
        })
    }
}

/// `localhost` / IP literal / empty host without touching DNS.
fn literal_ip(host: &str) -> Option<IpAddr> {
    match host {
        "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "" => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        h => h.parse().ok(),
    }
}

impl fmt::Display for ListenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host_port())
    }
}

impl FromStr for ListenUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_url(s)
    }
}

/// Parse one URL the way `types.NewURLs` does for one element
/// (input is trimmed first).  Error text is etcd's.
pub fn parse_url(input: &str) -> Result<ListenUrl, String> {
    let s = input.trim();
    let raw = go_url_parse(s).map_err(|msg| format!("parse {}: {}", quote(s), msg))?;
    let scheme = match raw.scheme.as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        "unix" => Scheme::Unix,
        "unixs" => Scheme::Unixs,
        _ => {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {s}"
            ))
        }
    };
    let not_host_port = || format!("URL address does not have the form \"host:port\": {s}");
    let (host, port) = split_host_port(&raw.host).ok_or_else(not_host_port)?;
    if raw.has_path {
        return Err(format!("URL must not contain a path: {s}"));
    }
    // Stricter than etcd (which accepts and then ignores these): never
    // silently drop part of what the operator wrote.
    if raw.has_extra {
        return Err(format!(
            "URL must not contain user info, a query or a fragment: {s}"
        ));
    }
    // etcd accepts an empty or out-of-range port here and fails when it
    // listens; Synod wants a real port number.
    let port: u16 = port.parse().map_err(|_| not_host_port())?;
    Ok(ListenUrl {
        scheme,
        host: host.to_string(),
        port,
    })
}

/// Comma-separated list (`types.NewURLs(strings.Split(s, ","))`),
/// sorted by string form as etcd sorts it, exact duplicates dropped.
pub fn parse_url_list(s: &str) -> Result<Vec<ListenUrl>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        out.push(parse_url(part)?);
    }
    sort_urls(&mut out);
    out.dedup();
    Ok(out)
}

/// Sort by string form (etcd's `types.URLs.Sort`).
pub fn sort_urls(urls: &mut [ListenUrl]) {
    urls.sort_by_cached_key(|u| u.to_string());
}

/// `a=http://h1:2380,a=http://h1:2381,b=...` (etcd's `types.NewURLsMap`).
///
/// Entries with the same name are merged (that is how a member gets
/// several peer URLs).  Members keep their first-appearance order; each
/// member's URLs are sorted.  Empty entries are skipped; an entry with
/// no `=` is a member with an empty URL, which fails URL parsing.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Vec<ListenUrl>)>, String> {
    let mut raw: Vec<(String, Vec<String>)> = Vec::new();
    for entry in s.split(',') {
        if entry.is_empty() {
            continue;
        }
        let (name, value) = match entry.find('=') {
            Some(i) => (&entry[..i], &entry[i + 1..]),
            None => (entry, ""),
        };
        match raw.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(value.to_string()),
            None => raw.push((name.to_string(), vec![value.to_string()])),
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    for (name, values) in raw {
        let mut urls = Vec::with_capacity(values.len());
        for v in &values {
            urls.push(parse_url(v)?);
        }
        sort_urls(&mut urls);
        out.push((name, urls));
    }
    Ok(out)
}

/// `name=url,...` string for a member list, sorted like
/// `types.URLsMap.String()`.
pub fn format_cluster(members: &[(String, Vec<ListenUrl>)]) -> String {
    let mut pairs: Vec<String> = members
        .iter()
        .flat_map(|(n, us)| us.iter().map(move |u| format!("{n}={u}")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Go's `net.SplitHostPort`, returning `(host, port)` or `None` on error.
pub(crate) fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let i = hostport.rfind(':')?;
    let (host, port) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        // "]" must be immediately followed by the last colon.
        if end + 1 != i {
            return None;
        }
        (&hostport[1..end], &hostport[i + 1..])
    } else {
        let host = &hostport[..i];
        if host.contains(':') || host.contains('[') || host.contains(']') {
            return None;
        }
        (host, &hostport[i + 1..])
    };
    if port.contains('[') || port.contains(']') {
        return None;
    }
    Some((host, port))
}

/// What etcd's validation needs from a Go `url.Parse` result.
struct RawUrl {
    scheme: String,
    host: String,
    has_path: bool,
    has_extra: bool,
}

/// Subset of Go's `url.Parse`, returning Go's error message (without the
/// `parse "..."` prefix) for the failures that matter here.
fn go_url_parse(s: &str) -> Result<RawUrl, String> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    let mut has_extra = false;
    let mut rest = s;
    if let Some(i) = rest.find('#') {
        has_extra = true;
        rest = &rest[..i];
    }
    // Scheme: letter followed by [A-Za-z0-9+.-] up to ':'.
    let mut scheme = String::new();
    for (i, c) in rest.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' => {
                if i == 0 {
                    return Err("missing protocol scheme".into());
                }
                scheme = rest[..i].to_ascii_lowercase();
                rest = &rest[i + 1..];
                break;
            }
            _ => break,
        }
    }
    if let Some(i) = rest.find('?') {
        has_extra = true;
        rest = &rest[..i];
    }
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // Opaque URL such as "localhost:2379": no host at all.
            return Ok(RawUrl {
                scheme,
                host: String::new(),
                has_path: false,
                has_extra,
            });
        }
        let seg = rest.split('/').next().unwrap_or("");
        if seg.contains(':') {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    let (authority, path) = match rest.strip_prefix("//") {
        Some(r) => match r.find('/') {
            Some(i) => (&r[..i], &r[i..]),
            None => (r, ""),
        },
        None => ("", rest),
    };
    let host = match authority.rfind('@') {
        Some(i) => {
            has_extra = true;
            &authority[i + 1..]
        }
        None => authority,
    };
    check_go_host(host)?;
    Ok(RawUrl {
        scheme,
        host: host.to_string(),
        has_path: !path.is_empty(),
        has_extra,
    })
}

/// Go's `parseHost` checks: bracketed IPv6, numeric optional port,
/// no odd characters in the host name.
fn check_go_host(host: &str) -> Result<(), String> {
    let port_part = if host.starts_with('[') {
        let Some(end) = host.rfind(']') else {
            return Err("missing ']' in host".into());
        };
        let after = &host[end + 1..];
        if !after.is_empty() && !after.starts_with(':') {
            return Err(format!("invalid port {} after host", quote(after)));
        }
        after
    } else {
        match host.rfind(':') {
            Some(i) => {
                for c in host[..i].chars() {
                    check_host_char(c)?;
                }
                &host[i..]
            }
            None => {
                for c in host.chars() {
                    check_host_char(c)?;
                }
                ""
            }
        }
    };
    if let Some(p) = port_part.strip_prefix(':') {
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port {} after host", quote(port_part)));
        }
    }
    Ok(())
}

fn check_host_char(c: char) -> Result<(), String> {
    if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:".contains(c) {
        Ok(())
    } else {
        Err(format!(
            "invalid character {} in host name",
            quote(&c.to_string())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let u = parse_url("http://localhost:2379").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Http, "localhost", 2379)
        );
        assert_eq!(u.to_string(), "http://localhost:2379");
        let u = parse_url(" HTTPS://[::1]:2380 ").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Https, "::1", 2380)
        );
        assert_eq!(u.to_string(), "https://[::1]:2380");
        let u = parse_url("unix://localhost:12345").unwrap();
        assert_eq!(u.unix_path().as_deref(), Some("localhost:12345"));
        assert!(parse_url("http://:2379").unwrap().host.is_empty());
    }

    #[test]
    fn etcd_error_messages() {
        let cases = [
            (
                "http://localhost:2379/",
                "URL must not contain a path: http://localhost:2379/",
            ),
            (
                "http://a/b",
                "URL address does not have the form \"host:port\": http://a/b",
            ),
            (
                "127.0.0.1:2379",
                "parse \"127.0.0.1:2379\": first path segment in URL cannot contain colon",
            ),
            (
                "localhost:2379",
                "URL scheme must be http, https, unix, or unixs: localhost:2379",
            ),
            (
                "ftp://a:1",
                "URL scheme must be http, https, unix, or unixs: ftp://a:1",
            ),
            ("http://[::1", "parse \"http://[::1\": missing ']' in host"),
            (
                "http://a:b",
                "parse \"http://a:b\": invalid port \":b\" after host",
            ),
            (
                "http://a",
                "URL address does not have the form \"host:port\": http://a",
            ),
            ("", "URL scheme must be http, https, unix, or unixs: "),
            ("://a:1", "parse \"://a:1\": missing protocol scheme"),
            (
                "unix:///tmp/sock",
                "URL address does not have the form \"host:port\": unix:///tmp/sock",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_url(input).unwrap_err(), want, "input {input:?}");
        }
        assert!(parse_url("http://u@a:1").is_err());
        assert!(parse_url("http://a:1?x=1").is_err());
        assert!(parse_url("http://a:99999").is_err());
    }

    #[test]
    fn list_is_sorted_and_deduplicated() {
        let l = parse_url_list("http://b:1,http://a:1,http://b:1").unwrap();
        let s: Vec<String> = l.iter().map(|u| u.to_string()).collect();
        assert_eq!(s, ["http://a:1", "http://b:1"]);
    }

    #[test]
    fn resolves_localhost_without_dns() {
        let u = parse_url("http://localhost:2379").unwrap();
        assert_eq!(u.socket_addr().unwrap(), "127.0.0.1:2379".parse().unwrap());
        let u = parse_url("http://[::1]:1").unwrap();
        assert_eq!(u.socket_addr().unwrap(), "[::1]:1".parse().unwrap());
        let u = parse_url("http://0.0.0.0:1").unwrap();
        assert_eq!(u.socket_addr().unwrap(), "0.0.0.0:1".parse().unwrap());
        assert!(parse_url("unix://a:1").unwrap().socket_addrs().is_err());
    }

    #[test]
    fn initial_cluster_merges_names() {
        let m = parse_initial_cluster("a=http://h:2,b=http://h:3,a=http://h:1,").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, "a");
        assert_eq!(m[0].1.len(), 2);
        assert_eq!(m[0].1[0].to_string(), "http://h:1");
        assert_eq!(format_cluster(&m), "a=http://h:1,a=http://h:2,b=http://h:3");
        assert!(parse_initial_cluster("a").is_err());
        assert!(parse_initial_cluster("").unwrap().is_empty());
    }

    #[test]
    fn split_host_port_like_go() {
        assert_eq!(split_host_port("a:1"), Some(("a", "1")));
        assert_eq!(split_host_port("[::1]:1"), Some(("::1", "1")));
        assert_eq!(split_host_port(":1"), Some(("", "1")));
        assert_eq!(split_host_port("a"), None);
        assert_eq!(split_host_port("::1:2"), None);
    }
}

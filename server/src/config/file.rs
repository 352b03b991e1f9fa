//! `--config-file` / `ETCD_CONFIG_FILE`: etcd's YAML configuration file.
//!
//! etcd reads the file with `sigs.k8s.io/yaml` (YAML 1.1 -> JSON ->
//! `encoding/json` into `embed.Config`).  To keep dependencies lean this
//! module carries a small parser for the YAML subset such files use: a
//! block mapping of scalars, block or flow (`[a, b]`) sequences of
//! scalars, and the two nested `*-transport-security` mappings; plain,
//! single- and double-quoted scalars; comments.  Anything beyond that
//! (anchors, tags, block scalars, multi-line scalars, flow mappings) is
//! rejected with an explicit error rather than misread.
//!
//! Value conversion follows etcd: keys match flag names (ASCII
//! case-insensitively, like `encoding/json`); numbers and booleans are
//! coerced to strings for string fields; a string where a number or bool
//! is expected is an error with `encoding/json`'s text; durations are
//! integers in nanoseconds; `null` leaves the default.  Keys etcd does not
//! know are ignored by etcd; Synod reports them as warnings.

use super::flags::{index_of, FlagSet, Kind, Value, FLAGS};
use super::go;
use super::urls::parse_url_list;
use super::ConfigError;

/// A YAML node of the supported subset.
#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

/// Read and apply `path` onto a fresh flag set.  Returns the flag set and
/// warnings about ignored keys.
pub fn load(path: &str) -> Result<(FlagSet, Vec<String>), ConfigError> {
    let text = std::fs::read(path).map_err(|e| ConfigError::Invalid(go_read_error(path, &e)))?;
    let text = String::from_utf8_lossy(&text);
    let doc = parse_yaml(&text)
        .map_err(|e| ConfigError::Invalid(format!("error converting YAML to JSON: {e}")))?;
    apply(&doc)
}

/// Apply a parsed document onto a fresh flag set (see [`load`]).
pub fn apply(doc: &Yaml) -> Result<(FlagSet, Vec<String>), ConfigError> {
    let mut fs = FlagSet::new();
    let mut warnings = Vec::new();
    let entries = match doc {
        Yaml::Null => return Ok((fs, warnings)),
        Yaml::Map(m) => m,
        other => {
            return Err(type_error(&format!(
                "json: cannot unmarshal {} into Go value of type embed.configYAML",
                json_kind(other)
            )))
        }
    };
    // encoding/json sees the keys sorted (the YAML map went through a Go
    // map) and reports the first type error in that order.
    let mut sorted: Vec<&(String, Yaml)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut first_err: Option<ConfigError> = None;
    for (key, val) in sorted {
        let lkey = key.to_ascii_lowercase();
        let r = if lkey == "client-transport-security" || lkey == "peer-transport-security" {
            let prefix = if lkey.starts_with("peer") {
                "peer-"
            } else {
                ""
            };
            apply_security(&mut fs, &lkey, prefix, val, &mut warnings)
        } else {
            match index_of(&lkey).filter(|&i| FLAGS[i].file_type.is_some()) {
                Some(i) => apply_key(&mut fs, i, val),
                None => {
                    warnings.push(format!(
                        "unrecognized configuration file key {} (ignored)",
                        go::quote(key)
                    ));
                    Ok(())
                }
            }
        };
        if let Err(e) = r {
            if first_err.is_none() {
                first_err = Some(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok((fs, warnings)),
    }
}

fn apply_security(
    fs: &mut FlagSet,
    key: &str,
    prefix: &str,
    val: &Yaml,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let entries = match val {
        Yaml::Null => return Ok(()),
        Yaml::Map(m) => m,
        other => {
            return Err(type_error(&format!(
                "json: cannot unmarshal {} into Go struct field configYAML.{key} of type embed.securityConfig",
                json_kind(other)
            )))
        }
    };
    for (sub, v) in entries {
        let lsub = sub.to_ascii_lowercase();
        let (flag, ty) = match lsub.as_str() {
            "cert-file" | "key-file" | "trusted-ca-file" => (format!("{prefix}{lsub}"), "string"),
            "client-cert-auth" | "auto-tls" => (format!("{prefix}{lsub}"), "bool"),
            _ => {
                warnings.push(format!(
                    "unrecognized configuration file key {} (ignored)",
                    go::quote(&format!("{key}.{sub}"))
                ));
                continue;
            }
        };
        let idx = index_of(&flag).expect("TLS flag in table");
        let field = format!("securityConfig.{key}.{lsub}");
        let value = match (ty, v) {
            (_, Yaml::Null) => continue,
            ("bool", Yaml::Bool(b)) => Value::Bool(*b),
            ("string", v) if scalar_string(v).is_some() => Value::Str(scalar_string(v).unwrap()),
            (ty, v) => return Err(unmarshal_error(v, &field, ty)),
        };
        fs.put(idx, value);
    }
    Ok(())
}

fn apply_key(fs: &mut FlagSet, idx: usize, val: &Yaml) -> Result<(), ConfigError> {
    let spec = &FLAGS[idx];
    let ty = spec.file_type.expect("file key");
    let field = format!("configYAML.{}", spec.name);
    if *val == Yaml::Null {
        return Ok(());
    }
    let err = || unmarshal_error(val, &field, ty);
    if ty == "[]string" {
        let Yaml::Seq(items) = val else {
            return Err(err());
        };
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            match it {
                Yaml::Null => out.push(String::new()),
                it => out
                    .push(scalar_string(it).ok_or_else(|| unmarshal_error(it, &field, "string"))?),
            }
        }
        fs.put(idx, Value::List(out));
        return Ok(());
    }
    let value = match spec.kind {
        Kind::Bool => match val {
            Yaml::Bool(b) => Value::Bool(*b),
            _ => return Err(err()),
        },
        Kind::Uint | Kind::Uint32 | Kind::Int | Kind::Duration => {
            let n = json_integer(val).ok_or_else(err)?;
            let (lo, hi): (i128, i128) = match ty {
                "uint" | "uint64" => (0, u64::MAX as i128),
                "uint32" => (0, u32::MAX as i128),
                _ => (i64::MIN as i128, i64::MAX as i128),
            };
            if n < lo || n > hi {
                return Err(err());
            }
            match spec.kind {
                Kind::Int => Value::Int(n as i64),
                Kind::Duration => Value::Duration(n as i64),
                _ => Value::Uint(n as u64),
            }
        }
        _ => {
            let s = scalar_string(val).ok_or_else(err)?;
            match spec.kind {
                Kind::Str => Value::Str(s),
                Kind::Choice(valid) => {
                    // initial-cluster-state is checked by validation; the
                    // proxy flags go through their flag's Set (fatal in etcd).
                    if spec.name != "initial-cluster-state"
                        && !s.is_empty()
                        && !valid.contains(&s.as_str())
                    {
                        let what = if spec.name == "proxy" {
                            "proxyFlag"
                        } else {
                            "discovery-fallback flag"
                        };
                        return Err(ConfigError::Invalid(format!(
                            "unexpected error setting up {what}: invalid value"
                        )));
                    }
                    if s.is_empty() {
                        return Ok(());
                    }
                    Value::Str(s)
                }
                Kind::Urls => {
                    if s.is_empty() {
                        return Ok(());
                    }
                    let urls = parse_url_list(&s).map_err(|e| {
                        // etcd's message names advertise-client-urls
                        // "advertise-peer-urls"; kept for fidelity.
                        let what = if spec.name == "advertise-client-urls" {
                            "advertise-peer-urls"
                        } else {
                            spec.name
                        };
                        ConfigError::Invalid(format!("unexpected error setting up {what}: {e}"))
                    })?;
                    let seen = urls.iter().map(|u| u.to_string()).collect();
                    Value::Urls { urls, seen }
                }
                Kind::Cors | Kind::UniqueStrings | Kind::Strings | Kind::SocketAddr => {
                    if s.is_empty() && spec.kind != Kind::SocketAddr {
                        return Ok(());
                    }
                    let mut tmp = FlagSet::new();
                    tmp.set_str(idx, &s).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "invalid value {} for {}: {e}",
                            go::quote(&s),
                            spec.name
                        ))
                    })?;
                    tmp.values[idx].clone()
                }
                _ => unreachable!("kind handled above"),
            }
        }
    };
    fs.put(idx, value);
    Ok(())
}

/// A scalar as a JSON string field receives it (sigs.k8s.io/yaml coerces
/// numbers and booleans to strings when the target is a string).
fn scalar_string(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Str(s) => Some(s.clone()),
        Yaml::Int(i) => Some(i.to_string()),
        Yaml::Float(f) => Some(format_float(*f)),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer-valued JSON number.
fn json_integer(v: &Yaml) -> Option<i128> {
    match v {
        Yaml::Int(i) => Some(*i),
        Yaml::Float(f) if f.fract() == 0.0 && f.abs() < 1e21 => Some(*f as i128),
        _ => None,
    }
}

fn format_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f.is_nan() {
        return "NaN".into();
    }
    let s = format!("{f}");
    if s.len() > 21 {
        format!("{f:e}")
    } else {
        s
    }
}

fn json_kind(v: &Yaml) -> String {
    match v {
        Yaml::Null => "null".into(),
        Yaml::Bool(_) => "bool".into(),
        Yaml::Int(_) | Yaml::Float(_) => "number".into(),
        Yaml::Str(_) => "string".into(),
        Yaml::Seq(_) => "array".into(),
        Yaml::Map(_) => "object".into(),
    }
}

fn unmarshal_error(v: &Yaml, field: &str, ty: &str) -> ConfigError {
    // encoding/json quotes the literal for numbers that do not fit.
    let what = match v {
        Yaml::Int(i) => format!("number {i}"),
        Yaml::Float(f) => format!("number {}", format_float(*f)),
        other => json_kind(other),
    };
    type_error(&format!(
        "json: cannot unmarshal {what} into Go struct field {field} of type {ty}"
    ))
}

fn type_error(msg: &str) -> ConfigError {
    ConfigError::Invalid(format!(
        "error unmarshaling JSON: while decoding JSON: {msg}"
    ))
}

/// Go's `os.ReadFile` error text.
fn go_read_error(path: &str, e: &std::io::Error) -> String {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => return format!("read {path}: is a directory"),
        _ => e.to_string(),
    };
    format!("open {path}: {reason}")
}

// ---------------------------------------------------------------------------
// YAML subset parser

struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

fn err_at(no: usize, msg: &str) -> String {
    format!("yaml: line {no}: {msg}")
}

fn unsupported(no: usize, what: &str) -> String {
    format!("yaml: line {no}: {what} is not supported by Synod's config-file reader")
}

/// Parse a YAML document of the supported subset.
pub fn parse_yaml(text: &str) -> Result<Yaml, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let stripped = strip_comment(raw).trim_end();
        let content = stripped.trim_start_matches(' ');
        if content.is_empty() {
            continue;
        }
        if content.starts_with('\t') {
            return Err(err_at(no, "found character that cannot start any token"));
        }
        let indent = stripped.len() - content.len();
        if indent == 0 && (content == "---" || content.starts_with("--- ")) {
            if !lines.is_empty() {
                return Err(unsupported(no, "a second document"));
            }
            let rest = content[3..].trim();
            if !rest.is_empty() {
                return Err(unsupported(no, "content after '---'"));
            }
            continue;
        }
        if indent == 0 && content == "..." {
            break;
        }
        if content.starts_with('%') {
            return Err(unsupported(no, "a directive"));
        }
        lines.push(Line {
            no,
            indent,
            text: content,
        });
    }
    if lines.is_empty() {
        return Ok(Yaml::Null);
    }
    let mut pos = 0;
    let indent = lines[0].indent;
    let node = parse_block(&lines, &mut pos, indent)?;
    if pos < lines.len() {
        return Err(err_at(
            lines[pos].no,
            "did not find expected <document start>",
        ));
    }
    Ok(node)
}

fn is_seq_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn parse_block(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml, String> {
    let first = &lines[*pos];
    if is_seq_item(first.text) {
        return parse_seq(lines, pos, indent);
    }
    if find_colon(first.text).is_none() {
        // A lone scalar document (or an unsupported multi-line scalar).
        if lines.len() - *pos > 1 && lines[*pos + 1].indent >= indent {
            return Err(unsupported(first.no, "a multi-line scalar"));
        }
        *pos += 1;
        return parse_inline(first.text, first.no);
    }
    parse_map(lines, pos, indent)
}

fn parse_map(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml, String> {
    let mut out: Vec<(String, Yaml)> = Vec::new();
    while *pos < lines.len() {
        let line = &lines[*pos];
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return Err(err_at(
                line.no,
                "mapping values are not allowed in this context",
            ));
        }
        if is_seq_item(line.text) {
            return Err(err_at(line.no, "did not find expected key"));
        }
        let Some(colon) = find_colon(line.text) else {
            return Err(err_at(line.no, "could not find expected ':'"));
        };
        let key = parse_key(line.text[..colon].trim_end(), line.no)?;
        let rest = line.text[colon + 1..].trim();
        *pos += 1;
        let value = if rest.is_empty() {
            match lines.get(*pos) {
                Some(next) if next.indent > indent => parse_block(lines, pos, next.indent)?,
                Some(next) if next.indent == indent && is_seq_item(next.text) => {
                    parse_seq(lines, pos, indent)?
                }
                _ => Yaml::Null,
            }
        } else {
            let v = parse_inline(rest, line.no)?;
            if let Some(next) = lines.get(*pos) {
                if next.indent > indent {
                    return Err(unsupported(next.no, "a multi-line value"));
                }
            }
            v
        };
        // Later duplicates win (go-yaml v2 into a map).
        out.retain(|(k, _)| k != &key);
        out.push((key, value));
    }
    Ok(Yaml::Map(out))
}

fn parse_seq(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml, String> {
    let mut out = Vec::new();
    while *pos < lines.len() {
        let line = &lines[*pos];
        if line.indent < indent || (line.indent == indent && !is_seq_item(line.text)) {
            break;
        }
        if line.indent > indent {
            return Err(err_at(line.no, "did not find expected '-' indicator"));
        }
        let item = line.text[1..].trim();
        *pos += 1;
        if item.is_empty() {
            match lines.get(*pos) {
                Some(next) if next.indent > indent => {
                    let node = parse_block(lines, pos, next.indent)?;
                    if matches!(node, Yaml::Map(_) | Yaml::Seq(_)) {
                        return Err(unsupported(next.no, "a nested collection in a sequence"));
                    }
                    out.push(node);
                }
                _ => out.push(Yaml::Null),
            }
            continue;
        }
        if is_seq_item(item) || (find_colon(item).is_some() && !item.starts_with(['[', '"', '\'']))
        {
            return Err(unsupported(line.no, "a nested collection in a sequence"));
        }
        out.push(parse_inline(item, line.no)?);
        if let Some(next) = lines.get(*pos) {
            if next.indent > indent {
                return Err(unsupported(next.no, "a multi-line value"));
            }
        }
    }
    Ok(Yaml::Seq(out))
}

/// Position of the `:` separating key and value (followed by a space or
/// the end of the line, outside quotes), if any.
fn find_colon(text: &str) -> Option<usize> {
    if text.starts_with(['[', '{']) {
        return None;
    }
    let b = text.as_bytes();
    let mut i = 0;
    if b[0] == b'"' || b[0] == b'\'' {
        let q = b[0];
        i = 1;
        while i < b.len() {
            if q == b'"' && b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == q {
                if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                break;
            }
            i += 1;
        }
        i += 1;
    }
    while i < b.len() {
        if b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' ') {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn parse_key(raw: &str, no: usize) -> Result<String, String> {
    if raw.starts_with('?') {
        return Err(unsupported(no, "a complex key"));
    }
    match parse_inline(raw, no)? {
        Yaml::Str(s) => Ok(s),
        Yaml::Null => Ok(String::new()),
        other => Ok(scalar_string(&other).unwrap_or_default()),
    }
}

/// A value written on one line: flow sequence, quoted or plain scalar.
fn parse_inline(s: &str, no: usize) -> Result<Yaml, String> {
    match s.as_bytes()[0] {
        b'[' => {
            let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
                return Err(err_at(no, "did not find expected ',' or ']'"));
            };
            let mut items = Vec::new();
            for part in split_flow(inner, no)? {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                if part.starts_with(['[', '{']) {
                    return Err(unsupported(no, "a nested flow collection"));
                }
                items.push(parse_inline(part, no)?);
            }
            Ok(Yaml::Seq(items))
        }
        b'{' => {
            if s.strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .map(str::trim)
                == Some("")
            {
                Ok(Yaml::Map(vec![]))
            } else {
                Err(unsupported(no, "a flow mapping"))
            }
        }
        b'"' => parse_double_quoted(s, no),
        b'\'' => {
            let body = &s[1..];
            let mut out = String::new();
            let mut chars = body.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().map(|(_, c)| *c) == Some('\'') {
                        chars.next();
                        out.push('\'');
                        continue;
                    }
                    if !body[i + 1..].trim().is_empty() {
                        return Err(err_at(no, "did not find expected key"));
                    }
                    return Ok(Yaml::Str(out));
                }
                out.push(c);
            }
            Err(unsupported(no, "a multi-line quoted scalar"))
        }
        b'|' | b'>' => Err(unsupported(no, "a block scalar")),
        b'&' => Err(unsupported(no, "an anchor")),
        b'*' => Err(unsupported(no, "an alias")),
        b'!' => Err(unsupported(no, "a tag")),
        b'@' | b'`' => Err(err_at(no, "found character that cannot start any token")),
        _ => Ok(resolve_plain(s)),
    }
}

fn split_flow(inner: &str, no: usize) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ',' => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            None => {}
        }
    }
    if quote.is_some() {
        return Err(err_at(no, "found unexpected end of stream"));
    }
    parts.push(&inner[start..]);
    Ok(parts)
}

fn parse_double_quoted(s: &str, no: usize) -> Result<Yaml, String> {
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                if !s[1 + i + 1..].trim().is_empty() {
                    return Err(err_at(no, "did not find expected key"));
                }
                return Ok(Yaml::Str(out));
            }
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                let hex = |n: usize, chars: &mut std::str::CharIndices| -> Result<char, String> {
                    let h: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                    u32::from_str_radix(&h, 16)
                        .ok()
                        .filter(|_| h.len() == n)
                        .and_then(char::from_u32)
                        .ok_or_else(|| err_at(no, "did not find expected hexdecimal number"))
                };
                out.push(match e {
                    '0' => '\0',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    't' | '\t' => '\t',
                    'n' => '\n',
                    'v' => '\u{b}',
                    'f' => '\u{c}',
                    'r' => '\r',
                    'e' => '\u{1b}',
                    ' ' => ' ',
                    '"' => '"',
                    '/' => '/',
                    '\\' => '\\',
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' => hex(2, &mut chars)?,
                    'u' => hex(4, &mut chars)?,
                    'U' => hex(8, &mut chars)?,
                    _ => {
                        return Err(err_at(
                            no,
                            "found unknown escape character while parsing a quoted scalar",
                        ))
                    }
                });
            }
            c => out.push(c),
        }
    }
    Err(unsupported(no, "a multi-line quoted scalar"))
}

/// YAML 1.1 plain-scalar resolution as go-yaml v2 does it.
fn resolve_plain(s: &str) -> Yaml {
    match s {
        "~" | "null" | "Null" | "NULL" => return Yaml::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Yaml::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Yaml::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Yaml::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Yaml::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Yaml::Float(f64::NAN),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.') {
        let plain = s.replace('_', "");
        let (neg, body) = match plain.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, plain.strip_prefix('+').unwrap_or(&plain)),
        };
        let parsed = if let Some(bin) = body.strip_prefix("0b") {
            u64::from_str_radix(bin, 2).ok()
        } else {
            go::parse_uint(body, 64).ok()
        };
        if let Some(u) = parsed {
            let v = u as i128;
            return Yaml::Int(if neg { -v } else { v });
        }
        if is_yaml_float(&plain) {
            if let Ok(f) = plain.parse::<f64>() {
                return Yaml::Float(f);
            }
        }
    }
    Yaml::Str(s.to_string())
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.strip_prefix(['-', '+']).unwrap_or(s).as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.first() == Some(&b'.') {
        i = 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e') | Some(b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-') | Some(b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Drop a `#` comment (at line start or after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => {
                if c == '#' && prev_space {
                    return &line[..i];
                }
                // Quotes only open a scalar at the start of a token.
                if (c == '"' || c == '\'')
                    && (prev_space || line[..i].ends_with([':', '[', ',', '-']))
                {
                    quote = Some(c);
                }
            }
        }
        prev_space = c == ' ' || c == '\t';
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: Vec<(&str, Yaml)>) -> Yaml {
        Yaml::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    #[test]
    fn parses_typical_etcd_config() {
        let doc = parse_yaml(
            "# etcd config\n---\nname: 'infra1'   # comment\ndata-dir: \"/var/lib/etcd\"\n\
             heartbeat-interval: 100\nforce-new-cluster: false\nlog-outputs: [stderr]\n\
             cipher-suites:\n- TLS_A\n- 'TLS_B'\nclient-transport-security:\n  cert-file: /c.pem\n  client-cert-auth: true\n\
             initial-cluster: a=http://h:2380#not-a-comment\nwal-dir:\nmetrics: ~\n",
        )
        .unwrap();
        assert_eq!(
            doc,
            map(vec![
                ("name", Yaml::Str("infra1".into())),
                ("data-dir", Yaml::Str("/var/lib/etcd".into())),
                ("heartbeat-interval", Yaml::Int(100)),
                ("force-new-cluster", Yaml::Bool(false)),
                ("log-outputs", Yaml::Seq(vec![Yaml::Str("stderr".into())])),
                (
                    "cipher-suites",
                    Yaml::Seq(vec![Yaml::Str("TLS_A".into()), Yaml::Str("TLS_B".into())])
                ),
                (
                    "client-transport-security",
                    map(vec![
                        ("cert-file", Yaml::Str("/c.pem".into())),
                        ("client-cert-auth", Yaml::Bool(true))
                    ])
                ),
                (
                    "initial-cluster",
                    Yaml::Str("a=http://h:2380#not-a-comment".into())
                ),
                ("wal-dir", Yaml::Null),
                ("metrics", Yaml::Null),
            ])
        );
    }

    #[test]
    fn scalar_resolution() {
        assert_eq!(resolve_plain("0x10"), Yaml::Int(16));
        assert_eq!(resolve_plain("1_000"), Yaml::Int(1000));
        assert_eq!(resolve_plain("-5"), Yaml::Int(-5));
        assert_eq!(resolve_plain("1.5"), Yaml::Float(1.5));
        assert_eq!(resolve_plain("on"), Yaml::Bool(true));
        assert_eq!(resolve_plain("10s"), Yaml::Str("10s".into()));
        assert_eq!(resolve_plain("http://x:1"), Yaml::Str("http://x:1".into()));
    }

    #[test]
    fn rejects_unsupported() {
        assert!(parse_yaml("a: &x 1\n").unwrap_err().contains("anchor"));
        assert!(parse_yaml("a: |\n  x\n")
            .unwrap_err()
            .contains("block scalar"));
        assert!(parse_yaml("a: b\n  c\n").is_err());
        assert!(parse_yaml("a: [1\n").is_err());
        assert!(parse_yaml("a: {b: 1}\n").is_err());
        assert_eq!(parse_yaml("").unwrap(), Yaml::Null);
    }

    #[test]
    fn type_errors_like_etcd() {
        let doc = parse_yaml("name: 123\nheartbeat-interval: \"100\"\n").unwrap();
        let (e, _) = match apply(&doc) {
            Err(e) => (e, ()),
            Ok(_) => panic!("expected error"),
        };
        assert_eq!(
            e.to_string(),
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go struct field configYAML.heartbeat-interval of type uint"
        );
        let doc = parse_yaml("heartbeat-interval: 1.5\n").unwrap();
        assert!(apply(&doc).err().unwrap().to_string().ends_with("cannot unmarshal number 1.5 into Go struct field configYAML.heartbeat-interval of type uint"));
        let doc = parse_yaml("log-outputs: stderr\n").unwrap();
        assert!(apply(&doc).err().unwrap().to_string().ends_with(
            "cannot unmarshal string into Go struct field configYAML.log-outputs of type []string"
        ));
    }

    #[test]
    fn coerces_and_warns() {
        let doc = parse_yaml("name: 123\nNAME2: x\nexperimental-watch-progress-notify-interval: 5000000000\nzk-listen-addr: ''\n").unwrap();
        let (fs, warnings) = apply(&doc).unwrap();
        assert_eq!(fs.str("name"), "123");
        assert_eq!(
            fs.duration("experimental-watch-progress-notify-interval"),
            5_000_000_000
        );
        assert_eq!(fs.sock("zk-listen-addr"), None);
        assert_eq!(
            warnings,
            ["unrecognized configuration file key \"NAME2\" (ignored)"]
        );
    }
}

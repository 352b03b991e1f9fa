//! Go standard-library parsing semantics that etcd's flags inherit:
//! `strconv.ParseBool`, `strconv.ParseUint/ParseInt` with base 0,
//! `time.ParseDuration`, and `%q` quoting for error messages.

/// `strconv.Quote` (what `%q` prints for a string).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `%q` of a `[]string`: `["a" "b"]`.
pub fn quote_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", inner.join(" "))
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Failure kinds of `strconv.ParseUint/ParseInt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumError {
    Syntax,
    Range,
}

impl NumError {
    /// Text of the Go `flag` package's `numError` mapping.
    pub fn flag_text(self) -> &'static str {
        match self {
            NumError::Syntax => "parse error",
            NumError::Range => "value out of range",
        }
    }

    /// Raw `strconv` error text (used by etcd's own `uint32Value`).
    pub fn strconv_text(self, func: &str, input: &str) -> String {
        let what = match self {
            NumError::Syntax => "invalid syntax",
            NumError::Range => "value out of range",
        };
        format!("strconv.{func}: parsing {}: {what}", quote(input))
    }
}

/// `strconv.ParseUint(s, 0, bits)`: `0x`, `0o`, `0b` and leading-`0`
/// octal prefixes, `_` digit separators.
pub fn parse_uint(s: &str, bits: u32) -> Result<u64, NumError> {
    if s.is_empty() {
        return Err(NumError::Syntax);
    }
    let full = s;
    let b = s.as_bytes();
    let (base, digits): (u64, &str) = if b[0] == b'0' {
        match b.get(1).map(|c| c.to_ascii_lowercase()) {
            Some(b'b') if b.len() >= 3 => (2, &s[2..]),
            Some(b'o') if b.len() >= 3 => (8, &s[2..]),
            Some(b'x') if b.len() >= 3 => (16, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    let max: u64 = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for c in digits.bytes() {
        let d = match c {
            b'_' => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => (c - b'0') as u64,
            b'a'..=b'z' => (c - b'a' + 10) as u64,
            b'A'..=b'Z' => (c - b'A' + 10) as u64,
            _ => return Err(NumError::Syntax),
        };
        if d >= base {
            return Err(NumError::Syntax);
        }
        n = n
            .checked_mul(base)
            .and_then(|n| n.checked_add(d))
            .filter(|n| *n <= max)
            .ok_or(NumError::Range)?;
    }
    if underscores && !underscore_ok(full) {
        return Err(NumError::Syntax);
    }
    Ok(n)
}

/// `strconv.ParseInt(s, 0, bits)`.
pub fn parse_int(s: &str, bits: u32) -> Result<i64, NumError> {
    if s.is_empty() {
        return Err(NumError::Syntax);
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let un = parse_uint(body, bits)?;
    if body.contains('_') && !underscore_ok(s) {
        return Err(NumError::Syntax);
    }
    let cutoff = 1u64 << (bits - 1);
    if !neg && un >= cutoff {
        return Err(NumError::Range);
    }
    if neg && un > cutoff {
        return Err(NumError::Range);
    }
    Ok(if neg {
        (un as i64).wrapping_neg()
    } else {
        un as i64
    })
}

/// Go's `underscoreOK`: `_` only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let mut b = s.as_bytes();
    if let Some(&c) = b.first() {
        if c == b'-' || c == b'+' {
            b = &b[1..];
        }
    }
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

/// `time.ParseDuration`: returns nanoseconds, or Go's error message.
pub fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", quote(orig));
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Leading integer.
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + (s[i] - b'0') as u64;
            if v > LIMIT {
                return Err(invalid());
            }
            i += 1;
        }
        let pre = i > 0;
        s = &s[i..];
        // Fraction.
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let mut i = 0;
            let mut overflow = false;
            while i < s.len() && s[i].is_ascii_digit() {
                if !overflow {
                    if f > (LIMIT - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + (s[i] - b'0') as u64;
                        if y > LIMIT {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            post = i > 0;
            s = &s[i..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let mut i = 0;
        while i < s.len() && !(s[i] == b'.' || s[i].is_ascii_digit()) {
            i += 1;
        }
        if i == 0 {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let unit_str = std::str::from_utf8(&s[..i]).unwrap_or("");
        s = &s[i..];
        let unit: u64 = match unit_str {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(unit_str),
                    quote(orig)
                ))
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// `time.Duration.String()` (e.g. `1h0m0s`, `100ms`, `0s`).
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", frac(u, div));
    }
    let h = u / 3_600_000_000_000;
    let rem = u % 3_600_000_000_000;
    let m = rem / 60_000_000_000;
    let sec = rem % 60_000_000_000;
    let secs = frac(sec, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// `v / div` with the fractional part printed without trailing zeros.
fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rem = v % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        for bad in ["yes", "tRuE", "", "2", "on"] {
            assert_eq!(parse_bool(bad), None);
        }
    }

    #[test]
    fn ints_base0() {
        assert_eq!(parse_uint("100", 64), Ok(100));
        assert_eq!(parse_uint("0x10", 64), Ok(16));
        assert_eq!(parse_uint("0o17", 64), Ok(15));
        assert_eq!(parse_uint("017", 64), Ok(15));
        assert_eq!(parse_uint("0b101", 64), Ok(5));
        assert_eq!(parse_uint("1_000", 64), Ok(1000));
        assert_eq!(parse_uint("0", 64), Ok(0));
        assert_eq!(parse_uint("_1", 64), Err(NumError::Syntax));
        assert_eq!(parse_uint("1__0", 64), Err(NumError::Syntax));
        assert_eq!(parse_uint("0x", 64), Err(NumError::Syntax));
        assert_eq!(parse_uint("08", 64), Err(NumError::Syntax));
        assert_eq!(parse_uint("-1", 64), Err(NumError::Syntax));
        assert_eq!(parse_uint("abc", 64), Err(NumError::Syntax));
        assert_eq!(parse_uint("99999999999999999999", 64), Err(NumError::Range));
        assert_eq!(parse_uint("4294967296", 32), Err(NumError::Range));
        assert_eq!(parse_int("-0x10", 64), Ok(-16));
        assert_eq!(parse_int("+5", 64), Ok(5));
        assert_eq!(parse_int("-9223372036854775808", 64), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775808", 64), Err(NumError::Range));
        assert_eq!(parse_int("-", 64), Err(NumError::Syntax));
    }

    #[test]
    fn durations() {
        let s = 1_000_000_000i64;
        assert_eq!(parse_duration("10s"), Ok(10 * s));
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5400 * s));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("2\u{b5}s"), Ok(2_000));
        assert_eq!(parse_duration("2us"), Ok(2_000));
        assert_eq!(parse_duration("-1m"), Ok(-60 * s));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_duration("10x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"10x\""
        );
        assert_eq!(
            parse_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_duration("").unwrap_err(),
            "time: invalid duration \"\""
        );
        assert_eq!(
            parse_duration(".s").unwrap_err(),
            "time: invalid duration \".s\""
        );
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn duration_strings() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(100_000_000), "100ms");
        assert_eq!(format_duration(7_200_000_000_000), "2h0m0s");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(600_000_000_000), "10m0s");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(quote_list(&["a".into(), "b".into()]), "[\"a\" \"b\"]");
    }
}

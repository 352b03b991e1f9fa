//! `ZnodePath`: a path that passed upstream's `PathUtils.validatePath`, with the parent/name
//! arithmetic the handlers need. Constructing one is the only way a client string reaches the
//! store layout, so no invalid path is ever turned into a key.

use std::fmt;

/// A valid absolute znode path ("/" or "/a/b", never a trailing slash).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZnodePath(String);

/// Why a path is invalid (upstream's `IllegalArgumentException` texts; clients see BadArguments).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Invalid path string \"{path}\" caused by {reason}")]
pub struct InvalidPath {
    pub path: String,
    pub reason: &'static str,
}

impl ZnodePath {
    pub fn root() -> ZnodePath {
        ZnodePath("/".to_string())
    }

    /// Validates like `PathUtils.validatePath(path)`.
    pub fn parse(path: &str) -> Result<ZnodePath, InvalidPath> {
        validate(path)?;
        Ok(ZnodePath(path.to_string()))
    }

    /// Validates like `PathUtils.validatePath(path, isSequential)`: a sequential create may end
    /// in '/', because the server appends the sequence number.
    pub fn validate_create(path: &str, sequential: bool) -> Result<(), InvalidPath> {
        if sequential {
            validate(&format!("{path}1"))
        } else {
            validate(path)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// Number of components: "/" is 0, "/a" is 1.
    pub fn depth(&self) -> usize {
        if self.is_root() {
            0
        } else {
            self.0.bytes().filter(|b| *b == b'/').count()
        }
    }

    /// The parent; `None` for the root.
    pub fn parent(&self) -> Option<ZnodePath> {
        if self.is_root() {
            return None;
        }
        let i = self.0.rfind('/')?;
        Some(if i == 0 {
            ZnodePath::root()
        } else {
            ZnodePath(self.0[..i].to_string())
        })
    }

    /// The last component ("" for the root).
    pub fn name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => "",
        }
    }

    /// `self` + "/" + `name` (name already validated as one component).
    pub fn child(&self, name: &str) -> ZnodePath {
        if self.is_root() {
            ZnodePath(format!("/{name}"))
        } else {
            ZnodePath(format!("{}/{name}", self.0))
        }
    }

    /// Whether `self` is `other` or below it.
    pub fn is_within(&self, other: &ZnodePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// Builds a path from a string known to be valid (read back from the store layout).
    pub(crate) fn from_trusted(s: String) -> ZnodePath {
        ZnodePath(s)
    }
}

impl fmt::Display for ZnodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate(path: &str) -> Result<(), InvalidPath> {
    let bad = |reason| {
        Err(InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("Path length must be > 0");
    }
    if !path.starts_with('/') {
        return bad("Path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return bad("Path must not end with / character");
    }
    let chars: Vec<char> = path.chars().collect();
    let mut last = '/';
    for i in 1..chars.len() {
        let c = chars[i];
        if c == '\0' {
            return bad("null character not allowed");
        } else if c == '/' && last == '/' {
            return bad("empty node name specified");
        } else if c == '.' && last == '.' {
            if chars[i - 2] == '/' && (i + 1 == chars.len() || chars[i + 1] == '/') {
                return bad("relative paths not allowed");
            }
        } else if c == '.' {
            if chars[i - 1] == '/' && (i + 1 == chars.len() || chars[i + 1] == '/') {
                return bad("relative paths not allowed");
            }
        } else if (c > '\u{0000}' && c <= '\u{001f}')
            || ('\u{007f}'..='\u{009f}').contains(&c)
            // Java sees a supplementary character as surrogates (rejected upstream).
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || c > '\u{ffff}'
            || ('\u{fff0}'..='\u{ffff}').contains(&c)
        {
            return bad("invalid character");
        }
        last = c;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_path_rules() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/...", "/zookeeper"] {
            assert!(ZnodePath::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "/a/", "//a", "/a//b", "/.", "/..", "/a/./b", "/a/../b", "/a\u{1}", "/a\0",
        ] {
            assert!(ZnodePath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ZnodePath::validate_create("/a/", true).is_ok());
        assert!(ZnodePath::validate_create("/a/", false).is_err());
    }

    #[test]
    fn parents_names_and_depths() {
        let p = ZnodePath::parse("/a/b").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/a");
        assert_eq!(p.parent().unwrap().parent().unwrap().as_str(), "/");
        assert_eq!(p.name(), "b");
        assert_eq!(p.depth(), 2);
        assert_eq!(ZnodePath::root().depth(), 0);
        assert!(p.is_within(&ZnodePath::parse("/a").unwrap()));
        assert!(!ZnodePath::parse("/ab")
            .unwrap()
            .is_within(&ZnodePath::parse("/a").unwrap()));
    }
}

//! Path rules that keep weir away from files it was not handed: canonical
//! forms of paths that may not exist yet, containment, and safe names.
//!
//! ```text
//!  canonical("out/new/x.parquet")   out/ exists, new/ does not
//!     ─► canonicalize("out") = /home/u/out (symlinks resolved) ─► /home/u/out/new/x.parquet
//!  within(/home/u/out/new/x.parquet, /home/u/out) = true     (component-wise, not by text)
//! ```
//! Owns [`canonical`], [`within`], [`overlap`], [`check_component`] and the
//! names of partition directories ([`escape_partition`], [`is_partition_path`]).
//! May use `crate::error` and std only.

use crate::error::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// The absolute form of `path` with every symbolic link resolved. The path
/// need not exist: its longest existing ancestor is canonicalised and the
/// missing rest appended (a `..` in the missing rest removes the component
/// before it, which cannot be a link since it does not exist).
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let c = weir::paths::canonical(&dir.path().join("new/../x.parquet")).unwrap();
/// assert_eq!(c, dir.path().canonicalize().unwrap().join("x.parquet"));
/// ```
pub fn canonical(path: &Path) -> Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(path, e))?
            .join(path)
    };
    // the longest prefix that exists (following links)
    let mut missing: Vec<Component<'_>> = Vec::new();
    let mut existing: &Path = &absolute;
    loop {
        match existing.canonicalize() {
            Ok(base) => {
                let mut out = base;
                for c in missing.iter().rev() {
                    match c {
                        Component::ParentDir => {
                            out.pop();
                        }
                        Component::CurDir => {}
                        other => out.push(other.as_os_str()),
                    }
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(last) = existing.components().next_back() else {
                    return Err(Error::io(path, e));
                };
                missing.push(last);
                existing = existing.parent().ok_or_else(|| Error::io(path, e))?;
            }
            Err(e) => return Err(Error::io(path, e)),
        }
    }
}

/// True if `inner` is `outer` or lies below it, comparing whole components
/// (`/a/bc` is not within `/a/b`). Both should be [`canonical`].
pub fn within(inner: &Path, outer: &Path) -> bool {
    inner.starts_with(outer)
}

/// How two canonical paths relate, if they overlap: `a` is `b`, lies
/// inside `b`, or contains `b`.
pub fn overlap(a: &Path, b: &Path) -> Option<&'static str> {
    if a == b {
        Some("is")
    } else if within(a, b) {
        Some("lies inside")
    } else if within(b, a) {
        Some("contains")
    } else {
        None
    }
}

/// Checks that `name` is one safe path component: not empty, not `.` or
/// `..`, no `/` or `\`, no NUL, no leading `-` (it would read as an option).
/// `option` names the setting in the error.
pub fn check_component(option: &str, name: &str) -> Result<()> {
    let bad = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else if name.starts_with('-') {
        Some("starts with `-`")
    } else {
        None
    };
    match bad {
        Some(why) => Err(Error::option(
            option,
            format!("`{name}` {why}: it must be one plain directory name"),
        )),
        None => Ok(()),
    }
}

/// The directory name of a null or empty partition value (Hive's and Flink's).
pub const DEFAULT_PARTITION: &str = "__DEFAULT_PARTITION__";

/// Whether `c` is written as `%XX` in a partition path (Hive's set).
fn needs_escape(c: char) -> bool {
    (c as u32) < 0x20
        || c == '\u{7f}'
        || matches!(
            c,
            '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
        )
}

/// `value` as a path component's text: `%XX` for the characters Hive escapes.
pub fn escape_partition(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The value an escaped component's text stands for (`None` if
/// malformed); [`DEFAULT_PARTITION`] stands for the empty value.
pub fn unescape_partition(text: &str) -> Option<String> {
    if text == DEFAULT_PARTITION {
        return Some(String::new());
    }
    unescape(text)
}

/// `%XX` sequences decoded (`None` if malformed).
fn unescape(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 1..i + 3)?;
        out.push(char::from(u8::from_str_radix(hex, 16).ok()?));
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A directory name weir writes for a partition: `k=v`, both non-empty,
/// escaped (no raw `/`, `=` in the value, or leading dot).
pub fn is_partition_dir(name: &str) -> bool {
    let Some((k, v)) = name.split_once('=') else {
        return false;
    };
    !k.is_empty()
        && !v.is_empty()
        && !name.starts_with('.')
        && !v.contains('=')
        && unescape(k).is_some_and(|k2| escape_partition(&k2) == k)
        && (v == DEFAULT_PARTITION || unescape(v).is_some_and(|v2| escape_partition(&v2) == v))
}

/// Whether `rel` is a relative partition path of `k=v` components only.
pub fn is_partition_path(rel: &std::path::Path) -> bool {
    let mut any = false;
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) if n.to_str().is_some_and(is_partition_dir) => {
                any = true
            }
            _ => return false,
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_escape_like_hive_and_come_back() {
        assert_eq!(escape_partition("10:05"), "10%3A05");
        assert_eq!(escape_partition("a/b=c%"), "a%2Fb%3Dc%25");
        assert_eq!(escape_partition("plain value-1"), "plain value-1");
        for v in ["10:05", "a/b=c%", "x\ny", "ü"] {
            assert_eq!(unescape_partition(&escape_partition(v)).as_deref(), Some(v));
        }
        assert!(is_partition_dir("hm=10%3A05"));
        assert!(is_partition_dir("dt=__DEFAULT_PARTITION__"));
        assert!(
            is_partition_dir("__DEFAULT_PARTITION__=1"),
            "a column may have that name"
        );
        for bad in [
            "hm", "=x", "x=", ".x=1", "a=b=c", "a=10:05", "a=%zz", "a=%3a",
        ] {
            assert!(!is_partition_dir(bad), "{bad}");
        }
        assert!(is_partition_path(std::path::Path::new("dt=1/hm=2")));
        assert!(!is_partition_path(std::path::Path::new("dt=1/../x")));
        assert!(!is_partition_path(std::path::Path::new("")));
    }

    #[test]
    fn missing_tails_are_appended_to_the_canonical_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
        assert_eq!(
            canonical(&base.join("link/new/x")).unwrap(),
            base.join("real/new/x")
        );
        assert_eq!(canonical(&base.join("link")).unwrap(), base.join("real"));
        assert_eq!(
            canonical(&base.join("a/b/../c")).unwrap(),
            base.join("a/c"),
            "`..` after a missing component"
        );
    }

    #[test]
    fn containment_is_by_component() {
        let p = Path::new;
        assert_eq!(overlap(p("/a/b"), p("/a/b")), Some("is"));
        assert_eq!(overlap(p("/a/b/c"), p("/a/b")), Some("lies inside"));
        assert_eq!(overlap(p("/a"), p("/a/b")), Some("contains"));
        assert_eq!(overlap(p("/a/bc"), p("/a/b")), None);
    }

    #[test]
    fn only_plain_names_are_components() {
        for bad in ["", ".", "..", "a/b", "../x", "a\\b", "-rf", "a\0b"] {
            let e = check_component("name", bad).unwrap_err().to_string();
            assert!(e.contains("option `name`"), "{bad:?}: {e}");
        }
        for good in ["avg-speed", "job_1", "crash", "a.b"] {
            check_component("name", good).unwrap();
        }
    }
}

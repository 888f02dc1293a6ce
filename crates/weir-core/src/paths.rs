//! Path rules that keep weir away from files it was not handed: canonical
//! forms of paths that may not exist yet, containment, and safe names.
//!
//! ```text
//!  canonical("out/new/x.parquet")   out/ exists, new/ does not
//!     ─► canonicalize("out") = /home/u/out (symlinks resolved) ─► /home/u/out/new/x.parquet
//!  within(/home/u/out/new/x.parquet, /home/u/out) = true     (component-wise, not by text)
//! ```
//! Owns [`canonical`], [`within`], [`overlap`] and [`check_component`].
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

#[cfg(test)]
mod tests {
    use super::*;

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

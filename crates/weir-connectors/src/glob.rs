//! Glob patterns in source paths.
//!
//! ```text
//!  data/obd/date=2026-11-*/*.parquet
//!  └──────┘ └────────────┘ └───────┘
//!  literal   one component  one component     `**` = any number of folders (also none)
//!  prefix    `*` any run of characters, `?` one character,
//!  = root    `[abc]`, `[a-z]`, `[!a-z]` / `[^a-z]` one character of (not of) a set
//! ```
//! A wildcard never crosses a `/`. Names starting with `.` or `_` (hidden
//! files, `_SUCCESS`) are matched only by a component that starts with the
//! same character. `**` does not follow symbolic links to folders.
//!
//! Owns [`has_wildcards`], [`matches`] (one component), [`split`] (a
//! pattern's root) and [`expand`] (a whole path). May use `weir_core::error` and std only.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use weir_core::error::{Error, Result};

/// True if `s` holds a glob wildcard (`*`, `?` or `[`).
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[derive(Debug, PartialEq)]
enum Token {
    Char(char),
    Any,
    Star,
    /// `[...]`: inclusive ranges (a single character is `(c, c)`).
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// Splits a one-component pattern into tokens; a `[` without its `]` is a
/// literal `[`.
fn tokens(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
                i += 1;
            }
            '?' => {
                out.push(Token::Any);
                i += 1;
            }
            '[' => match class(&chars[i + 1..]) {
                Some((token, used)) => {
                    out.push(token);
                    i += 1 + used;
                }
                None => {
                    out.push(Token::Char('['));
                    i += 1;
                }
            },
            c => {
                out.push(Token::Char(c));
                i += 1;
            }
        }
    }
    out
}

/// Parses the inside of `[...]` (after the `[`); returns the token and the
/// characters used including the closing `]`, or `None` if it is not closed.
fn class(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let start = i;
    while i < chars.len() {
        let c = chars[i];
        // a `]` right after `[` or `[!` is a member, not the end
        if c == ']' && i > start {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

/// True if the one-component `pattern` matches all of `name`
/// (`date=2026-11-*` matches `date=2026-11-07`).
pub fn matches(pattern: &str, name: &str) -> bool {
    let toks = tokens(pattern);
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // the last star seen: its token index and the name index it resumes at
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match toks.get(p) {
            Some(Token::Star) => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(t) if t.accepts(name[n]) => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            // let the star eat one more character and retry
            Some((sp, sn)) => {
                star = Some((sp, sn + 1));
                p = sp + 1;
                n = sn + 1;
            }
            None => return false,
        }
    }
    toks[p..].iter().all(|t| *t == Token::Star)
}

/// The root of a pattern (the components before the first one with a
/// wildcard; empty for the current folder) and the components after it.
pub fn split(pattern: &Path) -> (PathBuf, Vec<String>) {
    let mut root = PathBuf::new();
    let mut rest: Vec<String> = Vec::new();
    for c in pattern.components() {
        let text = c.as_os_str().to_string_lossy();
        if rest.is_empty() && (!matches!(c, Component::Normal(_)) || !has_wildcards(&text)) {
            root.push(c.as_os_str());
        } else {
            rest.push(text.into_owned());
        }
    }
    (root, rest)
}

/// Every existing path `pattern` matches, sorted, each once. Files and
/// folders both match; the caller decides what a matched folder means.
pub fn expand(pattern: &Path) -> Result<Vec<PathBuf>> {
    let (root, rest) = split(pattern);
    let mut found = BTreeSet::new();
    walk(&root, &rest, &mut found)?;
    Ok(found.into_iter().collect())
}

/// What a source was given to read, for the planner's check that no sink
/// writes into its input: every given file or folder as it is, and a
/// pattern as what it matches now.
pub fn given_paths(given: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for g in given {
        if std::fs::symlink_metadata(g).is_ok() {
            out.push(g.clone());
        } else {
            out.extend(expand(g).unwrap_or_default());
        }
    }
    out
}

fn walk(dir: &Path, comps: &[String], out: &mut BTreeSet<PathBuf>) -> Result<()> {
    let Some((first, rest)) = comps.split_first() else {
        out.insert(dir.to_path_buf());
        return Ok(());
    };
    if first == "**" {
        walk(dir, rest, out)?;
        for (path, name, is_dir) in entries(dir)? {
            if is_dir && !hidden(&name) {
                walk(&path, comps, out)?;
            }
        }
    } else if !has_wildcards(first) {
        let path = dir.join(first);
        if path.exists() {
            walk(&path, rest, out)?;
        }
    } else {
        for (path, name, _) in entries(dir)? {
            let explicit = name.chars().next().is_some_and(|c| first.starts_with(c));
            if hidden(&name) && !explicit {
                continue;
            }
            if matches(first, &name) && (rest.is_empty() || path.is_dir()) {
                walk(&path, rest, out)?;
            }
        }
    }
    Ok(())
}

fn hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// The entries of `dir` (path, UTF-8 name, is a folder without following
/// links); nothing if `dir` is not a folder. Names that are not UTF-8 are
/// left out: no pattern can name them.
fn entries(dir: &Path) -> Result<Vec<(PathBuf, String, bool)>> {
    let shown = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if !shown.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(shown).map_err(|e| Error::io(shown, e))? {
        let entry = entry.map_err(|e| Error::io(shown, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((dir.join(&name), name, is_dir));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_like_a_shell() {
        let table = [
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abcd", false),
            ("*.parquet", "part-0.parquet", true),
            ("*.parquet", "part-0.parquet.crc", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[abc]x", "bx", true),
            ("[abc]x", "dx", false),
            ("[a-c][0-9]", "c7", true),
            ("[!a-c]", "d", true),
            ("[^a-c]", "a", false),
            ("[]]", "]", true),
            ("[a-]", "-", true),
            ("[ab", "[ab", true),
            ("*a*b*", "xaybz", true),
            ("*a*b*", "xbya", false),
            ("date=2026-11-*", "date=2026-11-01", true),
            ("date=2026-11-*", "date=2026-12-01", false),
            ("**", "anything", true),
            ("é?", "éß", true),
        ];
        for (pattern, name, want) in table {
            assert_eq!(matches(pattern, name), want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn literal_components_have_no_wildcards() {
        assert!(has_wildcards("a*") && has_wildcards("[x]") && has_wildcards("?"));
        assert!(!has_wildcards("date=2026-11-01"));
    }

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }

    #[test]
    fn paths_expand_with_star_question_class_and_double_star() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for rel in [
            "a/date=1/x.parquet",
            "a/date=2/x.parquet",
            "a/date=2/y.parquet",
            "a/date=3/deep/z.parquet",
            "a/date=2/.hidden.parquet",
            "a/date=2/_SUCCESS",
            "a/top.parquet",
            "b/date=1/x.parquet",
        ] {
            touch(d, rel);
        }
        let rel = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(d).unwrap().display().to_string())
                .collect()
        };
        let pattern = d.join("a/date=[12]/*.parquet");
        assert_eq!(split(&pattern).0, d.join("a"));
        let got = expand(&pattern).unwrap();
        assert_eq!(
            rel(got),
            [
                "a/date=1/x.parquet",
                "a/date=2/x.parquet",
                "a/date=2/y.parquet"
            ]
        );
        let got = expand(&d.join("a/**/*.parquet")).unwrap();
        assert_eq!(
            rel(got),
            [
                "a/date=1/x.parquet",
                "a/date=2/x.parquet",
                "a/date=2/y.parquet",
                "a/date=3/deep/z.parquet",
                "a/top.parquet"
            ]
        );
        let got = expand(&d.join("?/date=1")).unwrap();
        assert_eq!(split(&d.join("?/date=1")).0, d.to_path_buf());
        assert_eq!(rel(got), ["a/date=1", "b/date=1"]);
        let got = expand(&d.join("a/date=2/.*")).unwrap();
        assert_eq!(rel(got), ["a/date=2/.hidden.parquet"]);
        let got = expand(&d.join("a/date=9*/*")).unwrap();
        assert!(got.is_empty());
        let got = expand(&d.join("a/top.parquet/*")).unwrap();
        assert!(got.is_empty(), "a file is not a folder");
    }
}

//! A pre-pass over one JSON record before arrow-json decodes it: finds
//! repeated top-level keys (which arrow-json would resolve silently, last one
//! wins) and rewrites the bare non-finite number tokens other writers emit
//! (`NaN`, `Infinity`, `-Infinity`, as Python's `json.dumps` does) into the
//! strings weir's float columns read (`"NaN"`, `"Infinity"`, `"-Infinity"`).
//!
//! Owns [`scan`]. May use nothing else in the crate.
//!
//! ```text
//!  bytes ─► outside strings: { [ depth+1   } ] depth-1   , at depth 1: a key comes next
//!           at depth 1 after { or , : "key" ─► seen before? ─► Repeated(key)
//!           NaN | Infinity | -Infinity ─► copy with the token quoted (Rewritten)
//!           "..." skipped whole (escapes honoured)
//! ```
//! Anything else (syntax errors included) is left to arrow-json, which
//! names the problem.

/// What [`scan`] found in a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned {
    /// Nothing to change: decode the record as it is.
    Clean,
    /// The record with its bare non-finite tokens quoted.
    Rewritten(Vec<u8>),
    /// A top-level key that appears more than once (unescaped text).
    Repeated(String),
}

/// The bare tokens rewritten, longest first where one is a prefix of another.
const TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];

/// Scans one record (see the module doc).
pub fn scan(record: &[u8]) -> Scanned {
    let mut depth = 0usize;
    let mut key_next = false;
    let mut keys: Vec<&[u8]> = Vec::new();
    // start of the text not yet copied, and the copy (only once a token is found)
    let mut copied = 0usize;
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < record.len() {
        match record[i] {
            b'"' => {
                let end = string_end(record, i);
                if depth == 1 && key_next {
                    let key = &record[i + 1..end.saturating_sub(1).max(i + 1)];
                    if keys.iter().any(|k| same_key(k, key)) {
                        return Scanned::Repeated(unescape(key));
                    }
                    keys.push(key);
                    key_next = false;
                }
                i = end;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                key_next = depth == 1 && record[i] == b'{';
                if depth == 1 {
                    keys.clear(); // a second object is arrow-json's error to report
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => key_next = true,
            b'N' | b'I' | b'-' => {
                if let Some(t) = TOKENS.iter().find(|t| record[i..].starts_with(t)) {
                    let buf = out.get_or_insert_with(|| Vec::with_capacity(record.len() + 8));
                    buf.extend_from_slice(&record[copied..i]);
                    buf.push(b'"');
                    buf.extend_from_slice(t);
                    buf.push(b'"');
                    i += t.len();
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    match out {
        None => Scanned::Clean,
        Some(mut buf) => {
            buf.extend_from_slice(&record[copied..]);
            Scanned::Rewritten(buf)
        }
    }
}

/// The index just past the string starting at `start` (a `"`), or the
/// record's end if it is not closed.
fn string_end(record: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < record.len() {
        match record[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    record.len()
}

/// Two raw key texts name the same key (escapes compared decoded).
fn same_key(a: &[u8], b: &[u8]) -> bool {
    if !a.contains(&b'\\') && !b.contains(&b'\\') {
        return a == b;
    }
    unescape(a) == unescape(b)
}

/// The text of a raw JSON string body (escapes decoded; lossy on bad input).
fn unescape(raw: &[u8]) -> String {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted)
        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(s: &str) -> String {
        match scan(s.as_bytes()) {
            Scanned::Rewritten(b) => String::from_utf8(b).unwrap(),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn plain_records_are_clean() {
        for s in [
            r#"{"a":1,"b":"NaN","c":[1,2],"d":{"a":1}}"#,
            r#"{"a":"x\"y","b":-1.5e3}"#,
            r#"{"a":1,"#,
            "",
        ] {
            assert_eq!(scan(s.as_bytes()), Scanned::Clean, "{s}");
        }
    }

    #[test]
    fn bare_non_finite_tokens_are_quoted_outside_strings_only() {
        assert_eq!(
            rewritten(r#"{"a":NaN,"b":-Infinity,"c":"NaN Infinity","d":[Infinity]}"#),
            r#"{"a":"NaN","b":"-Infinity","c":"NaN Infinity","d":["Infinity"]}"#
        );
        assert_eq!(rewritten(r#"{"v": NaN}"#), r#"{"v": "NaN"}"#);
    }

    #[test]
    fn repeated_top_level_keys_are_found_nested_ones_are_not() {
        assert_eq!(
            scan(br#"{"a":1,"b":{"a":2},"a":3}"#),
            Scanned::Repeated("a".into())
        );
        assert_eq!(
            scan(br#"{"a\u0062":1,"ab":2}"#),
            Scanned::Repeated("ab".into())
        );
        assert_eq!(
            scan(br#"{"a":{"x":1,"y":1},"b":[{"a":1}]}"#),
            Scanned::Clean
        );
        // a string value equal to a key is not a key
        assert_eq!(scan(br#"{"a":"a","b":"a"}"#), Scanned::Clean);
    }
}

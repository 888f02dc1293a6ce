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

/// Bytes the scanner acts on; everything else (digits, letters of
/// literals, spaces, `:`) is skipped by a table lookup.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let bytes = b"\"{}[],NI-";
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
};

/// Top-level keys remembered on the stack before spilling to the heap.
const INLINE_KEYS: usize = 16;

/// Scans one record (see the module doc).
pub fn scan(record: &[u8]) -> Scanned {
    let mut depth = 0usize;
    let mut key_next = false;
    // top-level keys as the range of their raw text
    let mut inline = [Key::default(); INLINE_KEYS];
    let mut count = 0usize;
    let mut more: Vec<Key> = Vec::new();
    // start of the text not yet copied, and the copy (only once a token is found)
    let mut copied = 0usize;
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < record.len() {
        let b = record[i];
        if !SPECIAL[b as usize] {
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                let end = string_end(record, i);
                if depth == 1 && key_next {
                    let key = Key::new(record, i + 1, end.saturating_sub(1).max(i + 1));
                    let seen = inline[..count.min(INLINE_KEYS)]
                        .iter()
                        .any(|k| k.same(&key, record))
                        || more.iter().any(|k| k.same(&key, record));
                    if seen {
                        return Scanned::Repeated(unescape(key.text(record)));
                    }
                    if count < INLINE_KEYS {
                        inline[count] = key;
                    } else {
                        more.push(key);
                    }
                    count += 1;
                    key_next = false;
                }
                i = end;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                key_next = depth == 1 && b == b'{';
                if depth == 1 {
                    // a second object is arrow-json's error to report
                    count = 0;
                    more.clear();
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
    while let Some(at) = record[i.min(record.len())..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
    {
        let at = i + at;
        if record[at] == b'"' {
            return at + 1;
        }
        i = at + 2; // an escape and the byte it escapes
    }
    record.len()
}

/// A top-level key: the range of its raw text in the record.
#[derive(Debug, Clone, Copy, Default)]
struct Key {
    start: u32,
    end: u32,
    escaped: bool,
}

impl Key {
    fn new(record: &[u8], start: usize, end: usize) -> Key {
        Key {
            start: start as u32,
            end: end as u32,
            escaped: record[start..end].contains(&b'\\'),
        }
    }

    fn text<'a>(&self, record: &'a [u8]) -> &'a [u8] {
        &record[self.start as usize..self.end as usize]
    }

    /// Both name the same key (escapes compared decoded).
    fn same(&self, other: &Key, record: &[u8]) -> bool {
        if self.escaped || other.escaped {
            return unescape(self.text(record)) == unescape(other.text(record));
        }
        self.end - self.start == other.end - other.start && self.text(record) == other.text(record)
    }
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
    fn many_keys_spill_past_the_inline_ones() {
        let fields: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let clean = format!("{{{}}}", fields.join(","));
        assert_eq!(scan(clean.as_bytes()), Scanned::Clean);
        let repeated = format!("{{{},\"k3\":1}}", fields.join(","));
        assert_eq!(scan(repeated.as_bytes()), Scanned::Repeated("k3".into()));
        let escaped = r#"{"a\"b":1,"c":"x\\","a\"b":2}"#;
        assert_eq!(scan(escaped.as_bytes()), Scanned::Repeated("a\"b".into()));
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

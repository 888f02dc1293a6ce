//! Shards: one of `N` processes that each run the whole job on their share
//! of the input (the Kafka Streams model), and the key groups a shard owns.
//!
//! ```text
//!  key groups 0 ............................................. 127
//!  --shard 0/3  [0, 42)        --shard 1/3  [43, 85)   ...   (kg * N / 128 == i)
//!  inside a shard of parallelism p: subtask = (kg - start) * p / (end - start)
//! ```
//! A shard's key groups are the ones `key::subtask_for_key_group(kg, N)`
//! gives it, so a savepoint's key groups split the same way at any `N`.
//! May use `error` and `key`.

use crate::error::{Error, Result};
use crate::key::{subtask_for_key_group, KEY_GROUPS};
use std::ops::Range;

/// Shard `index` of `count` (`--shard i/N`).
///
/// # Examples
/// ```
/// use weir::shard::Shard;
/// let s = Shard::parse("1/3").unwrap();
/// assert_eq!((s.index(), s.count()), (1, 3));
/// assert_eq!(s.key_groups(), 43..86);
/// assert!(Shard::parse("3/3").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// Shard `index` of `count`; `count` is at most the number of key groups.
    pub fn try_new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::option(
                "shard",
                format!(
                    "shard {index}/{count}: the index must be in 0..{count} (e.g. 0/3, 1/3, 2/3)"
                ),
            ));
        }
        if count > KEY_GROUPS {
            return Err(Error::option(
                "shard",
                format!(
                    "{count} shards exceed the {KEY_GROUPS} key groups a job's keys are spread over"
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `i/N` (`WEIR_SHARD`, `--shard`).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::option(
                "shard",
                format!("`{text}` is not a shard: write INDEX/COUNT, e.g. 0/3 for the first of 3"),
            )
        };
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::try_new(i, n)
    }

    /// The shard of a StatefulSet pod named `NAME-ORDINAL` (e.g. `weir-2`
    /// is shard 2) among `count`.
    pub fn from_hostname(hostname: &str, count: usize) -> Result<Self> {
        let ordinal = hostname
            .trim()
            .rsplit_once('-')
            .and_then(|(_, o)| o.parse::<usize>().ok())
            .ok_or_else(|| {
                Error::option(
                    "shard-from-hostname",
                    format!(
                        "the host name `{}` does not end in -ORDINAL (a StatefulSet pod is \
                         named like weir-2)",
                        hostname.trim()
                    ),
                )
            })?;
        Shard::try_new(ordinal, count).map_err(|e| match e {
            Error::InvalidOption { message, .. } => Error::option(
                "shard-from-hostname",
                format!("host name `{}`: {message}", hostname.trim()),
            ),
            other => other,
        })
    }

    /// This shard's index, `0..count`.
    pub fn index(self) -> usize {
        self.index
    }

    /// The number of shards.
    pub fn count(self) -> usize {
        self.count
    }

    /// The key groups this shard owns (contiguous).
    pub fn key_groups(self) -> Range<usize> {
        let start = (0..KEY_GROUPS)
            .find(|&kg| subtask_for_key_group(kg, self.count) == self.index)
            .expect("every shard of at most KEY_GROUPS owns a key group");
        let end = (start..KEY_GROUPS)
            .find(|&kg| subtask_for_key_group(kg, self.count) != self.index)
            .unwrap_or(KEY_GROUPS);
        start..end
    }

    /// True if this shard reads broker partition (or stream) number `partition`.
    pub fn owns_partition(self, partition: usize) -> bool {
        partition % self.count == self.index
    }

    /// This shard's share of `items` dealt out in turn: the items at
    /// positions `i` with `i mod count == index` (a source's splits).
    pub fn share<T>(self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, item)| item)
            .collect()
    }

    /// The name of this shard in paths: `shard-I-of-N`.
    pub fn tag(self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The key groups a run's keyed operators own: all of them, or a shard's.
///
/// ```text
///  all      kg ──► kg * p / 128
///  shard    kg in [start, end) ──► (kg - start) * p / (end - start); other kg: not ours
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroups(Range<usize>);

impl Default for KeyGroups {
    fn default() -> Self {
        KeyGroups(0..KEY_GROUPS)
    }
}

impl KeyGroups {
    /// Every key group (one process).
    pub fn all() -> Self {
        Self::default()
    }

    /// The key groups of `shard`.
    pub fn of_shard(shard: Shard) -> Self {
        KeyGroups(shard.key_groups())
    }

    /// The range.
    pub fn range(&self) -> Range<usize> {
        self.0.clone()
    }

    /// How many key groups (the most subtasks a keyed operator can use).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are none (never, for a valid shard).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True if these are every key group (one process).
    pub fn is_all(&self) -> bool {
        self.0 == (0..KEY_GROUPS)
    }

    /// True if `key_group` is one of these.
    #[inline]
    pub fn contains(&self, key_group: usize) -> bool {
        self.0.contains(&key_group)
    }

    /// The subtask (of `parallelism`) owning `key_group`, which must be one of these.
    #[inline]
    pub fn subtask(&self, key_group: usize, parallelism: usize) -> usize {
        (key_group - self.0.start) * parallelism / self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_key_groups_without_gap_or_overlap() {
        for n in [1, 2, 3, 5, 7, 64, 128] {
            let mut next = 0;
            for i in 0..n {
                let r = Shard::try_new(i, n).unwrap().key_groups();
                assert_eq!(r.start, next, "{i}/{n}");
                assert!(!r.is_empty());
                next = r.end;
            }
            assert_eq!(next, KEY_GROUPS);
        }
        assert_eq!(Shard::try_new(0, 3).unwrap().key_groups(), 0..43);
        assert_eq!(Shard::try_new(2, 3).unwrap().key_groups(), 86..128);
    }

    #[test]
    fn subtasks_inside_a_shard_are_balanced_and_contiguous() {
        let kg = KeyGroups::of_shard(Shard::try_new(1, 3).unwrap());
        let owners: Vec<usize> = kg.range().map(|g| kg.subtask(g, 2)).collect();
        assert_eq!(owners.iter().filter(|&&s| s == 0).count(), 22);
        assert_eq!(owners.iter().filter(|&&s| s == 1).count(), 21);
        assert!(owners.windows(2).all(|w| w[0] <= w[1]));
        let all = KeyGroups::all();
        for g in 0..KEY_GROUPS {
            assert_eq!(all.subtask(g, 3), subtask_for_key_group(g, 3));
        }
    }

    #[test]
    fn bad_shards_are_refused_by_name() {
        for bad in ["3/3", "1", "a/3", "0/0", "-1/2", "0/129"] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(e.contains("shard"), "{bad}: {e}");
        }
        assert_eq!(
            Shard::parse(" 2 / 4 ").unwrap(),
            Shard::try_new(2, 4).unwrap()
        );
        assert_eq!(Shard::from_hostname("weir-2\n", 3).unwrap().index(), 2);
        let e = Shard::from_hostname("weir-3", 3).unwrap_err().to_string();
        assert!(
            e.contains("shard-from-hostname") && e.contains("weir-3"),
            "{e}"
        );
        let e = Shard::from_hostname("worker", 3).unwrap_err().to_string();
        assert!(e.contains("worker") && e.contains("ORDINAL"), "{e}");
        assert!(Shard::try_new(1, 2).unwrap().owns_partition(5));
        assert!(!Shard::try_new(1, 2).unwrap().owns_partition(4));
    }
}

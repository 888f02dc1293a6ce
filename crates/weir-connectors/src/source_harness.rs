//! Test harness for source snapshots (unit tests only): polls a source the
//! way the executor does, snapshots it after `cut` polls, restores a fresh
//! instance from the state bytes and polls it to the end.
//!
//! ```text
//!  oracle:   fresh source ──poll to Exhausted──► items
//!  restored: fresh source ──cut polls──► snapshot ─encode/decode─► fresh source
//!            ──restore──► poll to Exhausted;  items before + after == oracle
//! ```
//! Items are rows (as display strings), side-output rows and watermarks,
//! in order, so batch boundaries do not matter but row order does.

use arrow_array::RecordBatch;
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::message::{Message, Watermark};
use weir_core::operator::{Ctx, OperatorMetrics, Output, RuntimeEnv, Source, SourcePoll, TaskInfo};
use weir_core::state::{StateReader, StateWriter, SubtaskState};

/// Builds a source instance for a subtask.
pub type MakeSource<'a> = &'a dyn Fn(&TaskInfo) -> Result<Box<dyn Source>>;

/// One thing a source emitted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    /// A row on the main output.
    Row(String),
    /// A row on side output `port`.
    Side(usize, String),
    /// A watermark (event time).
    Wm(i64),
    /// An idle watermark.
    Idle,
}

/// Most polls a run may take (a source that never ends fails the test).
const MAX_POLLS: usize = 1_000_000;

/// A source instance with its context.
pub struct Running<S: Source + ?Sized = dyn Source> {
    src: Box<S>,
    ctx: Ctx,
}

fn rows(b: &RecordBatch) -> Vec<String> {
    // named time zones cannot be displayed without chrono-tz: show the numbers
    let columns: Vec<arrow_array::ArrayRef> = b
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            arrow_schema::DataType::Timestamp(_, Some(_)) => {
                arrow_cast::cast(c, &arrow_schema::DataType::Int64).expect("timestamps cast")
            }
            _ => c.clone(),
        })
        .collect();
    (0..b.num_rows())
        .map(|i| {
            columns
                .iter()
                .map(|c| arrow_cast::display::array_value_to_string(c, i).expect("displayable"))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// The task info of subtask `subtask` of `parallelism`.
pub fn info(subtask: usize, parallelism: usize) -> TaskInfo {
    TaskInfo {
        operator: "src".into(),
        subtask,
        parallelism,
    }
}

impl Running {
    /// A fresh instance of subtask `subtask` of `parallelism`.
    pub fn new(make: MakeSource<'_>, subtask: usize, parallelism: usize) -> Self {
        let info = info(subtask, parallelism);
        let src = make(&info).expect("the source builds");
        Running::typed(src, info)
    }

    /// A fresh instance restored from `states` (old subtasks' states).
    pub fn restored(
        make: MakeSource<'_>,
        states: &Arc<Vec<SubtaskState>>,
        subtask: usize,
        parallelism: usize,
    ) -> Self {
        let mut r = Running::new(make, subtask, parallelism);
        let reader = StateReader::for_subtask(states.clone(), subtask, parallelism);
        r.src.restore(&mut r.ctx, &reader).expect("restore");
        r
    }
}

impl<S: Source + ?Sized> Running<S> {
    /// Runs `src` as the subtask `info` says.
    pub fn typed(src: Box<S>, info: TaskInfo) -> Self {
        let env = RuntimeEnv::try_new(usize::MAX / 2, None).expect("env");
        let ctx = Ctx::new(info, env, Arc::new(OperatorMetrics::default()));
        Running { src, ctx }
    }

    /// The source itself (to look at its state in a test).
    pub fn source(&self) -> &S {
        &self.src
    }

    /// Restores the source (before its first poll).
    pub fn restore(&mut self, states: &Arc<Vec<SubtaskState>>) -> Result<()> {
        let info = self.ctx.info().clone();
        let reader = StateReader::for_subtask(states.clone(), info.subtask, info.parallelism);
        self.src.restore(&mut self.ctx, &reader)
    }

    /// One poll; appends what it emitted to `items`.
    pub fn poll(&mut self, items: &mut Vec<Item>) -> SourcePoll {
        let mut out = Output::new();
        let poll = self.src.poll_next(&mut self.ctx, &mut out).expect("poll");
        for m in out.take() {
            match m {
                Message::Data(b) => items.extend(rows(&b).into_iter().map(Item::Row)),
                Message::Side(p, b) => items.extend(rows(&b).into_iter().map(|r| Item::Side(p, r))),
                Message::Watermark(Watermark::EventTime(t)) => items.push(Item::Wm(t)),
                Message::Watermark(Watermark::Idle) => items.push(Item::Idle),
                other => panic!("a source emitted {other:?}"),
            }
        }
        poll
    }

    /// Polls `n` times (fewer if the source ends first).
    pub fn poll_n(&mut self, n: usize, items: &mut Vec<Item>) {
        for _ in 0..n {
            if self.poll(items) == SourcePoll::Exhausted {
                return;
            }
        }
    }

    /// Polls until `Exhausted`; returns the number of polls.
    pub fn run_to_end(&mut self, items: &mut Vec<Item>) -> usize {
        for n in 1..=MAX_POLLS {
            if self.poll(items) == SourcePoll::Exhausted {
                return n;
            }
        }
        panic!("the source did not end within {MAX_POLLS} polls")
    }

    /// Snapshots the source; the state goes through encode/decode.
    pub fn snapshot(&mut self) -> SubtaskState {
        self.try_snapshot().expect("snapshot")
    }

    /// Snapshots the source, returning its error if it refuses.
    pub fn try_snapshot(&mut self) -> Result<SubtaskState> {
        let mut w = StateWriter::for_checkpoint(1);
        self.src.snapshot(&mut self.ctx, &mut w)?;
        let bytes = w.finish().encode()?;
        SubtaskState::decode(&bytes)
    }
}

/// Everything subtask `subtask` of `parallelism` emits, and how many polls it took.
pub fn uninterrupted(
    make: MakeSource<'_>,
    subtask: usize,
    parallelism: usize,
) -> (Vec<Item>, usize) {
    let mut items = Vec::new();
    let polls = Running::new(make, subtask, parallelism).run_to_end(&mut items);
    (items, polls)
}

/// Runs `cut` polls, snapshots, restores a fresh instance (same
/// parallelism) and runs it to the end; everything emitted.
pub fn with_restore(
    make: MakeSource<'_>,
    subtask: usize,
    parallelism: usize,
    cut: usize,
) -> Vec<Item> {
    let mut items = Vec::new();
    let mut states: Vec<SubtaskState> = vec![SubtaskState::default(); parallelism];
    {
        let mut first = Running::new(make, subtask, parallelism);
        first.poll_n(cut, &mut items);
        states[subtask] = first.snapshot();
    }
    let mut second = Running::restored(make, &Arc::new(states), subtask, parallelism);
    second.run_to_end(&mut items);
    items
}

/// For every subtask of `parallelism` and every cut from 0 to the end,
/// asserts that a snapshot and restore there changes nothing.
pub fn assert_every_cut(make: MakeSource<'_>, parallelism: usize) {
    for subtask in 0..parallelism {
        let (oracle, polls) = uninterrupted(make, subtask, parallelism);
        for cut in 0..=polls {
            let got = with_restore(make, subtask, parallelism, cut);
            assert_eq!(
                got, oracle,
                "subtask {subtask}/{parallelism}, cut after {cut} of {polls} polls"
            );
        }
    }
}

/// Runs each of `cuts.len()` subtasks for its cut, snapshots them all,
/// restores `p_after` subtasks and runs them to the end. Returns every row
/// emitted (main and side outputs) as a sorted multiset.
pub fn rescaled_rows(make: MakeSource<'_>, cuts: &[usize], p_after: usize) -> Vec<String> {
    let mut items = Vec::new();
    let states: Vec<SubtaskState> = cuts
        .iter()
        .enumerate()
        .map(|(s, &cut)| {
            let mut r = Running::new(make, s, cuts.len());
            r.poll_n(cut, &mut items);
            r.snapshot()
        })
        .collect();
    let states = Arc::new(states);
    for s in 0..p_after {
        Running::restored(make, &states, s, p_after).run_to_end(&mut items);
    }
    row_multiset(items)
}

/// Asserts that `make`'s source emits late rows and watermarks (so the
/// check means something) and that a restore after any poll, at
/// parallelism 1 and 2, continues exactly ([`assert_every_cut`]).
pub fn assert_every_cut_of_a_timed_source(make: MakeSource<'_>) {
    let (all, _) = uninterrupted(make, 0, 1);
    assert!(
        all.iter().any(|i| matches!(i, Item::Side(1, _))),
        "has late rows"
    );
    assert!(
        all.iter().any(|i| matches!(i, Item::Wm(_))),
        "has watermarks"
    );
    for p in [1, 2] {
        assert_every_cut(make, p);
    }
}

/// Asserts that after a snapshot of two subtasks at each pair of `cuts`,
/// a restore at parallelism 1 and 3 reads every row of the uninterrupted
/// run exactly once (main and side outputs); returns that multiset.
pub fn assert_rescales_read_every_row_once(
    make: MakeSource<'_>,
    cuts: &[[usize; 2]],
) -> Vec<String> {
    let (all, _) = uninterrupted(make, 0, 1);
    let input = row_multiset(all);
    for cuts in cuts {
        for p_after in [1, 3] {
            assert_eq!(
                rescaled_rows(make, cuts, p_after),
                input,
                "cuts {cuts:?} -> p {p_after}"
            );
        }
    }
    input
}

/// The rows (main and side outputs) among `items`, sorted.
pub fn row_multiset(items: Vec<Item>) -> Vec<String> {
    let mut rows: Vec<String> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Row(r) | Item::Side(_, r) => Some(r),
            _ => None,
        })
        .collect();
    rows.sort();
    rows
}

//! What the watermark does to a symmetric hash join: joins the epochs of
//! windowed joins once both sides are complete, emits outer rows whose
//! partners can no longer come, and drops rows no window or session needs.
//!
//! May use what the parent module imports.

use super::*;

impl SymmetricHashJoin {
    /// End of input of a regular or interval join that spilled: joins the
    /// rows of different epochs (all on disk now), a hash step at a time.
    pub(super) fn join_epochs(&mut self, ctx: &Ctx, out: &mut Output) -> Result<()> {
        self.spill_state(ctx.spill())?;
        self.sync(ctx)?;
        let step_bytes = store::step_bytes(self.read_back.pool());
        while let Some(step) = self.runs.next_step(step_bytes)? {
            let left = self.runs.take_through(0, step)?;
            let right = self.runs.take_through(1, step)?;
            let bytes: usize = left.iter().chain(&right).map(batch_bytes).sum();
            // a step holds every row of its key hashes
            store::reserve_step(&mut self.read_back, bytes);
            let result = self.join_epoch_step(&left, &right, out);
            self.read_back.shrink(bytes);
            result?;
        }
        Ok(())
    }

    pub(super) fn join_epoch_step(
        &self,
        left: &[RecordBatch],
        right: &[RecordBatch],
        out: &mut Output,
    ) -> Result<()> {
        type Rows = Vec<((usize, usize), runs::ReadRow, i64)>;
        let mut groups: HashMap<Vec<u8>, [Rows; 2]> = HashMap::new();
        let mut inputs: [Vec<RecordBatch>; 2] = [Vec::new(), Vec::new()];
        for (s, batches) in [left, right].into_iter().enumerate() {
            for (b, batch) in batches.iter().enumerate() {
                let (meta, input) = runs::split(batch);
                let keys = self.sides[s].keys.encode(&input)?;
                let times = self.layout.row_times(s, &input, "join")?;
                for (r, m) in meta.into_iter().enumerate() {
                    let t = times.time(r);
                    groups.entry(keys.row(r).as_ref().to_vec()).or_default()[s].push((
                        (b, r),
                        m,
                        t,
                    ));
                }
                inputs[s].push(input);
            }
        }
        let spec = self.layout.spec();
        let ty = spec.join_type;
        let (mut rows, mut ops): (Vec<OutRow>, Vec<&str>) = (Vec::new(), Vec::new());
        for [l, r] in groups.values() {
            let mut crossed = [vec![false; l.len()], vec![false; r.len()]];
            for (i, (la, lm, lt)) in l.iter().enumerate() {
                for (j, (ra, rm, rt)) in r.iter().enumerate() {
                    if lm.epoch != rm.epoch && spec.times_match(*lt, *rt) {
                        crossed[0][i] = true;
                        crossed[1][j] = true;
                        rows.push((Some(*la), Some(*ra), None));
                        ops.push("insert");
                    }
                }
            }
            // regular: a padded row still live (never matched in its epoch)
            // that now has a match is retracted; interval: a row never
            // matched in any epoch is padded now
            let regular = spec.kind == JoinKind::Regular;
            for (s, list) in [l, r].into_iter().enumerate() {
                let keeps = ty.keeps(s);
                for (i, (at, m, _)) in list.iter().enumerate() {
                    let pad = padded(s, *at, None);
                    if keeps && !m.matched && regular && crossed[s][i] {
                        rows.push(pad);
                        ops.push("delete");
                    } else if keeps && !m.matched && !regular && !crossed[s][i] {
                        rows.push(pad);
                        ops.push("insert");
                    }
                }
            }
        }
        if !rows.is_empty() {
            let l: Vec<&RecordBatch> = inputs[0].iter().collect();
            let r: Vec<&RecordBatch> = inputs[1].iter().collect();
            let ops = self
                .layout
                .spec()
                .emits_changelog()
                .then_some(ops.as_slice());
            for (chunk, ops) in chunks(&rows, ops, STEP_ROWS) {
                out.emit(self.layout.assemble(&l, &r, chunk, ops)?);
            }
        }
        Ok(())
    }

    /// The windows of a row: assigned from its time, or its own columns.
    pub(super) fn windows(&self, e: &Entry) -> Vec<(i64, i64)> {
        let mut wins = Vec::new();
        self.windows_into(e, &mut wins);
        wins
    }

    /// [`windows`](Self::windows) into a reused buffer.
    pub(super) fn windows_into(&self, e: &Entry, wins: &mut Vec<(i64, i64)>) {
        wins.clear();
        match self.layout.spec().kind {
            // sessions depend on the other rows (see advance_sessions)
            JoinKind::Window(Window::Session { .. }) => {}
            JoinKind::Window(w) => wins.extend(
                w.windows_of_pane(w.pane_of(e.time))
                    .into_iter()
                    .filter(|&(s, end)| s <= e.time && e.time < end),
            ),
            JoinKind::SameWindow => wins.push(e.window),
            _ => {}
        }
    }

    /// The watermark at which a stored row is done (no later row can match it).
    pub(super) fn done_at(&self, side: usize, e: &Entry) -> i64 {
        match self.layout.spec().kind {
            // the earliest its session can close
            JoinKind::Window(Window::Session { gap_ms }) => e.time.saturating_add(gap_ms),
            // one window per row (no allocation on this per-row path)
            JoinKind::SameWindow => Window::max_timestamp(e.window.1),
            JoinKind::Interval { lower_ms, upper_ms } => {
                if side == 0 {
                    e.time.saturating_sub(lower_ms)
                } else {
                    e.time.saturating_add(upper_ms)
                }
            }
            JoinKind::Window(_) => self
                .windows(e)
                .iter()
                .map(|&(_, end)| Window::max_timestamp(end))
                .max()
                .unwrap_or(i64::MIN),
            JoinKind::Regular => self
                .layout
                .spec()
                .ttl_ms
                .map_or(i64::MAX, |ttl| e.time.saturating_add(ttl)),
        }
    }

    /// The next watermark at which something of a stored row is due.
    pub(super) fn due_at(&self, side: usize, e: &Entry) -> i64 {
        match self.layout.spec().kind {
            JoinKind::Window(Window::Session { .. }) | JoinKind::SameWindow => {
                let t = self.done_at(side, e);
                if t > self.watermark {
                    t
                } else {
                    i64::MIN
                }
            }
            JoinKind::Window(_) => self
                .windows(e)
                .iter()
                .map(|&(_, end)| Window::max_timestamp(end))
                .filter(|&t| t > self.watermark)
                .min()
                .unwrap_or(i64::MIN),
            _ => self.done_at(side, e),
        }
    }

    pub(super) fn emit(&self, rows: &[OutRow], ops: &[&str], out: &mut Output) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (l, r) = (self.sides[0].sources(), self.sides[1].sources());
        let ops = self.layout.spec().emits_changelog().then_some(ops);
        out.emit(self.layout.assemble(&l, &r, rows, ops)?);
        Ok(())
    }

    /// Fires what watermark `w` completes; with spilled window-join rows,
    /// in steps that each bring back a bounded number first.
    pub(super) fn advance(&mut self, w: i64, ctx: &Ctx, out: &mut Output) -> Result<()> {
        let windowed = matches!(
            self.layout.spec().kind,
            JoinKind::Window(_) | JoinKind::SameWindow
        );
        if !windowed || self.runs.is_empty() {
            return self.advance_to(w, out);
        }
        loop {
            let step = match self
                .runs
                .next_step(store::step_bytes(self.read_back.pool()))?
            {
                Some(b) if b < w => b,
                _ => w,
            };
            for s in 0..2 {
                let batches = self.runs.take_through(s, step)?;
                self.hydrate(s, batches, ctx)?;
            }
            self.advance_to(step, out)?;
            if step >= w {
                return Ok(());
            }
        }
    }

    /// The earliest watermark at which a stored row may have work
    /// (`i64::MAX`: none indexed).
    pub(super) fn next_due(&self) -> i64 {
        let [left, right] = &self.sides;
        match (left.next_due(), right.next_due()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(i64::MAX),
        }
    }

    /// The keys with work at watermark `w` on either side, each once, as
    /// its slot on each side that has rows of it; taken out of the index
    /// (each goes back with `Side::finish_prefix`).
    fn take_due_keys(&mut self, w: i64) -> Vec<[Option<Slot>; 2]> {
        let [left, right] = &mut self.sides;
        let (mut l, mut r) = (Vec::new(), Vec::new());
        left.take_due(w, &mut l);
        right.take_due(w, &mut r);
        let mut keys = Vec::with_capacity(l.len() + r.len());
        for slot in l {
            let other = left.list(slot).partner;
            debug_assert_eq!(other, right.slot(&left.list(slot).key));
            keys.push([Some(slot), other]);
        }
        for slot in r {
            let other = right.list(slot).partner;
            debug_assert_eq!(other, left.slot(&right.list(slot).key));
            match other {
                // listed with the left side's slot already
                Some(other) if left.was_taken(other) => {}
                other => keys.push([other, Some(slot)]),
            }
        }
        keys
    }

    /// Session-window joins at watermark `w`: per key, sessions over the
    /// rows of both sides; each session ending at or before `w` is joined
    /// and its rows dropped (a later row has `t > w >= end`: it cannot touch).
    pub(super) fn advance_sessions(&mut self, w: i64, gap_ms: i64, out: &mut Output) -> Result<()> {
        let ty = self.layout.spec().join_type;
        // the keys whose first session may have closed (see side::Order)
        let keys = self.take_due_keys(w);
        let mut rows: Vec<OutRow> = Vec::new();
        // (key, side, closed rows: a prefix of the side's list, due time of the rest)
        let mut finished: Vec<(usize, usize, usize, Option<i64>)> = Vec::new();
        for (k, slots) in keys.iter().enumerate() {
            let mut refs: [Vec<SideRow>; 2] = [Vec::new(), Vec::new()];
            for (s, refs) in refs.iter_mut().enumerate() {
                if let Some(slot) = slots[s] {
                    let entries = self.sides[s].list(slot);
                    refs.extend(entries.rows.iter().map(|e| SideRow {
                        at: (e.batch as usize, e.row as usize),
                        time: e.time,
                        window: e.window,
                    }));
                }
            }
            let mut lists: [Vec<((i64, i64), usize)>; 2] = [Vec::new(), Vec::new()];
            let mut closed = [0usize; 2];
            let mut next = None;
            for (window, members) in sessions_of(&refs[0], &refs[1], gap_ms) {
                if window.1 > w {
                    next = Some(next.map_or(window.1, |n: i64| n.min(window.1)));
                    continue;
                }
                for s in 0..2 {
                    closed[s] += members[s].len();
                    lists[s].extend(members[s].iter().map(|&i| (window, i)));
                }
            }
            for (s, list) in lists.iter_mut().enumerate() {
                // sessions closed by `w` precede every open one in time: a
                // closed session ends before the next one starts
                debug_assert!(list.iter().all(|&(_, i)| i < closed[s]));
                list.sort_unstable();
                if slots[s].is_some() {
                    let head = (closed[s] < refs[s].len()).then(|| next.unwrap_or(i64::MIN));
                    finished.push((k, s, closed[s], head));
                }
            }
            join_by_window(ty, &refs[0], &refs[1], &lists[0], &lists[1], &mut rows);
        }
        self.watermark = w;
        let ops = vec!["insert"; rows.len()];
        self.emit(&rows, &ops, out)?;
        // drop the rows of closed sessions (after emitting: rows point into
        // their batches) and index the keys again
        for (k, s, closed, head) in finished {
            let slot = keys[k][s].expect("finished only where the key has rows");
            self.finish_prefix(s, slot, closed, head);
        }
        Ok(())
    }

    /// Fires what watermark `w` completes and drops what it finishes.
    pub(super) fn advance_to(&mut self, w: i64, out: &mut Output) -> Result<()> {
        if w <= self.watermark {
            return Ok(());
        }
        let spec = self.layout.spec().clone();
        // Regular and interval joins keep finished rows once they have
        // spilled: a row on disk (an earlier epoch) may still pair with them
        // at end of input, which also decides the interval join's padding.
        let by_epoch = matches!(spec.kind, JoinKind::Regular | JoinKind::Interval { .. });
        let keeps_all = (spec.kind == JoinKind::Regular && spec.ttl_ms.is_none())
            || (by_epoch && !self.runs.is_empty());
        if keeps_all || w < self.next_due() {
            self.watermark = w;
            return Ok(());
        }
        if let JoinKind::Window(Window::Session { gap_ms }) = spec.kind {
            return self.advance_sessions(w, gap_ms, out);
        }
        // the keys with work at `w` (see side::Order); no other key has any
        let keys = self.take_due_keys(w);
        let prev = self.watermark;
        // due times of what stays are counted from `w`
        self.watermark = w;
        let windowed = matches!(spec.kind, JoinKind::Window(_) | JoinKind::SameWindow);
        let mut rows: Vec<OutRow> = Vec::new();
        let mut wins: Vec<(i64, i64)> = Vec::new();
        let mut lists: [Vec<((i64, i64), usize)>; 2] = [Vec::new(), Vec::new()];
        let mut refs: [Vec<SideRow>; 2] = [Vec::new(), Vec::new()];
        // (key, side, finished rows, due time of the first row left)
        let mut finished: Vec<(usize, usize, usize, Option<i64>)> = Vec::new();
        for (k, slots) in keys.iter().enumerate() {
            for s in 0..2 {
                lists[s].clear();
                refs[s].clear();
                let side = &self.sides[s];
                let Some(slot) = slots[s] else {
                    continue;
                };
                let list = side.list(slot);
                if windowed {
                    // a row with a window ending by `w` has its order value <= `w`
                    for e in list.rows.iter().take_while(|e| side.order.value(e) <= w) {
                        let i = refs[s].len();
                        refs[s].push(SideRow {
                            at: (e.batch as usize, e.row as usize),
                            time: e.time,
                            window: e.window,
                        });
                        self.windows_into(e, &mut wins);
                        for &win in &wins {
                            let t = Window::max_timestamp(win.1);
                            if t > prev && t <= w {
                                lists[s].push((win, i));
                            }
                        }
                    }
                    lists[s].sort_unstable();
                }
                let done = list
                    .rows
                    .iter()
                    .take_while(|e| self.done_at(s, e) <= w)
                    .count();
                // regular joins padded their rows on arrival
                let pads = spec.join_type.keeps(s) && spec.kind != JoinKind::Regular;
                if !windowed && pads {
                    for e in list.rows.iter().take(done).filter(|e| !e.matched) {
                        rows.push(padded(s, (e.batch as usize, e.row as usize), None));
                    }
                }
                let head = list.rows.get(done).map(|e| self.due_at(s, e));
                finished.push((k, s, done, head));
            }
            if windowed {
                join_by_window(
                    spec.join_type,
                    &refs[0],
                    &refs[1],
                    &lists[0],
                    &lists[1],
                    &mut rows,
                );
            }
        }
        let ops = vec!["insert"; rows.len()];
        self.emit(&rows, &ops, out)?;
        // drop finished rows (after emitting: rows point into their batches)
        // and index the keys again
        for (k, s, done, head) in finished {
            let slot = keys[k][s].expect("finished only where the key has rows");
            self.finish_prefix(s, slot, done, head);
        }
        Ok(())
    }
}

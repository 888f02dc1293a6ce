//! `[[steps]]`: one operation each (filter, select, with_column, key_by,
//! window, count window, aggregates, union, join) with its options, and
//! applying them in order to a stream. Joins build their right input's
//! source and steps recursively.
//!
//! May use what the parent module imports.

use super::*;

/// `with_column = { name = "...", expr = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithColumnSpec {
    /// The new column.
    pub name: String,
    /// Its expression.
    pub expr: String,
}

/// `window = { kind = "tumbling", size = "1s", offset = "0s" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// tumbling, sliding, cumulative or session.
    #[serde(default = "tumbling")]
    pub kind: String,
    /// Window length (tumbling, sliding) or largest window (cumulative).
    #[serde(default)]
    pub size: Option<String>,
    /// Distance between window starts (sliding).
    #[serde(default)]
    pub slide: Option<String>,
    /// Growth step (cumulative).
    #[serde(default)]
    pub step: Option<String>,
    /// Inactivity closing a session (session).
    #[serde(default)]
    pub gap: Option<String>,
    /// Alignment offset.
    #[serde(default)]
    pub offset: Option<String>,
    /// `event` (default) or `processing` time.
    #[serde(default)]
    pub time: Option<String>,
    /// Rows per window (count windows).
    #[serde(default)]
    pub rows: Option<u64>,
    /// Fire every this many rows over the last `rows` (sliding count windows).
    #[serde(default)]
    pub slide_rows: Option<u64>,
}

/// `trigger = { every_rows = 100, every = "5s", purge = false }`: early firings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// Fire a key's window every this many rows.
    #[serde(default)]
    pub every_rows: Option<u64>,
    /// Fire windows with new rows every interval of processing time.
    #[serde(default)]
    pub every: Option<String>,
    /// Emit deltas instead of running results (tumbling windows).
    #[serde(default)]
    pub purge: bool,
}

fn tumbling() -> String {
    "tumbling".into()
}

/// One aggregate: `{ fn = "avg", column = "speed", as = "avg_speed" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggSpec {
    /// count, sum, min, max, avg.
    #[serde(rename = "fn")]
    pub func: String,
    /// Input column (omit for `count`).
    #[serde(default)]
    pub column: Option<String>,
    /// Output column name.
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
}

/// One step: exactly one of the operation fields, plus options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Keep rows where this expression is true.
    pub filter: Option<String>,
    /// Keep these columns.
    pub select: Option<Vec<String>>,
    /// Add or replace a computed column.
    pub with_column: Option<WithColumnSpec>,
    /// Partition by these columns (followed by a window or an aggregates step).
    pub key_by: Option<Vec<String>>,
    /// A window (with `aggregates`).
    pub window: Option<WindowSpec>,
    /// The window's aggregates.
    pub aggregates: Option<Vec<AggSpec>>,
    /// Early firings of the window.
    pub trigger: Option<TriggerSpec>,
    /// Merge another Parquet source (same schema) into the stream.
    pub union: Option<Spanned<Table>>,
    /// Join the stream (left) with another pipeline (right).
    pub join: Option<Box<JoinStepSpec>>,
    /// Redistribute batches round-robin before this step's operator.
    #[serde(default)]
    pub rebalance: bool,
    /// Parallelism of this step's operator.
    pub parallelism: Option<usize>,
}

/// A `[steps.join]` table (`kind`, `on`, `type`, and `window` or
/// `lower`/`upper`), with the right input in `[steps.join.right.source]`
/// and `[[steps.join.right.steps]]` (see `examples/seed_join.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinStepSpec {
    /// regular (default), window, same_window or interval.
    #[serde(default = "regular")]
    pub kind: String,
    /// Key columns of the left side (and of the right, unless `right_on`).
    pub on: Vec<String>,
    /// Key columns of the right side.
    #[serde(default)]
    pub right_on: Option<Vec<String>>,
    /// inner (default), left, right or full.
    #[serde(default, rename = "type")]
    pub join_type: Option<String>,
    /// The window of a window join (tumbling, sliding or cumulative).
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// Interval join: `right.t + lower <= left.t` (e.g. `"-5s"`).
    #[serde(default)]
    pub lower: Option<String>,
    /// Interval join: `left.t <= right.t + upper` (e.g. `"5s"`).
    #[serde(default)]
    pub upper: Option<String>,
    /// Regular join: an event-time state TTL (e.g. `"1h"`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// The right input.
    pub right: RightSpec,
}

/// The right input of a join: a source and its own steps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightSpec {
    /// Where its rows come from.
    pub source: Spanned<Table>,
    /// Its transformations.
    #[serde(default)]
    pub steps: Vec<Spanned<StepSpec>>,
}

fn regular() -> String {
    "regular".into()
}

impl LoadedJob {
    /// Applies `steps` to `stream` in order.
    pub(super) fn apply_steps(
        &self,
        job: &Job,
        mut stream: Stream,
        steps: &[Spanned<StepSpec>],
    ) -> Result<Stream> {
        let mut keys: Option<(Vec<String>, Range<usize>)> = None;
        for (i, step) in steps.iter().enumerate() {
            let span = step.span();
            let s = step.get_ref();
            let field = |name: &str| format!("steps[{i}].{name}");
            let ops = [
                s.filter.is_some(),
                s.select.is_some(),
                s.with_column.is_some(),
                s.key_by.is_some(),
                s.window.is_some(),
                s.union.is_some(),
                s.join.is_some(),
                // aggregates without a window: a running aggregate per key
                s.aggregates.is_some() && s.window.is_none(),
            ];
            let count = ops.iter().filter(|&&b| b).count();
            if count != 1 {
                return Err(self.error(
                    span,
                    &format!("steps[{i}]"),
                    "a step needs exactly one of filter, select, with_column, key_by, window, aggregates, union, join",
                ));
            }
            if s.trigger.is_some() && s.window.is_none() {
                return Err(self.error(
                    span,
                    &field("trigger"),
                    "only a window step takes a trigger",
                ));
            }
            let grouped = s.aggregates.is_some() && s.window.is_none();
            if grouped && keys.is_none() {
                return Err(self.error(
                    span,
                    &field("aggregates"),
                    "aggregates without a window need a key_by step before them",
                ));
            }
            if keys.is_some() && s.window.is_none() && !grouped {
                return Err(self.error(
                    span,
                    &format!("steps[{i}]"),
                    "key_by must be followed by a window or aggregates step",
                ));
            }
            if s.rebalance {
                if s.key_by.is_some() || s.window.is_some() {
                    return Err(self.error(
                        span,
                        &field("rebalance"),
                        "a keyed window distributes rows by key; rebalance does not apply here",
                    ));
                }
                stream = stream.rebalance();
            }
            if s.parallelism.is_some() && s.key_by.is_some() {
                return Err(self.error(
                    span,
                    &field("parallelism"),
                    "key_by runs no operator: set parallelism on the window step after it",
                ));
            }
            let wrap = |name: &str, e: Error| self.error(span.clone(), &field(name), e);
            stream = if let Some(f) = &s.filter {
                let e = parse_expr(f).map_err(|e| wrap("filter", e))?;
                stream.filter(e).map_err(|e| wrap("filter", e))?
            } else if let Some(cols) = &s.select {
                stream.select(cols).map_err(|e| wrap("select", e))?
            } else if let Some(w) = &s.with_column {
                let e = parse_expr(&w.expr).map_err(|e| wrap("with_column.expr", e))?;
                stream
                    .with_column(&w.name, e)
                    .map_err(|e| wrap("with_column", e))?
            } else if let Some(k) = &s.key_by {
                stream.key_by(k).map_err(|e| wrap("key_by", e))?;
                keys = Some((k.clone(), span.clone()));
                continue;
            } else if let Some(u) = &s.union {
                let other = self.source(job, u, &field("union"))?;
                stream.union(&other).map_err(|e| wrap("union", e))?
            } else if grouped {
                let (k, _) = keys.take().expect("checked above");
                let aggs = self.aggregates(s, &span, i)?;
                stream
                    .key_by(&k)
                    .and_then(|keyed| keyed.aggregate(aggs))
                    .map_err(|e| wrap("aggregates", e))?
            } else if let Some(j) = &s.join {
                self.join_step(job, &stream, j, span.clone(), &field("join"))?
            } else {
                let w = s.window.as_ref().expect("counted above");
                self.window_step(&stream, w, s, keys.take(), span.clone(), i)?
            };
            if let Some(p) = s.parallelism {
                stream = stream
                    .with_parallelism(p)
                    .map_err(|e| wrap("parallelism", e))?;
            }
        }
        if let Some((_, span)) = keys {
            return Err(self.error(
                span,
                "key_by",
                "must be followed by a window or aggregates step",
            ));
        }
        Ok(stream)
    }

    pub(super) fn join_step(
        &self,
        job: &Job,
        left: &Stream,
        j: &JoinStepSpec,
        span: Range<usize>,
        field: &str,
    ) -> Result<Stream> {
        let f = |name: &str| format!("{field}.{name}");
        let err = |name: &str, e: Error| self.error(span.clone(), &f(name), e);
        let right = self.source(job, &j.right.source, &f("right.source"))?;
        let right = self.apply_steps(job, right, &j.right.steps)?;
        let signed = |name: &str, v: &Option<String>| -> Result<i64> {
            let text = v.as_deref().ok_or_else(|| {
                err(
                    name,
                    Error::option(f(name), "an interval join needs `lower` and `upper`"),
                )
            })?;
            let (neg, body) = match text.trim().strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.trim()),
            };
            let ms = weir_core::time::duration_ms(
                parse_duration(&f(name), body).map_err(|e| err(name, e))?,
            );
            Ok(if neg { -ms } else { ms })
        };
        let spec = match j.kind.as_str() {
            "regular" => JoinSpec::regular(),
            "same_window" => JoinSpec::same_window(),
            "interval" => JoinSpec::interval_ms(signed("lower", &j.lower)?, signed("upper", &j.upper)?),
            "window" => {
                let w = j.window.as_ref().ok_or_else(|| {
                    err("window", Error::option(f("window"), "a window join needs `window`"))
                })?;
                JoinSpec::window(self.time_window(w, span.clone(), &f("window"))?)
            }
            other => {
                return Err(err(
                    "kind",
                    Error::option(
                        f("kind"),
                        format!("unknown join kind `{other}` (use regular, window, same_window or interval)"),
                    ),
                ))
            }
        };
        let join_type: JoinType = j
            .join_type
            .as_deref()
            .unwrap_or("inner")
            .parse()
            .map_err(|e| err("type", e))?;
        let mut spec = spec
            .on(
                j.on.clone(),
                j.right_on.clone().unwrap_or_else(|| j.on.clone()),
            )
            .with_type(join_type);
        if let Some(ttl) = &j.ttl {
            spec = spec.with_ttl(parse_duration(&f("ttl"), ttl).map_err(|e| err("ttl", e))?);
        }
        left.join(&right, spec)
            .map_err(|e| self.error(span, field, e))
    }

    /// The time window `w` describes (not count windows); `field` names it in errors.
    pub(super) fn time_window(
        &self,
        w: &WindowSpec,
        span: Range<usize>,
        field: &str,
    ) -> Result<Window> {
        let sub = |name: &str| format!("{field}.{name}");
        let duration = |name: &str, v: &Option<String>| -> Result<Option<Duration>> {
            v.as_ref()
                .map(|d| parse_duration(&sub(name), d))
                .transpose()
                .map_err(|e| self.error(span.clone(), &sub(name), e))
        };
        let need = |name: &str, v: Option<Duration>| -> Result<Duration> {
            v.ok_or_else(|| {
                self.error(
                    span.clone(),
                    &sub(name),
                    format!("a {} window needs `{name}`", w.kind),
                )
            })
        };
        let size = duration("size", &w.size)?;
        let mut window = match w.kind.as_str() {
            "tumbling" => Window::tumbling(need("size", size)?),
            "sliding" => Window::sliding(
                need("size", size)?,
                need("slide", duration("slide", &w.slide)?)?,
            ),
            "cumulative" => Window::cumulative(
                need("step", duration("step", &w.step)?)?,
                need("size", size)?,
            ),
            "session" => Window::session(need("gap", duration("gap", &w.gap)?)?),
            other => {
                return Err(self.error(
                    span,
                    &sub("kind"),
                    format!(
                        "unknown window kind `{other}` (use tumbling, sliding, cumulative, session or count)"
                    ),
                ))
            }
        };
        if let Some(off) = duration("offset", &w.offset)? {
            window = window.with_offset(off);
        }
        window
            .validate()
            .map_err(|e| self.error(span.clone(), field, e))?;
        Ok(window)
    }

    pub(super) fn window_step(
        &self,
        stream: &Stream,
        w: &WindowSpec,
        step: &StepSpec,
        keys: Option<(Vec<String>, Range<usize>)>,
        span: Range<usize>,
        i: usize,
    ) -> Result<Stream> {
        let field = |name: &str| format!("steps[{i}].{name}");
        let duration = |name: &str, v: &Option<String>| -> Result<Option<Duration>> {
            v.as_ref()
                .map(|d| parse_duration(&field(name), d))
                .transpose()
                .map_err(|e| self.error(span.clone(), &field(name), e))
        };
        if w.kind == "count" {
            return self.count_window_step(stream, w, step, keys, span, i);
        }
        let window = self.time_window(w, span.clone(), &field("window"))?;
        let aggs = self.aggregates(step, &span, i)?;
        let mut windowed = match &keys {
            Some((keys, _)) => stream.key_by(keys)?.window(window),
            None => stream.window_all(window),
        };
        match w.time.as_deref() {
            None | Some("event") => {}
            Some("processing") => windowed = windowed.processing_time(),
            Some(other) => {
                return Err(self.error(
                    span,
                    &field("window.time"),
                    format!("`{other}` is not a time (use event or processing)"),
                ))
            }
        }
        if let Some(t) = &step.trigger {
            let every = duration("trigger.every", &t.every)?;
            windowed = windowed.trigger(EarlyFiring {
                every_rows: t.every_rows,
                every_ms: every.map(weir_core::time::duration_ms),
                purge: t.purge,
            });
        }
        windowed
            .aggregate(aggs)
            .map_err(|e| self.error(span, &field("window"), e))
    }

    pub(super) fn count_window_step(
        &self,
        stream: &Stream,
        w: &WindowSpec,
        step: &StepSpec,
        keys: Option<(Vec<String>, Range<usize>)>,
        span: Range<usize>,
        i: usize,
    ) -> Result<Stream> {
        let field = |name: &str| format!("steps[{i}].{name}");
        let Some((keys, _)) = keys else {
            return Err(self.error(
                span,
                &field("window"),
                "count windows are per key: add a key_by step before",
            ));
        };
        let Some(rows) = w.rows else {
            return Err(self.error(span, &field("window.rows"), "a count window needs `rows`"));
        };
        if step.trigger.is_some() || w.time.is_some() {
            return Err(self.error(
                span,
                &field("window"),
                "count windows take no trigger or time",
            ));
        }
        let aggs = self.aggregates(step, &span, i)?;
        let keyed = stream.key_by(&keys)?;
        let windowed = match w.slide_rows {
            None => keyed.count_window(rows),
            Some(slide) => keyed.count_window_sliding(rows, slide),
        };
        windowed
            .aggregate(aggs)
            .map_err(|e| self.error(span, &field("window"), e))
    }

    pub(super) fn aggregates(
        &self,
        step: &StepSpec,
        span: &Range<usize>,
        i: usize,
    ) -> Result<Vec<Agg>> {
        let Some(aggs) = step.aggregates.as_deref() else {
            return Err(self.error(
                span.clone(),
                &format!("steps[{i}].aggregates"),
                "a window step needs `aggregates`",
            ));
        };
        aggs.iter()
            .enumerate()
            .map(|(j, a)| {
                let name = |f: &str| format!("steps[{i}].aggregates[{j}].{f}");
                let func =
                    AggFn::parse(&a.func).map_err(|e| self.error(span.clone(), &name("fn"), e))?;
                let mut agg = match &a.column {
                    Some(c) => Agg::of(func, c),
                    None if func == AggFn::Count => Agg::count(),
                    None => {
                        return Err(self.error(
                            span.clone(),
                            &name("column"),
                            format!("{} needs a column", func.name()),
                        ))
                    }
                };
                if let Some(alias) = &a.alias {
                    agg = agg.alias(alias);
                }
                Ok(agg)
            })
            .collect()
    }
}

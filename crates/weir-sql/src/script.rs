//! A SQL script: its statements in order, building one [`Job`] (every
//! `INSERT INTO` and bare `SELECT` of the script is a branch of the same
//! graph, like Flink's statement set) and the run settings its `SET`s ask
//! for.
//!
//! May use every module of the crate.

use crate::catalog::Table;
use crate::dialect::{take_watermarks, FlinkDialect};
use crate::error::{at_ident, at_node, parse_error, unsupported, SqlError};
use crate::query::Planner;
use arrow_schema::DataType;
use sqlparser::ast::{self, Statement};
use sqlparser::parser::Parser;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use weir_core::error::Result;
use weir_engine::exec::ExecMode;
use weir_engine::graph::Job;
use weir_functions::FunctionRegistry;

/// What a script's `SET` statements ask of the run (the command line's
/// flags override them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `SET 'execution.runtime-mode' = 'batch' | 'streaming'`.
    pub mode: Option<ExecMode>,
    /// `SET 'parallelism.default' = 'N'`.
    pub parallelism: Option<usize>,
    /// `SET 'state.checkpoints.dir' = 'dir'` (relative to the script's
    /// directory; a `file://` prefix is dropped).
    pub checkpoint_dir: Option<PathBuf>,
    /// `SET 'execution.checkpointing.interval' = '10s'`.
    pub checkpoint_interval: Option<std::time::Duration>,
}

/// How a script is planned: the functions it may call and where its
/// results go when the caller redirects them.
#[derive(Debug, Clone, Default)]
pub struct ScriptOptions {
    functions: Option<FunctionRegistry>,
    output: Option<PathBuf>,
    collect: bool,
}

impl ScriptOptions {
    /// The functions the script may call: the built-ins plus user-defined
    /// ones (see [`FunctionRegistry::with_udf`]). Default: the built-ins.
    pub fn with_functions(mut self, functions: FunctionRegistry) -> Self {
        self.functions = Some(functions);
        self
    }

    /// Writes the script's one result (its only `INSERT INTO` target, or
    /// its only `SELECT`) to `path` instead of the table's `path`: Parquet,
    /// or JSON lines when the target's format is JSON or `path` ends in
    /// `.json`/`.jsonl` (`weir sql --output`). A script with several
    /// results is refused.
    pub fn with_output(mut self, path: impl Into<PathBuf>) -> Self {
        self.output = Some(path.into());
        self
    }

    /// Keeps a bare `SELECT`'s rows in memory (read them with
    /// [`Script::collected`] after the run) instead of printing them: what
    /// the interactive shell shows as a table.
    pub fn with_collect(mut self) -> Self {
        self.collect = true;
        self
    }
}

/// A planned script.
#[derive(Debug)]
pub struct Script {
    // config
    functions: FunctionRegistry,
    output: Option<PathBuf>,
    collect: bool,
    base: PathBuf,
    // state
    job: Job,
    settings: Settings,
    tables: BTreeMap<String, Table>,
    views: BTreeMap<String, ast::Query>,
    /// `INSERT` and `SELECT` statements planned.
    queries: usize,
    /// What planning the job's queries remembers (see `PlanMemo`).
    memo: crate::query::PlanMemo,
    /// The names its queries may read (see `pruning`): sources read only
    /// those of their columns; `None` reads every column.
    reads: Option<BTreeSet<String>>,
    /// The tables `INSERT` writes.
    targets: BTreeSet<String>,
    /// A bare SELECT's rows, when collected.
    collected: Option<weir_connectors::Collected>,
    /// Generated data its tables share.
    generated: crate::catalog::Generated,
    /// `EXPLAIN`ed statements: their text and the job each alone would run.
    explained: Vec<(String, Job)>,
}

impl Script {
    /// Parses and plans `text`; relative paths in `WITH ('path' = …)` are
    /// relative to `base` (the script's folder).
    ///
    /// # Errors
    ///
    /// A parse error, or a planning error naming the line and column, the
    /// construct and (for an unknown column) the closest names.
    pub fn try_new(text: &str, base: &Path) -> Result<Script> {
        Script::try_with(text, base, ScriptOptions::default())
    }

    /// Like [`Script::try_new`], with `options` (functions, output).
    pub fn try_with(text: &str, base: &Path, options: ScriptOptions) -> Result<Script> {
        Ok(Script::plan(text, base, options)?)
    }

    fn plan(
        text: &str,
        base: &Path,
        options: ScriptOptions,
    ) -> std::result::Result<Script, SqlError> {
        let (text, watermarks) = take_watermarks(text)?;
        let statements =
            Parser::parse_sql(&FlinkDialect, &text).map_err(|e| parse_error(&e, &text))?;
        let reads = crate::pruning::reads(&statements);
        if reads.is_none() {
            return Script::plan_statements(&statements, &watermarks, base, options, None);
        }
        let fallback = options.clone();
        // an error names what the tables hold: planned again reading every
        // column, so an unknown column's hint can name one no query reads
        // (its closest match is often one); and if reading every column
        // plans where the pruned plan failed, that plan is the one to run
        Script::plan_statements(&statements, &watermarks, base, options, reads)
            .or_else(|_| Script::plan_statements(&statements, &watermarks, base, fallback, None))
    }

    fn plan_statements(
        statements: &[Statement],
        watermarks: &[crate::dialect::WatermarkClause],
        base: &Path,
        options: ScriptOptions,
        reads: Option<BTreeSet<String>>,
    ) -> std::result::Result<Script, SqlError> {
        let mut s = Script {
            // the Nexmark queries' UDF classes are always there to bind
            functions: weir_workloads::nexmark::with_udfs(options.functions.unwrap_or_default())
                .map_err(|e| SqlError::new(e.to_string()))?,
            output: options.output,
            collect: options.collect,
            collected: None,
            base: base.to_path_buf(),
            targets: BTreeSet::new(),
            generated: Default::default(),
            job: Job::new(),
            settings: Settings::default(),
            tables: BTreeMap::new(),
            views: BTreeMap::new(),
            queries: 0,
            memo: Default::default(),
            reads,
            explained: Vec::new(),
        };
        for st in statements {
            s.statement(st, watermarks, base)?;
        }
        Ok(s)
    }

    fn statement(
        &mut self,
        st: &Statement,
        watermarks: &[crate::dialect::WatermarkClause],
        base: &Path,
    ) -> std::result::Result<(), SqlError> {
        match st {
            Statement::CreateTable(ct) => {
                let t = Table::try_new(ct, watermarks)?;
                if self.tables.contains_key(&t.name) || self.views.contains_key(&t.name) {
                    return Err(at_node(&ct.name, format!("`{}` is declared twice", t.name)));
                }
                self.tables.insert(t.name.clone(), t);
            }
            Statement::CreateFunction(f) => self.create_function(f)?,
            Statement::CreateView(v) => {
                let name = v.name.to_string();
                if self.tables.contains_key(&name) || self.views.contains_key(&name) {
                    return Err(at_node(&v.name, format!("`{name}` is declared twice")));
                }
                if !v.columns.is_empty() {
                    return Err(unsupported(
                        &v.name,
                        "a view's column list (alias in its SELECT)",
                    ));
                }
                self.views.insert(name, (*v.query).clone());
            }
            Statement::Insert(ins) => {
                let name = match &ins.table {
                    ast::TableObject::TableName(n) => n.to_string(),
                    other => return Err(unsupported(other, "INSERT INTO a table function")),
                };
                if !ins.columns.is_empty() {
                    return Err(unsupported(
                        st,
                        "INSERT INTO t (columns…): list every column",
                    ));
                }
                let Some(table) = self.tables.get(&name).cloned() else {
                    return Err(at_node(
                        &ins.table,
                        format!("no table `{name}` to insert into"),
                    ));
                };
                let Some(source) = &ins.source else {
                    return Err(at_node(st, "INSERT INTO needs a SELECT"));
                };
                let rows = self.planner(base).query(source)?;
                let got: Vec<String> = rows
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                // a changelog into a table that declares no `op` column: with
                // 'changelog' = 'op' the sink writes it after the declared ones
                let mut table = table;
                let op = weir_operators::OP_COLUMN;
                if got.last().is_some_and(|c| c == op)
                    && !table.columns.iter().any(|(c, _)| c == op)
                {
                    match table.options.get("changelog").map(|m| m.to_ascii_lowercase()) {
                        Some(m) if m == "op" => table.columns.push((op.to_string(), DataType::Utf8)),
                        Some(m) => {
                            return Err(at_node(
                                &ins.table,
                                format!("'changelog' = '{m}': the one mode is 'op' (write the `op` column)"),
                            ))
                        }
                        None => {
                            return Err(at_node(
                                source.as_ref(),
                                format!(
                                    "the query is a changelog (an `op` column: insert, update): declare \
                                     `op STRING` last in `{name}`, or give it WITH ('changelog' = 'op')"
                                ),
                            ))
                        }
                    }
                }
                if got.len() != table.columns.len() {
                    return Err(at_node(
                        source.as_ref(),
                        format!(
                            "the query gives {} columns ({}) but `{name}` has {} ({})",
                            got.len(),
                            got.join(", "),
                            table.columns.len(),
                            table
                                .columns
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                // by position, as SQL inserts; a renamed time column is a plain column
                let renames_time = rows.time_column().is_some_and(|t| {
                    table
                        .columns
                        .iter()
                        .zip(&got)
                        .any(|((to, _), from)| from == t && to != t)
                });
                let rows = if renames_time {
                    rows.without_event_time()
                } else {
                    rows
                };
                // by position into the declared columns: renamed, and cast
                // where a number (or a string) is declared as another kind
                let mut exprs = Vec::with_capacity(got.len());
                let mut same = true;
                for ((to, want), from) in table.columns.iter().zip(&got) {
                    let have = rows
                        .schema()
                        .field_with_name(from)
                        .map(|f| f.data_type().clone())
                        .map_err(|e| at_node(source.as_ref(), e.to_string()))?;
                    let e = weir_core::expr::col(from);
                    let e = if crate::expr::fits(want, &have) || have == DataType::Null {
                        e
                    } else if insert_cast(&have, want) {
                        same = false;
                        e.cast(want.clone())
                    } else {
                        return Err(at_node(
                            source.as_ref(),
                            format!(
                                "column {} (`{from}`) is {have} but `{name}`.`{to}` is declared {want}",
                                exprs.len() + 1
                            ),
                        ));
                    };
                    same &= to == from;
                    exprs.push((to.clone(), e));
                }
                let renamed = if same {
                    rows
                } else {
                    rows.select_exprs(exprs)
                        .map_err(|e| crate::error::engine(source.as_ref(), e))?
                };
                self.check_one_output(st)?;
                match &self.output {
                    Some(path) => table.sink_to(&renamed, path, source.as_ref())?,
                    None => table.sink(&renamed, base, source.as_ref())?,
                }
                self.targets.insert(name);
                self.queries += 1;
            }
            Statement::Query(q) => {
                let rows = self.planner(base).query(q)?;
                self.check_one_output(st)?;
                match &self.output {
                    Some(path) => Table::sink_by_extension(&rows, path, q.as_ref())?,
                    None if self.collect => {
                        if self.collected.is_some() {
                            return Err(at_node(st, "one SELECT at a time is collected"));
                        }
                        let c = rows
                            .collect()
                            .map_err(|e| crate::error::engine(q.as_ref(), e))?;
                        self.collected = Some(c);
                    }
                    None => rows.sink_stdout(),
                }
                self.queries += 1;
            }
            Statement::Set(set) => self.set(set, st)?,
            Statement::Explain {
                statement, analyze, ..
            } => {
                if *analyze {
                    return Err(unsupported(
                        st,
                        "EXPLAIN ANALYZE (run the job with --json for its figures)",
                    ));
                }
                if !matches!(
                    statement.as_ref(),
                    Statement::Query(_) | Statement::Insert(_)
                ) {
                    return Err(at_node(st, "EXPLAIN explains a SELECT or an INSERT"));
                }
                // planned into a job of its own: explaining runs nothing
                // (with its own memo: its node ids start again at 0, so its
                // window attributes would name the main job's streams)
                let main = std::mem::replace(&mut self.job, Job::new());
                let memo = std::mem::take(&mut self.memo);
                let queries = self.queries;
                let planned = self.statement(statement, watermarks, base);
                let explained = std::mem::replace(&mut self.job, main);
                self.memo = memo;
                self.queries = queries;
                planned?;
                // as written: the dialect's marker of a table argument is `TABLE `
                let text = statement
                    .to_string()
                    .replace(&format!("{}.", crate::dialect::TABLE_ARG), "TABLE ");
                self.explained.push((text, explained));
            }
            Statement::ExplainTable { .. } => {
                return Err(unsupported(st, "DESCRIBE / EXPLAIN of a table"))
            }
            other => {
                let text = other.to_string();
                let words: Vec<&str> = text.split_whitespace().take(2).collect();
                return Err(unsupported(
                    other,
                    &format!("the statement {}", words.join(" ")),
                ));
            }
        }
        Ok(())
    }

    /// `CREATE [TEMPORARY [SYSTEM]] FUNCTION [IF NOT EXISTS] name AS
    /// 'identifier' [LANGUAGE …]`: binds `name` to the implementation the
    /// program registered as `identifier` (see `FunctionRegistry::bind`).
    fn create_function(&mut self, f: &ast::CreateFunction) -> std::result::Result<(), SqlError> {
        if let Some(using) = &f.using {
            return Err(unsupported(
                &f.name,
                &format!(
                    "CREATE FUNCTION … USING {using} (weir loads no jars: the program running \
                     the script registers a Rust implementation under the class name with \
                     FunctionRegistry::with_class)"
                ),
            ));
        }
        if let Some(language) = &f.language {
            let known = ["JAVA", "SCALA", "PYTHON"];
            if !known.contains(&language.value.to_ascii_uppercase().as_str()) {
                return Err(at_ident(
                    language,
                    format!("LANGUAGE {language}: Flink's are JAVA, SCALA and PYTHON"),
                ));
            }
        }
        let [name] = f.name.0.as_slice() else {
            return Err(unsupported(
                &f.name,
                "a function in a catalog or database (write CREATE FUNCTION name AS …)",
            ));
        };
        let Some(name) = name.as_ident().map(|id| id.value.clone()) else {
            return Err(at_node(&f.name, "CREATE FUNCTION takes a plain name"));
        };
        let identifier = match &f.function_body {
            Some(ast::CreateFunctionBody::AsBeforeOptions {
                body: ast::Expr::Value(v),
                ..
            }) => match &v.value {
                ast::Value::SingleQuotedString(s) => s.clone(),
                _ => {
                    return Err(at_node(
                        &f.name,
                        "CREATE FUNCTION name AS 'class identifier'",
                    ))
                }
            },
            _ => {
                return Err(at_node(
                    &f.name,
                    "CREATE FUNCTION name AS 'class identifier'",
                ))
            }
        };
        self.functions
            .bind(&name, &identifier, f.if_not_exists)
            .map_err(|e| match e {
                weir_core::error::Error::InvalidOption { message, .. } => at_node(&f.name, message),
                other => at_node(&f.name, other.to_string()),
            })?;
        Ok(())
    }

    fn set(&mut self, set: &ast::Set, st: &Statement) -> std::result::Result<(), SqlError> {
        let ast::Set::SingleAssignment {
            variable, values, ..
        } = set
        else {
            return Err(unsupported(st, "this SET"));
        };
        let key = variable
            .0
            .iter()
            .map(|p| p.to_string().trim_matches('\'').to_string())
            .collect::<Vec<_>>()
            .join(".");
        let value = match values.as_slice() {
            [ast::Expr::Value(v)] => match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::Number(s, _) => s.clone(),
                _ => return Err(at_node(st, "SET 'key' = 'value'")),
            },
            _ => return Err(at_node(st, "SET 'key' = 'value'")),
        };
        match key.as_str() {
            "execution.runtime-mode" => {
                self.settings.mode = Some(match value.to_ascii_lowercase().as_str() {
                    "batch" => ExecMode::Batch,
                    "streaming" => ExecMode::Pipelined,
                    other => {
                        return Err(at_node(
                            st,
                            format!("execution.runtime-mode is batch or streaming, not `{other}`"),
                        ))
                    }
                })
            }
            "parallelism.default" => {
                let n: usize = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    at_node(
                        st,
                        format!("parallelism.default is a positive number, not `{value}`"),
                    )
                })?;
                self.settings.parallelism = Some(n);
            }
            "state.checkpoints.dir" => {
                let dir = value.strip_prefix("file://").unwrap_or(&value);
                if dir.is_empty() {
                    return Err(at_node(st, "state.checkpoints.dir is empty"));
                }
                self.settings.checkpoint_dir = Some(self.base.join(dir));
            }
            "execution.checkpointing.interval" => {
                let interval = weir_core::time::parse_duration(&key, &value)
                    .map_err(|e| at_node(st, e.to_string()))?;
                self.settings.checkpoint_interval = Some(interval);
            }
            other => {
                return Err(at_node(
                    st,
                    format!(
                        "unknown option `{other}` (execution.runtime-mode, parallelism.default, \
                         state.checkpoints.dir, execution.checkpointing.interval)"
                    ),
                ))
            }
        }
        Ok(())
    }

    /// With an output override, a second result has nowhere to go.
    fn check_one_output(&self, st: &Statement) -> std::result::Result<(), SqlError> {
        if self.output.is_some() && self.queries > 0 {
            return Err(at_node(
                st,
                "--output replaces the script's one result, and this is a second \
                 INSERT or SELECT: run without --output (each table has its path)",
            ));
        }
        Ok(())
    }

    /// The files the script reads: the paths of its file tables that no
    /// `INSERT` writes (what `weir bench`'s `scan` mode reads).
    pub fn source_paths(&self) -> Vec<PathBuf> {
        self.tables
            .values()
            .filter(|t| !self.targets.contains(&t.name))
            .filter_map(|t| t.file_path(&self.base))
            .collect()
    }

    fn planner<'a>(&'a self, base: &'a Path) -> Planner<'a> {
        Planner {
            job: &self.job,
            base,
            tables: &self.tables,
            views: &self.views,
            functions: &self.functions,
            generated: &self.generated,
            top: None,
            retract: false,
            aggregated: false,
            memo: &self.memo,
            reads: self.reads.as_ref(),
        }
    }

    /// The job the script's queries built (run it with `Job::run`).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// What its `SET`s asked for.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A bare SELECT's rows, with [`ScriptOptions::with_collect`] (they
    /// arrive while the job runs).
    pub fn collected(&self) -> Option<&weir_connectors::Collected> {
        self.collected.as_ref()
    }

    /// The tables it declared, by name.
    pub fn tables(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// `INSERT` and `SELECT` statements planned (0: nothing to run).
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// The `EXPLAIN`ed statements: their text and the job each would run
    /// (describe it with `PhysicalPlan::describe`).
    pub fn explained(&self) -> &[(String, Job)] {
        &self.explained
    }
}

/// True where INSERT converts a query column of type `have` into a
/// declared column of type `want` (as Flink's implicit casts: numbers to
/// numbers, including DECIMAL; strings to strings).
fn insert_cast(have: &DataType, want: &DataType) -> bool {
    let numeric =
        |t: &DataType| t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..));
    let string =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    (numeric(have) && numeric(want)) || (string(have) && string(want))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window aggregation whose select list renames its bounds.
    const RENAMED: &str = "SELECT auction, COUNT(*) AS num, window_start AS s, window_end AS e \
        FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) \
        GROUP BY auction, window_start, window_end";

    fn bids() -> String {
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3), \
         WATERMARK FOR dateTime AS dateTime - INTERVAL '1' SECOND) \
         WITH ('connector' = 'nexmark', 'events' = '1000');\n"
            .to_string()
    }

    #[test]
    fn an_explained_querys_window_attributes_stay_with_its_own_job() {
        let dir = tempfile::tempdir().expect("temp dir");
        // planned for the job: its renamed bounds are remembered
        let planned = Script::try_new(&format!("{}{RENAMED};", bids()), dir.path()).expect("plans");
        assert_eq!(
            planned
                .memo
                .windows
                .borrow()
                .values()
                .cloned()
                .collect::<Vec<_>>(),
            [("s".to_string(), "e".to_string())]
        );
        // explained: planned into a job of its own, whose node ids would
        // name the main job's streams, so nothing of it is remembered
        let explained =
            Script::try_new(&format!("{}EXPLAIN {RENAMED};", bids()), dir.path()).expect("plans");
        assert!(explained.memo.windows.borrow().is_empty());
        assert_eq!(explained.explained().len(), 1);
    }

    #[test]
    fn explain_says_which_aggregates_retract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Script::try_new(
            &format!(
                "{}EXPLAIN SELECT auction % 7, MIN(n), COUNT(*) FROM (SELECT auction, COUNT(*) AS n \
                 FROM bid GROUP BY auction) GROUP BY auction % 7;",
                bids()
            ),
            dir.path(),
        )
        .expect("plans");
        let plan = s.explained()[0].1.plan().describe();
        assert!(
            plan.contains("min(__arg0_v) retracting by __sign as"),
            "the MIN over a changelog: {plan}"
        );
        // the inner COUNT reads plain rows
        assert!(
            plan.contains("aggregate by [auction]: count(*) as __agg0\n"),
            "{plan}"
        );
    }

    #[test]
    fn a_table_read_twice_is_read_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        // a self-join and a second statement over the same table: one
        // source node feeds every reader
        let script = Script::try_new(
            &format!(
                "{}SELECT a.auction, b.price FROM bid a JOIN bid b ON a.auction = b.auction;\n\
                 SELECT auction FROM bid WHERE price > 10;",
                bids()
            ),
            dir.path(),
        )
        .expect("plans");
        // (source nodes read by something, as many as a table read once has)
        let read = |plan: &weir_engine::graph::LogicalPlan| {
            (0..plan.nodes.len())
                .filter(|&i| plan.nodes[i].kind.is_source() && !plan.consumers(i).is_empty())
                .count()
        };
        let once = Script::try_new(&format!("{}SELECT auction FROM bid;", bids()), dir.path())
            .expect("plans");
        let sources = read(&once.job().plan());
        assert!(sources >= 1);
        let plan = script.job().plan();
        assert_eq!(read(&plan), sources, "{}", plan.describe());
        // an EXPLAIN plans its own source, and leaves the job's alone
        let explained = Script::try_new(
            &format!(
                "{}EXPLAIN SELECT auction FROM bid;\nSELECT price FROM bid;",
                bids()
            ),
            dir.path(),
        )
        .expect("plans");
        assert_eq!(read(&explained.job().plan()), sources);
        assert_eq!(read(&explained.explained()[0].1.plan()), sources);
        // the same window aggregation of the same rows, asked twice (as q5
        // does), is one window operator; another window is another
        let windows = |extra: &str| {
            let script = Script::try_new(
                &format!(
                    "{}SELECT a.auction, b.num FROM ({RENAMED}) a JOIN ({RENAMED}) b \
                     ON a.s = b.s AND a.e = b.e AND a.auction = b.auction;\n{extra}",
                    bids()
                ),
                dir.path(),
            )
            .expect("plans");
            let plan = script.job().plan();
            plan.nodes
                .iter()
                .filter(|n| n.name.starts_with("window"))
                .count()
        };
        assert_eq!(windows(""), 1);
        assert_eq!(windows(&format!("{};", RENAMED.replace("'10'", "'20'"))), 2);
    }
}

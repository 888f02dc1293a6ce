//! `weir sql` without a script: the interactive shell (as Flink's SQL
//! client and DuckDB's CLI). Statements end with `;`; definitions
//! (`CREATE TABLE`, `CREATE VIEW`, `CREATE FUNCTION`, `SET`) are kept for the session; a
//! `SELECT` runs and prints its rows as a table; an `INSERT` runs and
//! prints what it wrote; `EXPLAIN` prints the plan. Line editing and
//! history come from `rustyline` on a terminal; the history stays in
//! memory unless `--history FILE` names a file to keep it in.
//!
//! May use every layer of the library.

use std::path::PathBuf;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};

use super::*;

/// Rows a `SELECT` prints before it says how many more there were.
const MAX_ROWS: usize = 1_000;

/// Where the shell's lines come from.
pub(crate) trait Lines {
    /// The next line, `None` at the end of input (Ctrl-D).
    fn next_line(&mut self, prompt: &str) -> Option<String>;
    /// Remembers a statement for the history.
    fn remember(&mut self, _statement: &str) {}
}

/// A terminal: line editing and history.
pub(crate) struct Terminal {
    // resources
    editor: rustyline::DefaultEditor,
    // config
    history: Option<PathBuf>,
}

impl Terminal {
    /// An editor; its history is read from `history` when that exists.
    pub(crate) fn try_new(history: Option<PathBuf>) -> Result<Self> {
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|e| weir_core::error::Error::option("sql", format!("no line editor: {e}")))?;
        if let Some(h) = history.as_deref().filter(|h| h.exists()) {
            editor
                .load_history(h)
                .map_err(|e| weir_core::error::Error::option("--history", e.to_string()))?;
        }
        Ok(Terminal { editor, history })
    }
}

impl Lines for Terminal {
    fn next_line(&mut self, prompt: &str) -> Option<String> {
        loop {
            match self.editor.readline(prompt) {
                Ok(line) => return Some(line),
                // Ctrl-C drops the line being typed, as in a shell
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    println!("(Ctrl-D or `quit;` leaves)");
                    continue;
                }
                Err(_) => return None,
            }
        }
    }

    fn remember(&mut self, statement: &str) {
        let _ = self.editor.add_history_entry(statement);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(h) = &self.history {
            if let Err(e) = self.editor.save_history(h) {
                eprintln!("weir: could not keep the history in {}: {e}", h.display());
            }
        }
    }
}

/// How the shell runs statements.
pub(crate) struct ShellConfig {
    /// `--mode` (else the session's `SET`, else pipelined).
    pub mode: Option<ExecMode>,
    /// `--parallelism` (else the session's `SET`, else the cores).
    pub parallelism: Option<usize>,
    /// The memory budget.
    pub memory: usize,
    /// Where relative paths in `WITH ('path' = …)` start.
    pub base: PathBuf,
}

/// Runs the shell until `quit;` or the end of input.
pub(crate) fn run(config: &ShellConfig, lines: &mut dyn Lines) -> Result<ExitCode> {
    println!(
        "weir SQL shell: statements end with `;`; `help;` lists the commands, `quit;` leaves."
    );
    let mut session = Session {
        definitions: String::new(),
    };
    let mut buffer = String::new();
    let mut failed = false;
    loop {
        let prompt = if buffer.trim().is_empty() {
            "weir> "
        } else {
            "   -> "
        };
        let Some(line) = lines.next_line(prompt) else {
            break;
        };
        buffer.push_str(&line);
        buffer.push('\n');
        let (statements, rest) = split_statements(&buffer);
        buffer = rest;
        for statement in statements {
            lines.remember(statement.trim());
            match session.on_statement(config, &statement) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Quit) => return Ok(exit(failed)),
                Err(e) => {
                    failed = true;
                    eprintln!("error: {e}");
                }
            }
        }
    }
    Ok(exit(failed))
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

enum Flow {
    Continue,
    Quit,
}

/// What the session keeps: its definitions, replayed before each query.
struct Session {
    definitions: String,
}

impl Session {
    fn on_statement(&mut self, config: &ShellConfig, statement: &str) -> Result<Flow> {
        let command = statement
            .trim()
            .trim_end_matches(';')
            .trim()
            .to_ascii_lowercase();
        match command.as_str() {
            "" => return Ok(Flow::Continue),
            "quit" | "exit" | "\\q" => return Ok(Flow::Quit),
            "help" | "\\h" | "\\?" => {
                println!("{HELP}");
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        let text = format!("{}{statement}", self.definitions);
        if command == "show tables" {
            let script = weir_sql::Script::try_new(&self.definitions, &config.base)?;
            for t in script.tables() {
                println!("{t}");
            }
            return Ok(Flow::Continue);
        }
        let options = weir_sql::ScriptOptions::default().with_collect();
        // places in the statement typed, not in the definitions replayed before it
        let offset = self.definitions.matches('\n').count();
        let script = weir_sql::Script::try_with(&text, &config.base, options)
            .map_err(|e| weir_core::error::Error::Plan(relative_lines(&e.to_string(), offset)))?;
        let parallelism = config
            .parallelism
            .or(script.settings().parallelism)
            .unwrap_or_else(default_parallelism);
        for (statement, job) in script.explained() {
            let plan = job.plan();
            println!("== EXPLAIN {statement}");
            println!("-- logical plan");
            print!("{}", plan.describe());
            println!("-- physical plan");
            print!(
                "{}",
                PhysicalPlan::try_new(&plan, parallelism)?.describe(&plan)
            );
        }
        if script.queries() == 0 {
            if script.explained().is_empty() {
                // a definition: kept for the statements after it
                self.definitions.push_str(statement.trim());
                self.definitions.push('\n');
                println!("ok");
            }
            return Ok(Flow::Continue);
        }
        let mode = config
            .mode
            .or(script.settings().mode)
            .unwrap_or(ExecMode::Pipelined);
        let run = ExecConfig::new(mode)
            .with_parallelism(parallelism)
            .with_memory(config.memory)
            .with_stop(crate::cli::signals::follow_process_signals(
                weir_core::operator::StopSignal::new(),
            ));
        let metrics = script.job().run(&run)?;
        match script.collected() {
            Some(rows) => print!("{}", table(&rows.batches(), MAX_ROWS)),
            None => println!(
                "{} rows written ({} read) in {:.2} s",
                weir_engine::format::thousands(metrics.rows_out),
                weir_engine::format::thousands(metrics.rows_in),
                metrics.elapsed.as_secs_f64()
            ),
        }
        Ok(Flow::Continue)
    }
}

const HELP: &str = "\
  CREATE TABLE … WITH (…);   declare a table (kept for the session)
  CREATE VIEW v AS SELECT …; declare a view (kept)
  CREATE FUNCTION f AS 'class';  name a registered UDF (kept)
  SET 'execution.runtime-mode' = 'batch';  SET 'parallelism.default' = '2';
  SELECT …;                  run it, print its rows as a table
  INSERT INTO t SELECT …;    run it, print what it wrote
  EXPLAIN SELECT …;          print the plan
  SHOW TABLES;               the tables declared
  quit;                      leave (or Ctrl-D)";

/// The complete statements of `text` (each with its `;`) and the
/// incomplete rest. A `;` inside quotes or after `--` does not end one.
fn split_statements(text: &str) -> (Vec<String>, String) {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if comment {
            comment = c != '\n';
            continue;
        }
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '-') if chars.peek().is_some_and(|(_, n)| *n == '-') => comment = true,
            (None, ';') => {
                statements.push(text[start..=i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    let rest = &text[start..];
    let rest = if rest.trim().is_empty() {
        String::new()
    } else {
        rest.to_string()
    };
    (statements, rest)
}

/// `message` with each "line L" moved up by `offset` lines.
fn relative_lines(message: &str, offset: usize) -> String {
    let message = message.strip_prefix("plan: ").unwrap_or(message);
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(l) if l > offset => out.push_str(&(l - offset).to_string()),
            _ => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// `batches` as an aligned text table (at most `max` rows, then how many
/// more there were).
fn table(batches: &[RecordBatch], max: usize) -> String {
    let Some(first) = batches.first() else {
        return "(no rows)\n".to_string();
    };
    let schema = first.schema();
    let mut cells: Vec<Vec<String>> =
        vec![schema.fields().iter().map(|f| f.name().clone()).collect()];
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let options = FormatOptions::default().with_null("NULL");
    'rows: for b in batches {
        let formatters: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<_, _>>()
            .unwrap_or_default();
        for i in 0..b.num_rows() {
            if cells.len() > max {
                break 'rows;
            }
            cells.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    let widths: Vec<usize> = (0..schema.fields().len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r.get(c).map_or(0, |v| v.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &[String]| -> String {
        let parts: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let rule = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let mut out = rule.clone();
    out.push_str(&line(&cells[0]));
    out.push_str(&rule);
    for r in &cells[1..] {
        out.push_str(&line(r));
    }
    out.push_str(&rule);
    let shown = cells.len() - 1;
    if shown < total {
        out.push_str(&format!("({total} rows, {} not shown)\n", total - shown));
    } else {
        out.push_str(&format!(
            "({total} row{})\n",
            if total == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        let (done, rest) = split_statements("SELECT ';' AS a; -- x; y\nSELECT 2;\nSELECT");
        assert_eq!(done, vec!["SELECT ';' AS a;", " -- x; y\nSELECT 2;"]);
        assert_eq!(rest, "\nSELECT");
        let (done, rest) = split_statements("  \n");
        assert!(done.is_empty() && rest.is_empty());
    }

    #[test]
    fn error_places_count_from_the_statement_typed() {
        assert_eq!(
            relative_lines("plan: SQL: line 4, column 8: unknown column `x`", 3),
            "SQL: line 1, column 8: unknown column `x`"
        );
        assert_eq!(relative_lines("no place", 3), "no place");
    }

    #[test]
    fn rows_print_as_an_aligned_table() {
        let a: arrow_array::ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![Some(1), None]));
        let b: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["x", "long"]));
        let batch = RecordBatch::try_from_iter([("id", a), ("name", b)]).unwrap();
        let t = table(std::slice::from_ref(&batch), 10);
        assert_eq!(
            t,
            "+------+------+\n| id   | name |\n+------+------+\n| 1    | x    |\n| NULL | long |\n+------+------+\n(2 rows)\n"
        );
        assert!(table(&[batch], 1).ends_with("(2 rows, 1 not shown)\n"));
        assert_eq!(table(&[], 5), "(no rows)\n");
    }
}

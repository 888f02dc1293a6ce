//! What the workspace's crates cannot say about the layers of
//! ARCHITECTURE.md. Cargo already refuses an import of a crate a crate does
//! not depend on; this file holds the order of those dependencies (no new
//! upward edge, cycle or not) and the rules inside one crate: the planner
//! and executors never name a connector, operator or function (only the
//! builder does), the plan never uses the executors, the executors never
//! print, and `weir bench` never uses the CLI.
//!
//! The scanner reads every `.rs` file of a layer, blanks out comments and
//! string literals, and resolves each path that starts at the crate root
//! (`crate::x`, `crate::{x, y::z}`, `super::super::x` climbing to the root,
//! and names re-exported from `lib.rs` such as `crate::ExecConfig`) to the
//! top-level module it reaches, and each `weir_x::…` path to the crate
//! `weir_x`. Unit tests at the bottom of a file are not scanned. A forbidden
//! module is reported with its file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One forbidden reference.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    module: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: refers to {}",
            self.file,
            self.line,
            display_module(&self.module)
        )
    }
}

/// The workspace root (the facade package).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `src/` of workspace crate `krate` (`""` for the facade).
fn src_dir(krate: &str) -> PathBuf {
    match krate {
        "" => root().join("src"),
        k => root().join("crates").join(k).join("src"),
    }
}

/// `code` up to its unit tests (`#[cfg(test)] mod tests` closes a file by
/// this project's rule): tests may name what the code may not.
fn without_tests(code: &str) -> &str {
    let mut at = 0;
    while let Some(i) = code[at..].find("#[cfg(test)]") {
        let i = at + i;
        let rest = code[i + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod tests") {
            return &code[..i];
        }
        at = i + 1;
    }
    code
}

/// `exec` as `crate::exec`; another crate (`weir_operators`) as itself.
fn display_module(m: &str) -> String {
    if m.starts_with("weir_") {
        m.to_string()
    } else {
        format!("crate::{m}")
    }
}

/// Replaces comments and the contents of string and char literals with
/// spaces, keeping newlines so line numbers stay right.
fn blank_comments_and_strings(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && matches!(c.get(i + 1), Some('"' | '#'))
            && (i == 0 || !is_ident(c[i - 1]))
        {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            out.extend(std::iter::repeat_n(' ', j + 1 - i));
            i = j + 1;
            while i < c.len() {
                if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    out.extend(std::iter::repeat_n(' ', 1 + hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    out.push(' ');
                    i += 1;
                }
                out.push(blank(c[i]));
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            let end = if c.get(i + 1) == Some(&'\\') {
                (i + 2..c.len()).find(|&k| c[k] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.extend(std::iter::repeat_n(' ', end + 1 - i));
                    i = end + 1;
                }
                None => {
                    out.push(c[i]);
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// The module path of a source file relative to `src/`:
/// `operators/basic.rs` is `[operators, basic]`, `operators/mod.rs` is `[operators]`.
fn module_depth(rel: &Path) -> usize {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.last().map(String::as_str) {
        Some("mod.rs") => parts.len() - 1,
        Some("lib.rs" | "main.rs") if parts.len() == 1 => 0,
        _ => parts.len(),
    }
}

/// Names `lib.rs` re-exports, mapped to the module they come from
/// (`ExecConfig` -> `exec`), so `crate::ExecConfig` counts as `crate::exec`.
fn reexports() -> HashMap<String, String> {
    let lib = std::fs::read_to_string(src_dir("").join("lib.rs")).expect("read src/lib.rs");
    let lib = blank_comments_and_strings(&lib);
    let mut map = HashMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim().strip_prefix("crate::").unwrap_or(rest.trim());
        if rest.starts_with("weir_") {
            continue; // a crate re-exported whole, by its own name
        }
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            // `a::B` exports `B`; `B as C` exports `C`.
            let name = item.split_whitespace().last().unwrap_or(item);
            let name = name.rsplit("::").next().unwrap_or(name);
            map.insert(name.to_string(), module.trim().to_string());
        }
    }
    map
}

/// The top-level modules named by each crate-rooted path in `code`, with lines.
/// `depth` is the module depth of the file (for `super::` chains).
fn crate_references(
    code: &str,
    depth: usize,
    reexports: &HashMap<String, String>,
) -> Vec<(usize, String)> {
    let clean = blank_comments_and_strings(code);
    let c: Vec<char> = clean.chars().collect();
    let line_at = |pos: usize| c[..pos].iter().filter(|&&ch| ch == '\n').count() + 1;
    let skip_ws = |mut k: usize| {
        while k < c.len() && c[k].is_whitespace() {
            k += 1;
        }
        k
    };
    let word_at = |k: usize, w: &str| {
        let end = k + w.chars().count();
        end <= c.len()
            && c[k..end].iter().copied().eq(w.chars())
            && (k == 0 || !is_ident(c[k - 1]))
            && (end == c.len() || !is_ident(c[end]))
    };
    let sep_at = |k: usize| {
        let k = skip_ws(k);
        (k + 1 < c.len() && c[k] == ':' && c[k + 1] == ':').then(|| skip_ws(k + 2))
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < c.len() {
        // A path into another weir crate: `weir_operators::…`.
        if (i == 0 || !is_ident(c[i - 1]))
            && c[i..].starts_with(&['w', 'e', 'i', 'r', '_'])
            && (i < 2 || c[i - 1] != ':' || c[i - 2] != ':')
        {
            let end = (i..c.len()).find(|&e| !is_ident(c[e])).unwrap_or(c.len());
            if sep_at(end).is_some() {
                found.push((line_at(i), c[i..end].iter().collect()));
            }
            i = end;
            continue;
        }
        // Find the start of a path that reaches the crate root.
        let root_end = if word_at(i, "crate") {
            sep_at(i + 5)
        } else if word_at(i, "super") && (i < 2 || c[i - 1] != ':' || c[i - 2] != ':') {
            let mut k = i;
            let mut climbs = 0;
            let mut after = None;
            while word_at(k, "super") {
                match sep_at(k + 5) {
                    Some(next) => {
                        climbs += 1;
                        after = Some(next);
                        k = next;
                    }
                    None => break,
                }
            }
            after.filter(|_| climbs >= depth)
        } else {
            None
        };
        let Some(start) = root_end else {
            i += 1;
            continue;
        };
        collect_heads(&c, start, &line_at, reexports, &mut found);
        i = start;
    }
    found
}

/// Records the first segment of the path at `k`, or of every item of a
/// `{...}` group there.
fn collect_heads(
    c: &[char],
    k: usize,
    line_at: &dyn Fn(usize) -> usize,
    reexports: &HashMap<String, String>,
    found: &mut Vec<(usize, String)>,
) {
    if c.get(k) == Some(&'{') {
        let mut depth = 0;
        let mut item_start = true;
        let mut j = k;
        while j < c.len() {
            match c[j] {
                '{' => {
                    depth += 1;
                    item_start = depth == 1;
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                ',' if depth == 1 => item_start = true,
                ch if item_start && depth == 1 && is_ident(ch) => {
                    let end = (j..c.len()).find(|&e| !is_ident(c[e])).unwrap_or(c.len());
                    push_head(c[j..end].iter().collect(), line_at(j), reexports, found);
                    item_start = false;
                    j = end;
                    continue;
                }
                _ => {}
            }
            j += 1;
        }
    } else if c.get(k).is_some_and(|&ch| is_ident(ch)) {
        let end = (k..c.len()).find(|&e| !is_ident(c[e])).unwrap_or(c.len());
        push_head(c[k..end].iter().collect(), line_at(k), reexports, found);
    }
}

fn push_head(
    name: String,
    line: usize,
    reexports: &HashMap<String, String>,
    found: &mut Vec<(usize, String)>,
) {
    let module = reexports.get(&name).cloned().unwrap_or(name);
    found.push((line, module));
}

/// Violations of `forbidden` in `code` (a file at module depth `depth`).
fn scan_text(
    file: &str,
    code: &str,
    depth: usize,
    forbidden: &[&str],
    reexports: &HashMap<String, String>,
) -> Vec<Violation> {
    crate_references(code, depth, reexports)
        .into_iter()
        .filter(|(_, m)| forbidden.contains(&m.as_str()))
        .map(|(line, module)| Violation {
            file: file.to_string(),
            line,
            module,
        })
        .collect()
}

/// Every `.rs` file at `rel` (a file or directory under crate `krate`'s
/// `src/`), recursively.
fn rust_files(krate: &str, rel: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .unwrap_or_else(|e| panic!("list {}: {e}", p.display()))
                .map(|e| e.expect("dir entry").path())
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p.to_path_buf());
        }
    }
    let path = src_dir(krate).join(rel);
    assert!(
        path.exists(),
        "layer {} does not exist: update this test",
        path.display()
    );
    let mut out = Vec::new();
    walk(&path, &mut out);
    assert!(!out.is_empty(), "no .rs files in {}", path.display());
    out
}

/// Scans every file of each layer in `layers` for references to `forbidden`.
fn check_layers(krate: &str, layers: &[&str], forbidden: &[&str]) {
    let reexports = reexports();
    let src = src_dir(krate);
    let mut violations = Vec::new();
    for layer in layers {
        for path in rust_files(krate, layer) {
            let rel = path.strip_prefix(&src).expect("under src");
            let code = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let name = match krate {
                "" => format!("src/{}", rel.display()),
                k => format!("crates/{k}/src/{}", rel.display()),
            };
            violations.extend(scan_text(
                &name,
                without_tests(&code),
                module_depth(rel),
                forbidden,
                &reexports,
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "layering violated ({} may not use {}):\n{}",
        layers.join(", "),
        forbidden
            .iter()
            .map(|m| display_module(m))
            .collect::<Vec<_>>()
            .join(", "),
        violations
            .iter()
            .map(|v| format!("  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The workspace's crates and the weir crates each may depend on: the
/// layers of ARCHITECTURE.md. Cargo forbids cycles; this holds the order
/// (a new upward dependency, even one without a cycle, fails here).
#[test]
fn crate_dependencies_point_down() {
    let allowed: &[(&str, &[&str])] = &[
        ("weir-core", &[]),
        ("weir-functions", &["weir-core"]),
        ("weir-operators", &["weir-core", "weir-functions"]),
        ("weir-connectors", &["weir-core"]),
        // it sees a run only as every observer does
        ("weir-monitor", &["weir-core"]),
        // SQL plans onto the builder, as job files do (its `kafka` tables use
        // the connector's configs, and the Nexmark generator is its `nexmark`
        // connector, as job files' generators are)
        (
            "weir-sql",
            &[
                "weir-core",
                "weir-functions",
                "weir-operators",
                "weir-engine",
                "weir-connectors",
                "weir-workloads",
            ],
        ),
        (
            "weir-engine",
            &[
                "weir-core",
                "weir-functions",
                "weir-operators",
                "weir-connectors",
            ],
        ),
        (
            "weir-workloads",
            &[
                "weir-core",
                "weir-functions",
                "weir-operators",
                "weir-connectors",
                "weir-engine",
            ],
        ),
    ];
    let members: Vec<String> = std::fs::read_dir(root().join("crates"))
        .expect("list crates/")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| root().join("crates").join(n).join("Cargo.toml").exists())
        .collect();
    for m in &members {
        assert!(
            allowed.iter().any(|(c, _)| c == m),
            "crates/{m} is not in this test's layer table: add it with what it may use"
        );
    }
    for (krate, may) in allowed {
        let deps = weir_dependencies(krate);
        for d in &deps {
            assert!(
                may.contains(&d.as_str()),
                "{krate} depends on {d}; it may use only {may:?} (see ARCHITECTURE.md)"
            );
        }
    }
    assert_eq!(weir_dependencies("weir-core"), Vec::<String>::new());
    assert!(weir_dependencies("weir-engine").contains(&"weir-operators".to_string()));
}

/// The `weir-*` packages in the `[dependencies]` table of `crates/<krate>`.
fn weir_dependencies(krate: &str) -> Vec<String> {
    let path = root().join("crates").join(krate).join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("weir") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

/// Inside the engine the planner and the executors see sources, operators
/// and sinks only through their traits (`NodeKind::Source(Arc<dyn
/// SourceSpec>) | Operator | Sink`): only the builder, the user's API, names
/// a connector, an operator or a function.
#[test]
fn planner_and_executors_never_name_a_connector_or_operator() {
    check_layers(
        "weir-engine",
        &[
            "exec",
            "checkpoint",
            "graph/mod.rs",
            "graph/physical.rs",
            "graph/paths.rs",
            "graph/lateness.rs",
        ],
        &["weir_connectors", "weir_operators", "weir_functions"],
    );
}

/// The plan never reaches into the executors that run it.
#[test]
fn graph_never_uses_exec() {
    check_layers("weir-engine", &["graph"], &["exec"]);
}

/// `weir bench` is a library harness the CLI calls, never the other way.
#[test]
fn bench_never_uses_cli() {
    check_layers("", &["bench"], &["cli"]);
}

/// The executors report through `observe::RunObserver`; only observers
/// print or draw.
#[test]
fn executors_never_print_or_draw() {
    for path in rust_files("weir-engine", "exec") {
        let code = std::fs::read_to_string(&path).expect("read");
        for word in ["eprintln!", "println!", "eprint!", "indicatif"] {
            assert!(
                !code.contains(word),
                "{} uses {word}: report through the run's observer instead",
                path.display()
            );
        }
    }
}

/// The scanner itself: it must catch every way of naming a forbidden module
/// and ignore comments, strings and look-alike names.
#[test]
fn scanner_catches_violations() {
    let re = reexports();
    assert_eq!(
        re.get("ExecConfig").map(String::as_str),
        Some("exec"),
        "{re:?}"
    );
    assert_eq!(re.get("Job").map(String::as_str), Some("graph"), "{re:?}");
    let forbidden = ["exec", "graph", "cli"];
    let scan = |code: &str, depth: usize| -> Vec<(usize, String)> {
        scan_text("src/operators/x.rs", code, depth, &forbidden, &re)
            .into_iter()
            .map(|v| (v.line, v.module))
            .collect()
    };
    let hit = |line: usize, m: &str| vec![(line, m.to_string())];

    assert_eq!(scan("use crate::exec::X;\n", 2), hit(1, "exec"));
    assert_eq!(
        scan("fn f() {}\n\nfn g() { crate::graph::Job::new(); }\n", 2),
        hit(3, "graph")
    );
    assert_eq!(scan("use crate :: cli;", 2), hit(1, "cli"));
    assert_eq!(
        scan(
            "use crate::{\n    error::Error,\n    exec::{ExecConfig, ExecMode},\n};",
            2
        ),
        hit(3, "exec")
    );
    assert_eq!(scan("use crate::{Error, ExecConfig};", 2), hit(1, "exec"));
    assert_eq!(scan("use super::super::exec::run;", 2), hit(1, "exec"));
    assert_eq!(scan("use super::exec::run;", 1), hit(1, "exec"));
    let v = scan_text(
        "src/operators/x.rs",
        "\n\nuse crate::exec::X;",
        2,
        &forbidden,
        &re,
    );
    assert_eq!(
        v[0].to_string(),
        "src/operators/x.rs:3: refers to crate::exec"
    );

    // Not violations.
    assert_eq!(scan("use super::basic::Filter;", 2), vec![]);
    assert_eq!(
        scan("use super::exec::run; // sibling module operators::exec", 2),
        vec![]
    );
    assert_eq!(
        scan("use crate::executor::X;\nuse crate::error::Error;", 2),
        vec![]
    );
    assert_eq!(
        scan(
            "// use crate::exec::X;\n/* crate::graph::Job */\n/// [`crate::cli`]",
            2
        ),
        vec![]
    );
    assert_eq!(
        scan("let s = \"crate::exec\"; let r = r#\"crate::graph\"#;", 2),
        vec![]
    );
    assert_eq!(
        scan(
            "fn f<'a>(c: char) -> bool { c == '\"' } use crate::exec::X;",
            2
        ),
        hit(1, "exec")
    );
    assert_eq!(
        scan("use my_crate::exec::X; use crate::key::KeyEncoder;", 2),
        vec![]
    );
    // Other weir crates, by their crate name.
    let crates = ["weir_operators"];
    let scan_crates = |code: &str| -> Vec<(usize, String)> {
        scan_text("crates/weir-engine/src/exec/x.rs", code, 2, &crates, &re)
            .into_iter()
            .map(|v| (v.line, v.module))
            .collect()
    };
    assert_eq!(
        scan_crates(
            "use weir_core::error::Error;
use weir_operators::join::JoinSpec;"
        ),
        hit(2, "weir_operators")
    );
    assert_eq!(
        scan_crates("fn f() { weir_operators :: Filter::new(); }"),
        hit(1, "weir_operators")
    );
    assert_eq!(
        scan_crates("let weir_operators = 1; // weir_operators::X"),
        vec![]
    );
    assert_eq!(
        scan_crates("use my_weir_operators::X; use a::weir_operators::Y;"),
        vec![]
    );
    assert_eq!(
        without_tests("use a::b;\n#[cfg(test)]\nmod tests {\n use weir_operators::X;\n}\n"),
        "use a::b;\n"
    );
}

#[test]
fn module_depths() {
    assert_eq!(module_depth(Path::new("operators/basic.rs")), 2);
    assert_eq!(module_depth(Path::new("operators/mod.rs")), 1);
    assert_eq!(module_depth(Path::new("operator.rs")), 1);
    assert_eq!(module_depth(Path::new("lib.rs")), 0);
}

/// On the real tree the scanner sees what `exec/` uses (it must use `graph`),
/// so the layer checks above cannot pass by reading nothing.
#[test]
fn scanner_sees_real_references() {
    let re = reexports();
    let mut modules = std::collections::BTreeSet::new();
    for path in rust_files("weir-engine", "exec") {
        let rel = path
            .strip_prefix(src_dir("weir-engine"))
            .expect("under src");
        let code = std::fs::read_to_string(&path).expect("read");
        modules.extend(
            crate_references(&code, module_depth(rel), &re)
                .into_iter()
                .map(|(_, m)| m),
        );
    }
    for m in ["graph", "checkpoint", "weir_core"] {
        assert!(
            modules.contains(m),
            "exec/ should use {}; found {modules:?}",
            display_module(m)
        );
    }
}

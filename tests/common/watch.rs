//! Watching a `weir run --http` child from a test: start it, learn its
//! address from stderr, GET pages with a bare TCP client, and read what
//! comes back with parsers written here (a Prometheus text parser and a
//! JSON Schema checker), independent of the server's own code.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `weir run` child with its server's address.
pub struct Watched {
    pub child: Child,
    pub address: String,
    /// Every stderr line so far arrives here.
    pub stderr: mpsc::Receiver<String>,
}

impl Watched {
    /// Starts `weir run JOB ARGS… --http 127.0.0.1:0` and waits for its address.
    pub fn start(job: &Path, args: &[&str], stdout: Stdio) -> Watched {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(job)
            .args(args)
            .args(["--http", "127.0.0.1:0"])
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("weir printed where it listens");
            if let Some(rest) = line.strip_prefix("weir: watching on http://") {
                break rest.trim_end_matches('/').to_string();
            }
        };
        Watched {
            child,
            address,
            stderr: rx,
        }
    }

    /// GET `path`: (status line, body).
    pub fn get(&self, path: &str) -> (String, String) {
        get(&self.address, path)
    }

    /// GET a JSON page.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert!(status.contains("200"), "{path}: {status}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Polls `/api/v1/job` until `done` holds of it (or fails after a minute).
    pub fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.json("/api/v1/job");
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "never {what}: {job}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `http://address/path` over a bare TCP connection.
pub fn get(address: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), length, "Content-Length matches the body");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (0.0.4): `# HELP` and
/// `# TYPE` lines, then `name{label="value",…} number` samples. Panics on
/// anything else, on a sample without a `# TYPE` before it, on a counter
/// whose name does not end in `_total`, and on a negative counter.
pub fn parse_prometheus(text: &str) -> Vec<PromSample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{}",
                at()
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# EOF") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {}", at());
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {}", at()));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{}", at()));
                (name.to_string(), parse_labels(body, &at()))
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {}",
            at()
        );
        let kind = types
            .get(&name)
            .or_else(|| types.get(name.trim_end_matches("_total")))
            .unwrap_or_else(|| panic!("no # TYPE for {}", at()));
        if kind == "counter" {
            assert!(
                name.ends_with("_total"),
                "a counter ends in _total: {}",
                at()
            );
            assert!(value >= 0.0, "a negative counter: {}", at());
        }
        samples.push(PromSample {
            name,
            labels,
            value,
        });
    }
    samples
}

fn parse_labels(body: &str, at: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {at}"));
        // the value runs to the first unescaped quote
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let (_, c) = chars.next().unwrap_or_else(|| panic!("escape in {at}"));
                    value.push(match c {
                        'n' => '\n',
                        c => c,
                    });
                }
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {at}"),
            }
        };
        labels.insert(key.to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The value of the sample `name` with exactly `labels`, if present.
pub fn sample(samples: &[PromSample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// The sum of every `name` sample whose labels include `labels`.
pub fn sum(samples: &[PromSample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Checks `value` against a JSON Schema using the keywords weir's schemas
/// use (`type`, `enum`, `required`, `properties`, `additionalProperties`,
/// `items`, `oneOf`, `minimum`); returns every violation with its path.
pub fn schema_violations(schema: &serde_json::Value, value: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, value, "$", &mut out);
    out
}

fn type_matches(kind: &str, v: &serde_json::Value) -> bool {
    match kind {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        other => panic!("a schema keyword this checker does not know: type {other}"),
    }
}

fn check(s: &serde_json::Value, v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    let known = [
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "enum",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "oneOf",
        "minimum",
    ];
    for k in s.as_object().expect("a schema is an object").keys() {
        assert!(
            known.contains(&k.as_str()),
            "unknown schema keyword {k} at {path}"
        );
    }
    if let Some(t) = s.get("type") {
        let kinds: Vec<&str> = match t {
            Value::String(k) => vec![k.as_str()],
            Value::Array(ks) => ks.iter().map(|k| k.as_str().unwrap()).collect(),
            _ => panic!("bad type at {path}"),
        };
        if !kinds.iter().any(|k| type_matches(k, v)) {
            out.push(format!("{path}: {v} is not {kinds:?}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            out.push(format!("{path}: {v} is not one of {e:?}"));
        }
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            out.push(format!("{path}: {n} < {min}"));
        }
    }
    if let Some(options) = s.get("oneOf").and_then(Value::as_array) {
        let fits = options
            .iter()
            .filter(|o| schema_violations(o, v).is_empty())
            .count();
        if fits != 1 {
            out.push(format!("{path}: {v} fits {fits} of oneOf"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(r.as_str().unwrap()) {
                out.push(format!("{path}: missing {r}"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, val, &format!("{path}.{k}"), out),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{path}: unexpected {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{path}[{i}]"), out);
        }
    }
}

/// A job file over `data` (tumbling 1 s windows per vehicle) with the
/// given extra source lines and sink table.
pub fn window_job(dir: &Path, data: &Path, source_extra: &str, sink: &str) -> std::path::PathBuf {
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"watched\"\n[source]\npath = {:?}\ntime_column = \"event_time\"\n\
             watermark_delay = \"30s\"\n{source_extra}\n\n[[steps]]\nkey_by = [\"vehicle_id\"]\n\n\
             [[steps]]\nwindow = {{ kind = \"tumbling\", size = \"1s\" }}\n\
             aggregates = [ {{ fn = \"avg\", column = \"speed\", as = \"avg_speed\" }}, \
             {{ fn = \"count\", as = \"readings\" }} ]\n\n{sink}\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    job
}

//! Every ```rust block of README.md compiles as written: each is copied
//! verbatim below, between `README block` markers, into a function that is
//! type-checked with the crate (never run: the blocks need data files or
//! brokers), and `the_readme_blocks_are_the_ones_compiled_here` fails when
//! README.md and these copies differ. Change both together.
#![allow(unused, clippy::all)]

use std::path::Path;

/// The text of every ```rust block of `markdown`, in order.
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```rust") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().expect("inside a block")),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The copies in this file, between the markers.
fn copies(source: &str) -> Vec<String> {
    let begin = concat!("// README block", " begin\n");
    let end = concat!("// README block", " end");
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find(begin) {
        let after = &rest[i + begin.len()..];
        let j = after.find(end).expect("every begin has an end");
        out.push(after[..j].to_string());
        rest = &after[j..];
    }
    out
}

#[test]
fn the_readme_blocks_are_the_ones_compiled_here() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let here = std::fs::read_to_string(root.join("tests/readme.rs")).unwrap();
    let (blocks, copies) = (rust_blocks(&readme), copies(&here));
    assert!(!blocks.is_empty(), "README.md has Rust blocks");
    assert_eq!(blocks.len(), copies.len(), "one copy per README block");
    for (i, (b, c)) in blocks.iter().zip(&copies).enumerate() {
        assert_eq!(b, c, "README block {} differs from its copy here", i + 1);
    }
}

/// README block 1.
#[rustfmt::skip]
fn readme_block_1() -> weir::Result<()> {
// README block begin
use std::time::Duration;
use weir::{col, lit, Agg, ExecConfig, Job, WatermarkStrategy, Window};

let job = Job::new();
job.parquet("data/obd")?                                   // a file or a directory
    .assign_timestamps("event_time", WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(30)))?
    .filter(col("speed").gt_eq(lit(0.0)))?
    .key_by(["vehicle_id"])?
    .window(Window::tumbling(Duration::from_secs(1)))
    .aggregate([Agg::avg("speed").alias("avg_speed"), Agg::count().alias("readings")])?
    .sink_parquet("out/avg_speed.parquet")?;
let metrics = job.run(&ExecConfig::batch().with_parallelism(4).with_memory(256 << 20))?;
// README block end
Ok(())
}

/// README block 2.
#[rustfmt::skip]
fn readme_block_2() -> weir::Result<()> {
// README block begin
use std::sync::Arc;
use std::time::Duration;
use weir::connectors::kafka::{KafkaSinkSpec, KafkaSourceConfig};
use weir::connectors::redis::RedisSourceConfig;
use weir::connectors::live::{OnError, StartFrom};
use weir::{Agg, DataType, ExecConfig, Field, Job, Schema, TimeUnit, WatermarkStrategy, Window};

let schema = Arc::new(Schema::new(vec![
    Field::new("vehicle_id", DataType::Int64, false),
    Field::new("event_time", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
    Field::new("speed", DataType::Float64, true),
]));

let spec = KafkaSourceConfig::new(["kafka1:9092", "kafka2:9092"], "obd")
    .with_start(StartFrom::Earliest)          // Latest | Timestamp(ms) | Positions(map)
    .with_bounded(false)                      // true: stop at the end offsets seen at start
    .into_spec(schema.clone())?               // looks the partitions up now
    .with_on_error(OnError::DeadLetter);      // or Fail (default)
let positions = spec.positions();             // where each partition got to, for a restart
let job = Job::new();
let rows = job.live_source(spec)
    .assign_timestamps("event_time", WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(30)))?;
rows.dead_letters()?.sink_json("out/bad.jsonl")?;
rows.key_by(["vehicle_id"])?
    .window(Window::tumbling(Duration::from_secs(1)))
    .aggregate([Agg::avg("speed").alias("avg_speed")])?
    .sink_kafka(KafkaSinkSpec::new(["kafka1:9092"], "avg_speed").with_key("vehicle_id"))?;
let stop = weir::operator::StopSignal::new(); // stop.stop() (from another thread) drains the job
job.run(&ExecConfig::pipelined().with_stop(stop.clone()))?; // runs until stopped: windows fire, sinks flush
// next time: .with_start(StartFrom::Positions(positions.lock().unwrap().clone()))

let redis = RedisSourceConfig::new("redis://127.0.0.1:6379", ["obd:0", "obd:1"]).into_spec(schema)?;
// README block end
Ok(())
}

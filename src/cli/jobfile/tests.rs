//! Unit tests of `src/cli/jobfile/mod.rs`.

use super::*;

fn parse(text: &str) -> Result<LoadedJob> {
    LoadedJob::parse(Path::new("job.toml"), text.to_string())
}

#[test]
fn unknown_fields_name_line_and_field() {
    let err = parse("[source]\npath = \"x\"\n\n[[steps]]\nfitler = \"a > 1\"\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("job.toml"), "{msg}");
    assert!(msg.contains("line 5"), "{msg}");
    assert!(msg.contains("fitler"), "{msg}");
}

#[test]
fn syntax_errors_name_the_line() {
    let err = parse("[source]\npath = \"x\n").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn a_step_with_two_operations_is_rejected_with_its_line() {
    let job =
        parse("[source]\npath = \"x\"\n\n[[steps]]\nfilter = \"a\"\nselect = [\"a\"]\n").unwrap();
    let err = job.build(None).unwrap_err();
    // the source path does not exist: that is checked first
    assert!(err.to_string().contains("x"), "{err}");
}

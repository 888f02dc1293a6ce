//! The planner's file-system check: no sink writes over, into or around an
//! input, and no two sinks share an output.
//!
//! ```text
//!  every live source ─► input paths (files, given folders, glob matches) ─► canonical
//!  every live file sink ─► output path ─► canonical (may not exist yet)
//!  sink S vs input I: S is I, S lies inside I, or S contains I ─► refused, naming both
//!  sink S vs sink T:  the same, for every pair                 ─► refused, naming both
//! ```
//! Canonical forms resolve symbolic links and `..`, so `out -> data` or
//! `data/../data` cannot sneak past. Run at the start of every run (the
//! files may have changed since the job was built).

use super::{LogicalPlan, NodeKind, PhysicalPlan};
use std::path::{Path, PathBuf};
use weir_core::error::{Error, Result};
use weir_core::paths::{canonical, overlap};

/// One file output of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The sink's name in the plan.
    pub sink: String,
    /// The path as the job gave it.
    pub path: PathBuf,
    /// Its canonical form (absolute, links resolved).
    pub canonical: PathBuf,
}

/// The checked file outputs of a plan: what the executor locks and what a
/// checkpoint may publish into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    /// One per live file sink, in plan order.
    pub outputs: Vec<Output>,
}

impl LogicalPlan {
    /// Checks the plan's inputs and outputs (see the module doc) and
    /// returns the outputs.
    pub fn check_paths(&self, physical: &PhysicalPlan) -> Result<Outputs> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&id| physical.is_live(id))
            .collect();
        let inputs = self.inputs(&live)?;
        let mut outputs = Outputs::default();
        for &id in &live {
            let node = &self.nodes[id];
            if let Some(p) = &node.writes {
                outputs.outputs.push(Output {
                    sink: node.name.clone(),
                    path: p.clone(),
                    canonical: canonical(p)?,
                });
            }
        }
        for (i, out) in outputs.outputs.iter().enumerate() {
            check_against_inputs(out, &inputs)?;
            for other in &outputs.outputs[..i] {
                if let Some(how) = overlap(&out.canonical, &other.canonical) {
                    return Err(Error::UnsafePath {
                        path: out.path.clone(),
                        message: format!(
                            "sink `{}` would write {}, which {how} {}, the output of sink `{}`: \
                             every sink needs its own path",
                            out.sink,
                            out.canonical.display(),
                            other.canonical.display(),
                            other.sink
                        ),
                    });
                }
            }
        }
        Ok(outputs)
    }

    /// Checks the output `path` of a sink being added against the inputs
    /// of every source so far, so that the builder reports a sink over its
    /// input before anything looks inside the target.
    pub(crate) fn check_new_output(&self, sink: &str, path: &Path) -> Result<()> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let out = Output {
            sink: sink.to_string(),
            path: path.to_path_buf(),
            canonical: canonical(path)?,
        };
        check_against_inputs(&out, &self.inputs(&all)?)
    }

    /// The canonical input paths of the sources among `ids`, with their names.
    fn inputs(&self, ids: &[usize]) -> Result<Vec<(String, PathBuf)>> {
        let mut inputs = Vec::new();
        for &id in ids {
            let node = &self.nodes[id];
            let reads = match &node.kind {
                NodeKind::Source(spec) => spec.input_paths(),
                _ => Vec::new(),
            };
            for p in reads {
                inputs.push((node.name.clone(), canonical(&p)?));
            }
        }
        Ok(inputs)
    }
}

/// Refuses `out` if it is, lies inside or contains one of `inputs`.
fn check_against_inputs(out: &Output, inputs: &[(String, PathBuf)]) -> Result<()> {
    for (source, input) in inputs {
        if let Some(how) = overlap(&out.canonical, input) {
            return Err(Error::UnsafePath {
                path: out.path.clone(),
                message: format!(
                    "sink `{}` would write {}, which {how} {}, an input of source \
                     `{source}`: a sink never overwrites or deletes its own input; \
                     choose another output path",
                    out.sink,
                    out.canonical.display(),
                    input.display()
                ),
            });
        }
    }
    Ok(())
}

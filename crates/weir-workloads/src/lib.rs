//! Workloads: the data generators and jobs weir ships to demonstrate and
//! benchmark itself: vehicle speed readings and the seed's OBD-vs-app join
//! ([`vehicles`]), the demo ([`demo`]), Nexmark ([`nexmark`]) and live
//! generators of both ([`generators`]).
//!
//! May use every layer of the library below it (`graph`, `exec`,
//! `connectors`, `operators`, `functions`, ...); never `cli`
//! (`tests/architecture.rs` enforces this).

pub mod demo;
pub mod generators;
pub mod nexmark;
mod rng;
pub mod vehicles;

pub use rng::Rng;

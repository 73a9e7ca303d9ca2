//! Paths of the guest components built for the tests and benchmarks.
//!
//! The build script compiles the example agents and the test guests under
//! `tests/guests/` for wasm32-wasip2 from source on every build where they
//! changed; nothing here is a checked-in binary.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

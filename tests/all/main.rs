//! Integration tests: real guests built from `examples/` and
//! `tests/fixtures`, run by the real pack host and the `burst` binary.
//!
//! One test binary with a module per topic, so wasmtime links once.

mod support;

mod brokers;
mod bytes_model;
mod cli;
mod failures;
mod hostile;
mod misuse;
mod primitives;
mod programs;
mod semantics;

//! Integration tests: real guests built from `examples/` and
//! `tests/fixtures`, run by the real pack host and the `burst` binary.
//!
//! One test binary with a module per topic, so wasmtime links once.

mod controller;
mod support;

mod brokers;
mod bytes_model;
mod chaos;
mod cleanup;
mod cli;
mod cli_service;
mod dashboard;
mod datasets;
mod failures;
mod hardening;
mod hostile;
mod hosts;
mod load;
mod misuse;
mod netns;
mod openapi;
mod primitives;
mod programs;
mod python;
mod records;
mod semantics;
mod service;
mod tenants;
mod traffic;
mod workloads;

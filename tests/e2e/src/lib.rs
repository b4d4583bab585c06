//! End-to-end tests of the real binaries, started as separate processes;
//! the tests are in `tests/it`, the process harness in
//! `test_support::process`.

//! Benchmarks of Partner Callbacks: the real registry and dispatcher
//! binaries on real Postgres, a fast local receiver, load over gRPC, and
//! the costs read from `/proc`. `cargo run --release -p bench -- all`
//! runs every scenario and prints one markdown table each; results and the
//! machine they ran on are kept in `docs/benchmarks.md`.

pub mod measure;
pub mod receiver;
pub mod scenarios;
pub mod stack;

//! Test infrastructure, and nothing else: it depends on no service crate, so
//! a service that dev-depends on it never gets two copies of its own types.
//!
//! [`TestDb`] gives each test a fresh database of its own and drops it when
//! the test ends. The server it lives on is found once per process:
//!
//! 1. `TEST_DATABASE_URL` (or `DATABASE_URL`) when set: a URL of the server,
//!    whose database is used for administration;
//! 2. else the server on `127.0.0.1:5432` (user `postgres`) if one answers;
//! 3. else a private throw-away cluster made with the machine's
//!    `initdb`/`pg_ctl`, stopped and deleted when the test process exits
//!    (`TEST_POSTGRES=private` forces this one, to test it).
//!
//! [`WebhookReceiver`] is an in-process HTTPS (or plain HTTP) webhook endpoint
//! with its own throw-away CA: it records every request and answers as the
//! test scripts it, per path ([`Reply`]: statuses, queues, delays, hangs).
//!
//! [`cluster::Cluster`] is a private cluster a test owns, with full
//! durability, to SIGKILL and start again.
//!
//! [`eventually`] waits, with a deadline, for a condition no event signals.
//!
//! [`faults::FaultProxy`] puts latency, resets and a black hole between a
//! service and what it depends on.
//!
//! [`dns::DnsServer`] answers host names from a table a test changes
//! while it runs (DNS rebinding).
//!
//! [`OtlpReceiver`] is a real OTLP/gRPC trace endpoint that keeps every span
//! the services export.
//!
//! [`process::Service`] runs a service binary as a separate process (start,
//! SIGTERM, SIGKILL, restart).

pub mod cluster;
pub mod dns;
pub mod faults;
pub mod hostile;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod tls;
pub mod wait;

pub use otlp::{ExportedSpan, OtlpReceiver};
pub use postgres::{TestDb, selected_columns};
pub use receiver::{ReceivedRequest, Reply, WebhookReceiver};
pub use wait::eventually;

//! What the services' settings share beyond their names: secrets taken
//! from flags, and the address a test or a local run binds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use secrecy::SecretString;

/// A flag's value kept as a secret (never printed by `Debug`); for clap's
/// `value_parser`.
pub fn secret(raw: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(raw.to_owned()))
}

/// Loopback, port 0: the system picks a free port, so that tests run side
/// by side.
pub const ANY_LOOPBACK_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

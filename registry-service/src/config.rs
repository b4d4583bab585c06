//! Settings, from flags with environment fall-backs (`--help` lists them
//! all). The defaults run against the local Postgres on 127.0.0.1:5432.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use secrecy::SecretString;
use service_kit::LogFormat;

/// A well-known key for local use only: the service runs with it (or with
/// no key, which means it) only in development mode.
pub const DEVELOPMENT_ENCRYPTION_KEY: &str = "cGFydG5lci1jYWxsYmFja3MtbG9jYWwtZGV2LWtleSE=";

/// Keys published in this repository (the built-in one, and the local
/// default of `deploy/compose.yaml`): anyone can open what they seal.
pub const WELL_KNOWN_KEYS: &[&str] = &[
    DEVELOPMENT_ENCRYPTION_KEY,
    "bG9jYWwtZGV2LWtleS1OT1QtZm9yLXByb2R1Y3Rpb24=",
];

#[derive(Debug, Clone, Parser)]
#[command(
    name = "registry-service",
    version,
    about = "Partner Callbacks registry: partners, API keys, notification types and callback registrations over gRPC."
)]
pub struct Config {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(long, env = "REGISTRY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Address of the admin HTTP server: `/metrics` (Prometheus), `/healthz`,
    /// `/readyz` (port 0 picks a free port).
    #[arg(long, env = "REGISTRY_ADMIN_LISTEN", default_value = "127.0.0.1:9101")]
    pub admin_listen: SocketAddr,

    /// The registry's own database. Created at start-up if missing (when the
    /// role may), then migrated.
    #[arg(
        long,
        env = "REGISTRY_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/callbacks_registry",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Most database connections the pool opens.
    #[arg(long, env = "REGISTRY_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// 32 bytes in base64 (e.g. `openssl rand -base64 32`): seals callback
    /// passwords and signing secrets at rest. Required, and not one of the
    /// keys published in this repository, unless `--development`.
    #[arg(long, env = "REGISTRY_ENCRYPTION_KEY", hide_env_values = true, value_parser = service_kit::settings::secret)]
    pub encryption_key: Option<SecretString>,

    /// Keys that sealed secrets before the current one (base64,
    /// comma-separated): what they sealed still opens, and
    /// `registry-service reseal` moves it to the current key. Remove a key
    /// once `reseal` reports nothing left under it; the registry refuses to
    /// start while a stored value names a key it lacks.
    #[arg(long, env = "REGISTRY_OLD_ENCRYPTION_KEYS", value_delimiter = ',', hide_env_values = true, value_parser = service_kit::settings::secret)]
    pub old_encryption_keys: Vec<SecretString>,

    /// Accept plain `http://` callback URLs (local use only).
    #[arg(long, env = "REGISTRY_ALLOW_HTTP_CALLBACKS")]
    pub allow_http_callbacks: bool,

    /// Non-public networks (CIDR, comma-separated) that callback URLs may
    /// point at anyway, e.g. `127.0.0.0/8` for local testing.
    #[arg(
        long,
        env = "REGISTRY_ALLOWED_CALLBACK_NETWORKS",
        value_delimiter = ','
    )]
    pub allowed_callback_networks: Vec<IpNet>,

    /// How long a rotated-out signing secret stays valid, in seconds.
    #[arg(
        long,
        env = "REGISTRY_SECRET_ROTATION_GRACE_SECS",
        default_value_t = 86_400
    )]
    pub secret_rotation_grace_secs: u64,

    /// The internal callers and their tokens, comma-separated `role=token`
    /// (roles: `dispatcher`, `gateway`, `operator`; `grpc::callers` says
    /// which may call what). Required unless `--open-grpc`.
    #[arg(long, env = "REGISTRY_CALLERS", value_delimiter = ',', hide_env_values = true, value_parser = service_kit::settings::secret)]
    pub callers: Vec<SecretString>,

    /// How long a registration may fail without a break before it is
    /// paused (its events then wait instead of exhausting their retries),
    /// as a humantime duration, or `off`. Five days by default: longer
    /// than the default retry schedule (about two days), so only an
    /// endpoint gone for good is paused.
    #[arg(long, env = "REGISTRY_AUTO_PAUSE_AFTER", default_value = "5d", value_parser = parse_auto_pause)]
    pub auto_pause_after: AutoPause,

    /// Local development: without `REGISTRY_ENCRYPTION_KEY`, or with a
    /// well-known one, seal secrets anyway (with a warning) instead of
    /// refusing to start.
    #[arg(long, env = "REGISTRY_DEVELOPMENT")]
    pub development: bool,

    /// Serve gRPC to any caller, without tokens: for tests and local
    /// experiments only.
    #[arg(long, env = "REGISTRY_OPEN_GRPC")]
    pub open_grpc: bool,

    /// `text` for people, `json` for log collectors.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Without a command, serve.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary does other than serve.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Seal every stored secret again under the current key (while the
    /// registry serves), then report how many rows it moved and how many
    /// are left under other keys.
    Reseal {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

/// `--auto-pause-after`: `None` is off. An alias, so that clap takes the
/// whole `Option` from the value parser rather than making the flag
/// optional.
pub type AutoPause = Option<Duration>;

/// `off`, or a positive humantime duration.
fn parse_auto_pause(raw: &str) -> Result<Option<Duration>, String> {
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match humantime::parse_duration(raw.trim()) {
        Ok(after) if !after.is_zero() => Ok(Some(after)),
        Ok(_) => Err("must be a positive duration, or off".into()),
        Err(e) => Err(format!("{e}; or off")),
    }
}

/// The configured old keys, less empty entries (`REGISTRY_OLD_ENCRYPTION_KEYS=`
/// is none).
fn old_keys(keys: &[SecretString]) -> Vec<SecretString> {
    use secrecy::ExposeSecret as _;
    keys.iter()
        .filter(|key| !key.expose_secret().trim().is_empty())
        .cloned()
        .collect()
}

impl Config {
    pub fn secret_rotation_grace(&self) -> Duration {
        Duration::from_secs(self.secret_rotation_grace_secs)
    }

    /// Settings for tests and embedding: defaults, a free port, and `url`;
    /// gRPC open to any caller.
    pub fn for_database(database_url: &str) -> Self {
        let mut config = Self::parse_from(["registry-service"]);
        config.listen = service_kit::settings::ANY_LOOPBACK_PORT;
        config.admin_listen = service_kit::settings::ANY_LOOPBACK_PORT;
        config.database_url = database_url.to_owned();
        config.open_grpc = true;
        config.development = true;
        config
    }

    /// The key that seals secrets: the configured one, unless it is
    /// missing or well known, which only development mode accepts.
    pub fn encryption_key(&self) -> anyhow::Result<SecretString> {
        use secrecy::ExposeSecret as _;
        let well_known = self
            .encryption_key
            .as_ref()
            .is_none_or(|key| WELL_KNOWN_KEYS.contains(&key.expose_secret().trim()));
        if !well_known {
            return Ok(self.encryption_key.clone().expect("checked above"));
        }
        anyhow::ensure!(
            self.development,
            "REGISTRY_ENCRYPTION_KEY is unset or a key published in this repository: \
             set a key of your own (openssl rand -base64 32), or REGISTRY_DEVELOPMENT=true \
             on a laptop"
        );
        tracing::warn!(
            "sealing secrets with a well-known development key (REGISTRY_DEVELOPMENT): \
             set a key of your own anywhere but on a laptop"
        );
        Ok(self
            .encryption_key
            .clone()
            .unwrap_or_else(|| SecretString::from(DEVELOPMENT_ENCRYPTION_KEY.to_owned())))
    }

    /// The key ring: the current key (see [`Config::encryption_key`]) and
    /// the old ones that only open.
    pub fn cipher(&self) -> anyhow::Result<crate::crypto::Cipher> {
        use anyhow::Context as _;
        crate::crypto::Cipher::from_base64(&self.encryption_key()?)
            .context("REGISTRY_ENCRYPTION_KEY")?
            .with_old_keys(&old_keys(&self.old_encryption_keys))
            .context("REGISTRY_OLD_ENCRYPTION_KEYS")
    }

    /// Who may call: the configured tokens, or anybody with `--open-grpc`.
    pub fn callers(&self) -> anyhow::Result<service_kit::callers::Callers> {
        service_kit::callers::Callers::configured(
            self.open_grpc,
            &self.callers,
            crate::grpc::callers::ROLES,
        )
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn config(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("registry-service").chain(args.iter().copied()))
    }

    #[test]
    fn auto_pause_takes_a_duration_or_off() {
        assert_eq!(
            config(&[]).auto_pause_after,
            Some(Duration::from_secs(5 * 86_400))
        );
        assert_eq!(
            config(&["--auto-pause-after", "off"]).auto_pause_after,
            None
        );
        assert_eq!(
            config(&["--auto-pause-after", "36h"]).auto_pause_after,
            Some(Duration::from_secs(36 * 3600))
        );
        for refused in ["0s", "soon", ""] {
            let parsed =
                Config::try_parse_from(["registry-service", "--auto-pause-after", refused]);
            assert!(parsed.is_err(), "{refused:?} was taken");
        }
    }

    #[test]
    fn only_development_mode_seals_with_a_well_known_key() {
        let own = "b3duLWtleS1vZi10aGlzLXRlc3QtMzItYnl0ZXMhISE=";
        for refused in [
            config(&[]),
            config(&["--encryption-key", DEVELOPMENT_ENCRYPTION_KEY]),
            config(&["--encryption-key", WELL_KNOWN_KEYS[1]]),
        ] {
            let error = refused.encryption_key().unwrap_err().to_string();
            assert!(error.contains("REGISTRY_DEVELOPMENT"), "{error}");
        }
        let developing = config(&["--development"]).encryption_key().unwrap();
        assert_eq!(developing.expose_secret(), DEVELOPMENT_ENCRYPTION_KEY);
        let own_key = config(&["--encryption-key", own]).encryption_key().unwrap();
        assert_eq!(own_key.expose_secret(), own);
    }
}

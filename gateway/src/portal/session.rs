//! Portal sessions: a cookie sealed with AES-256-GCM under the gateway's
//! portal key, holding the partner's API key and when the session ends.
//!
//! The API key itself is what each portal request authenticates with,
//! exactly as a REST call does ([`crate::auth::partner_of`]): a revoked
//! key or a disabled partner ends every session at once, on every replica,
//! and the portal can do nothing the key could not. The cookie is
//! `HttpOnly` (no script reads it), `Secure`, `SameSite=Strict` (no other
//! site's page sends it, so no cross-site form can act) and scoped to
//! `/portal`; sealed, it shows nothing of the key to whoever holds the
//! browser's cookie store on disk, and it cannot be altered or extended.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "pc_portal";
/// Binds a sealed value to its use.
const AAD: &[u8] = b"partner-callbacks portal session v1";

/// What a session cookie holds.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The API key.
    k: String,
    /// Seconds since the epoch when the session ends.
    e: u64,
}

/// Seals and opens session cookies.
pub(crate) struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
    lasts: Duration,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

/// Seconds since the epoch on the wall clock: a session's end is a wall
/// time, as the browser's cookie expiry is.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sealer {
    /// From the configured key (32 bytes, base64), or a random one.
    pub(crate) fn new(key: Option<&SecretString>, lasts: Duration) -> anyhow::Result<Self> {
        let random = SystemRandom::new();
        let mut bytes = [0u8; 32];
        match key {
            Some(key) => {
                let decoded = STANDARD
                    .decode(key.expose_secret().trim())
                    .map_err(|_| anyhow::anyhow!("GATEWAY_PORTAL_KEY is not base64"))?;
                anyhow::ensure!(
                    decoded.len() == 32,
                    "GATEWAY_PORTAL_KEY must be 32 bytes (base64 of 32 random bytes)"
                );
                bytes.copy_from_slice(&decoded);
            }
            None => {
                tracing::warn!(
                    "GATEWAY_PORTAL_KEY is not set: portal sessions end at restart and hold on this replica only"
                );
                random
                    .fill(&mut bytes)
                    .map_err(|_| anyhow::anyhow!("no randomness for the portal key"))?;
            }
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| anyhow::anyhow!("the portal key is not an AES-256 key"))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            random,
            lasts,
        })
    }

    /// How long a session lasts.
    pub(crate) fn lasts(&self) -> Duration {
        self.lasts
    }

    /// A cookie value for a session of `api_key`, from now.
    pub(crate) fn seal(&self, api_key: &str) -> Option<String> {
        let sealed = Sealed {
            k: api_key.to_owned(),
            e: now_secs() + self.lasts.as_secs(),
        };
        let mut data = serde_json::to_vec(&sealed).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut data,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// The API key of a cookie value this sealer made, while its session
    /// lasts; `None` for anything else.
    pub(crate) fn open(&self, value: &str) -> Option<SecretString> {
        let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
        if raw.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut sealed)
            .ok()?;
        let opened: Sealed = serde_json::from_slice(plain).ok()?;
        (opened.e > now_secs()).then(|| SecretString::from(opened.k))
    }
}

/// The `Set-Cookie` value that starts a session.
pub(crate) fn set_cookie(value: &str, lasts: Duration) -> String {
    format!(
        "{COOKIE}={value}; Path=/portal; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        lasts.as_secs()
    )
}

/// The `Set-Cookie` value that ends one.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/portal; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The session cookie's value among the request's `Cookie` headers.
pub(crate) fn cookie_value(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(lasts: Duration) -> Sealer {
        let key = SecretString::from(STANDARD.encode([7u8; 32]));
        Sealer::new(Some(&key), lasts).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_and_a_tampered_or_foreign_one_does_not() {
        let one = sealer(Duration::from_secs(60));
        let value = one.seal("pcb_secret").unwrap();
        assert!(!value.contains("pcb_secret"));
        assert_eq!(one.open(&value).unwrap().expose_secret(), "pcb_secret");
        let mut bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(one.open(&URL_SAFE_NO_PAD.encode(bytes)).is_none());
        let other = Sealer::new(None, Duration::from_secs(60)).unwrap();
        assert!(other.open(&value).is_none(), "another key opens nothing");
        assert!(one.open("not base64!").is_none());
        assert!(one.open("").is_none());
    }

    #[test]
    fn an_ended_session_does_not_open() {
        let ended = sealer(Duration::ZERO);
        let value = ended.seal("pcb_secret").unwrap();
        assert!(ended.open(&value).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::COOKIE, "a=1; pc_portal=xyz".parse().unwrap());
        assert_eq!(cookie_value(&headers), Some("xyz"));
        assert!(cookie_value(&http::HeaderMap::new()).is_none());
    }

    #[test]
    fn a_key_that_is_not_32_bytes_is_refused() {
        let short = SecretString::from(STANDARD.encode([1u8; 16]));
        assert!(Sealer::new(Some(&short), Duration::from_secs(1)).is_err());
        let garbage = SecretString::from("%%%".to_owned());
        assert!(Sealer::new(Some(&garbage), Duration::from_secs(1)).is_err());
    }
}

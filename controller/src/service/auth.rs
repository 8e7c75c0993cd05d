//! Who is calling: bearer tokens mapped to tenants, and the cluster token
//! of host daemons.
//!
//! Tokens come from `--tokens-file` (one `tenant:token` per line, `#`
//! comments) and `BURST_TOKENS` (`tenant:token,tenant:token`). With no
//! tenant token configured the controller is open: every request acts as
//! the tenant `default`, as the single-machine quick start expects. Host
//! routes always need the cluster token; without one configured no host
//! can join.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;

/// The tenant of requests when no tokens are configured.
pub const OPEN_TENANT: &str = "default";

/// A token's SHA-256. Tokens are kept and compared only as fingerprints:
/// neither a lookup nor a comparison then takes a time that depends on how
/// much of a guessed token is right.
type Fingerprint = [u8; 32];

fn fingerprint(token: &str) -> Fingerprint {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two secrets are equal, in a time that does not depend on where
/// they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    fingerprint(a).ct_eq(&fingerprint(b)).into()
}

/// Tokens and what they grant.
#[derive(Debug, Default)]
pub struct Auth {
    /// Token fingerprint → tenant; empty means open.
    tenants: HashMap<Fingerprint, String>,
    cluster: Option<Fingerprint>,
}

/// A tenant name: used in store keys and shown in logs.
fn check_tenant(name: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid { Ok(()) } else { Err(format!("tenant `{name}` must be 1 to 64 of A-Z a-z 0-9 . _ -")) }
}

impl Auth {
    /// Tenants from `tenant:token` entries separated by commas or newlines
    /// (`#` starts a comment), and the cluster token.
    ///
    /// # Errors
    /// A message naming the malformed entry.
    pub fn new(specs: &[String], cluster: Option<String>) -> Result<Self, String> {
        let mut tenants = HashMap::new();
        let entries = specs.iter().flat_map(|s| s.split([',', '\n'])).map(|e| e.split('#').next().unwrap_or("").trim());
        for entry in entries.filter(|e| !e.is_empty()) {
            let Some((tenant, token)) = entry.split_once(':') else {
                return Err(format!("token entry `{entry}` is not tenant:token"));
            };
            let (tenant, token) = (tenant.trim(), token.trim());
            check_tenant(tenant)?;
            if token.is_empty() {
                return Err(format!("tenant `{tenant}` has an empty token"));
            }
            if tenants.insert(fingerprint(token), tenant.to_owned()).is_some() {
                return Err(format!("a token of tenant `{tenant}` is given twice"));
            }
        }
        if cluster.as_deref().is_some_and(|c| c.is_empty() || tenants.contains_key(&fingerprint(c))) {
            return Err("the cluster token must be non-empty and not a tenant's token".into());
        }
        Ok(Self { tenants, cluster: cluster.as_deref().map(fingerprint) })
    }

    /// The tenant a request acts for.
    ///
    /// # Errors
    /// 401 when tokens are configured and the request has no valid one.
    pub fn tenant(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if self.tenants.is_empty() {
            return Ok(OPEN_TENANT.to_owned());
        }
        let token = bearer(headers)?;
        self.tenants.get(&fingerprint(token)).cloned().ok_or_else(|| ApiError::unauthorized("the token is not valid"))
    }

    /// Checks that a request comes from a host daemon.
    ///
    /// # Errors
    /// 401 without the cluster token.
    pub fn cluster(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(cluster) = &self.cluster else {
            return Err(ApiError::unauthorized("this controller accepts no hosts (start it with --cluster-token)"));
        };
        if bool::from(fingerprint(bearer(headers)?).ct_eq(cluster)) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("the cluster token is not valid"))
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header; the scheme is
/// case-insensitive (RFC 9110).
///
/// # Errors
/// 401 without one.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer TOKEN` header"))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_token(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii"));
        headers
    }

    #[test]
    fn tokens_map_to_tenants_and_others_are_refused() {
        let auth = Auth::new(&["a:ta, b:tb".into(), "# comment\nc:tc\n".into()], Some("cluster".into()))
            .expect("valid entries");
        assert_eq!(auth.tenant(&with_token("tb")).expect("valid"), "b");
        assert_eq!(auth.tenant(&with_token("tc")).expect("valid"), "c");
        assert!(auth.tenant(&with_token("nope")).is_err());
        assert!(auth.tenant(&HeaderMap::new()).is_err());
        assert!(auth.tenant(&with_token("cluster")).is_err());
        assert!(auth.cluster(&with_token("cluster")).is_ok());
        assert!(auth.cluster(&with_token("ta")).is_err());
    }

    #[test]
    fn secrets_are_equal_only_when_every_byte_is() {
        assert!(same_secret("host-token", "host-token"));
        assert!(!same_secret("host-token", "host-tokeN"));
        assert!(!same_secret("host-token", "host-token-longer"));
        assert!(!same_secret("", "x"));
    }

    #[test]
    fn without_tokens_every_request_is_the_default_tenant_and_no_host_may_join() {
        let auth = Auth::new(&[], None).expect("empty is valid");
        assert_eq!(auth.tenant(&HeaderMap::new()).expect("open"), OPEN_TENANT);
        assert!(auth.cluster(&with_token("anything")).is_err());
    }

    #[test]
    fn malformed_entries_are_named() {
        for (spec, message) in [
            ("a", "token entry `a` is not tenant:token"),
            ("a b:t", "tenant `a b` must be"),
            ("a:", "tenant `a` has an empty token"),
            ("a:t,b:t", "a token of tenant `b` is given twice"),
        ] {
            let error = Auth::new(&[spec.into()], None).expect_err(spec);
            assert!(error.starts_with(message), "{spec}: {error}");
        }
    }
}

//! `Idempotency-Key` on flare creation: a retried `POST /v1/flares` with the
//! key of an earlier one answers that flare instead of starting another.
//!
//! Keys are remembered per tenant for [`KEY_LIFETIME`], at most
//! [`MAX_KEYS`] at once (the oldest forgotten first), in this controller
//! process: a retry after a restart starts a new flare.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::error::ApiError;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// How long a key is remembered.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Most keys remembered at once.
pub const MAX_KEYS: usize = 100_000;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// The `Idempotency-Key` of a request, if it has one.
///
/// # Errors
/// 400 `bad_idempotency_key` unless it is 1 to 255 visible ASCII characters.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else { return Ok(None) };
    let valid = value
        .to_str()
        .ok()
        .filter(|v| (1..=MAX_KEY_BYTES).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()));
    let key = valid.ok_or_else(|| {
        ApiError::bad_request(
            "bad_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters"),
        )
    })?;
    Ok(Some(key.to_owned()))
}

type Key = (String, String);

/// Remembered keys: (tenant, key) → flare id.
#[derive(Default)]
pub struct Idempotency(Mutex<Keys>);

#[derive(Default)]
struct Keys {
    flares: HashMap<Key, String>,
    /// In the order they were remembered, with when.
    order: VecDeque<(Key, Instant)>,
}

impl Keys {
    fn forget_old(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            if now.duration_since(*at) < KEY_LIFETIME && self.order.len() <= MAX_KEYS {
                break;
            }
            self.flares.remove(key);
            self.order.pop_front();
        }
    }
}

impl Idempotency {
    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The flare an earlier request of `tenant` with `key` started.
    pub fn flare(&self, tenant: &str, key: &str) -> Option<String> {
        let mut keys = self.lock();
        keys.forget_old(Instant::now());
        keys.flares.get(&(tenant.to_owned(), key.to_owned())).cloned()
    }

    /// Remembers that `tenant`'s request with `key` started `flare_id`.
    pub fn remember(&self, tenant: &str, key: &str, flare_id: &str) {
        let mut keys = self.lock();
        let key = (tenant.to_owned(), key.to_owned());
        keys.flares.insert(key.clone(), flare_id.to_owned());
        keys.order.push_back((key, Instant::now()));
        keys.forget_old(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn keys_are_per_tenant() {
        let keys = Idempotency::default();
        keys.remember("a", "k1", "f-1");
        assert_eq!(keys.flare("a", "k1").as_deref(), Some("f-1"));
        assert_eq!(keys.flare("b", "k1"), None);
        assert_eq!(keys.flare("a", "k2"), None);
    }

    #[test]
    fn a_key_must_be_visible_ascii_of_bounded_length() {
        let mut headers = HeaderMap::new();
        assert_eq!(key_of(&headers).expect("none is fine"), None);
        headers.insert(HEADER, HeaderValue::from_static("retry-7f3a"));
        assert_eq!(key_of(&headers).expect("valid").as_deref(), Some("retry-7f3a"));
        for bad in ["", "has space", &"x".repeat(MAX_KEY_BYTES + 1)] {
            headers.insert(HEADER, HeaderValue::from_str(bad).expect("a header value"));
            assert!(key_of(&headers).is_err(), "{bad:?}");
        }
    }
}

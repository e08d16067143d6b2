//! Signed-in sessions: kept in this process's memory (bounded, least recently used signed
//! out first), named by a random id in an HttpOnly, SameSite=Strict cookie. Each holds the
//! API token it signed in with (never sent back to the browser), the tenant chosen, and
//! the form token every POST must carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use lakeport_api::context::Entitlement;
use rand::RngCore;

/// The session cookie's name.
pub const COOKIE: &str = "lakeport_console";
/// The cookie that ties the sign-in form to the browser that loaded it.
pub const SIGNIN_COOKIE: &str = "lakeport_console_signin";

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub token: String,
    pub api_key: String,
    pub entitlement: Entitlement,
    /// The organization and sandbox chosen; None until the user picks them.
    pub tenant: Option<(String, String)>,
    /// The per-session form token checked on every POST.
    pub csrf: String,
    last_used: Instant,
}

/// All sessions of this process.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    max: usize,
}

impl Sessions {
    pub fn new(idle: Duration, max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            idle,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for a checked token and returns it.
    pub fn create(&self, token: String, api_key: String, entitlement: Entitlement) -> Session {
        let session = Session {
            id: random_token(),
            token,
            api_key,
            entitlement,
            tenant: None,
            csrf: random_token(),
            last_used: Instant::now(),
        };
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_used) < self.idle);
        while map.len() >= self.max {
            let Some(oldest) = map
                .values()
                .min_by_key(|s| s.last_used)
                .map(|s| s.id.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(session.id.clone(), session.clone());
        session
    }

    /// Returns the session the request's cookie names, if it is alive, marking it used.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut map = self.lock();
        let session = map.get_mut(&id)?;
        let now = Instant::now();
        if now.duration_since(session.last_used) >= self.idle {
            map.remove(&id);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Records the tenant a session chose.
    pub fn set_tenant(&self, id: &str, org: String, sandbox: String) {
        if let Some(session) = self.lock().get_mut(id) {
            session.tenant = Some((org, sandbox));
        }
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Returns how many sessions are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Returns the value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Compares two secrets without stopping at the first difference.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_session_makes_room() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        let a = sessions.create("t".into(), "k".into(), Entitlement::AnyOrg);
        let b = sessions.create("t".into(), "k".into(), Entitlement::AnyOrg);
        let mut headers = HeaderMap::new();
        headers.insert("cookie", format!("x=1; {COOKIE}={}", a.id).parse().unwrap());
        assert!(sessions.find(&headers).is_some());
        let _c = sessions.create("t".into(), "k".into(), Entitlement::AnyOrg);
        assert_eq!(sessions.len(), 2);
        assert!(sessions.find(&headers).is_some(), "a was used after b");
        headers.insert("cookie", format!("{COOKIE}={}", b.id).parse().unwrap());
        assert!(sessions.find(&headers).is_none(), "b was signed out");
    }

    #[test]
    fn idle_sessions_expire() {
        let sessions = Sessions::new(Duration::from_millis(1), 10);
        let a = sessions.create("t".into(), "k".into(), Entitlement::AnyOrg);
        std::thread::sleep(Duration::from_millis(5));
        let mut headers = HeaderMap::new();
        headers.insert("cookie", format!("{COOKIE}={}", a.id).parse().unwrap());
        assert!(sessions.find(&headers).is_none());
    }
}

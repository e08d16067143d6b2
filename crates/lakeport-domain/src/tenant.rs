//! Tenants: every Catalog object belongs to exactly one (organization, sandbox) pair.

use std::fmt;

/// The (IMS organization, sandbox) pair that owns an object. Objects of one tenant do not
/// exist for any other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    org: String,
    sandbox: String,
}

/// Why an organization id or sandbox name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("x-gw-ims-org-id {0:?} is malformed: expected <letters and digits>@AdobeOrg")]
    MalformedOrg(String),
    #[error(
        "x-sandbox-name {0:?} is malformed: expected 1 to 64 lower-case letters, digits or '-', starting with a letter"
    )]
    MalformedSandbox(String),
}

impl Tenant {
    /// The sandbox used when a request names none (spec §8 item 15).
    pub const DEFAULT_SANDBOX: &'static str = "prod";

    /// Parses an org id (`<alnum>@AdobeOrg`) and a sandbox name (lower-case).
    ///
    /// # Errors
    /// Returns which of the two is malformed.
    pub fn parse(org: &str, sandbox: &str) -> Result<Self, TenantError> {
        let org = org.trim();
        let valid_org = org.strip_suffix("@AdobeOrg").is_some_and(|prefix| {
            !prefix.is_empty()
                && prefix.len() <= 64
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if !valid_org {
            return Err(TenantError::MalformedOrg(org.to_owned()));
        }
        let sandbox = sandbox.trim();
        let valid_sandbox = !sandbox.is_empty()
            && sandbox.len() <= 64
            && sandbox.starts_with(|c: char| c.is_ascii_lowercase())
            && sandbox
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_sandbox {
            return Err(TenantError::MalformedSandbox(sandbox.to_owned()));
        }
        Ok(Self {
            org: org.to_owned(),
            sandbox: sandbox.to_owned(),
        })
    }

    /// Returns the IMS organization id, e.g. `A1B2C3@AdobeOrg`.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// Returns the sandbox name, e.g. `prod`.
    pub fn sandbox(&self) -> &str {
        &self.sandbox
    }

    /// Returns the default Schema Registry tenant id of the organization: the org id's
    /// prefix in lower case, prefixed with `t` when it would start with a digit.
    pub fn default_tenant_id(&self) -> String {
        let prefix: String = self
            .org
            .trim_end_matches("@AdobeOrg")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
            prefix
        } else {
            format!("t{prefix}")
        }
    }

    /// Returns the sandbox's UUID, derived deterministically from org and sandbox name so
    /// that it is stable across restarts and nodes without being stored.
    pub fn sandbox_id(&self) -> String {
        let high = fnv1a64(
            0xcbf2_9ce4_8422_2325,
            self.org.as_bytes(),
            self.sandbox.as_bytes(),
        );
        let low = fnv1a64(
            0x8422_2325_cbf2_9ce4,
            self.sandbox.as_bytes(),
            self.org.as_bytes(),
        );
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        // Mark it as a version 8 (custom) RFC 9562 UUID.
        bytes[6] = (bytes[6] & 0x0F) | 0x80;
        bytes[8] = (bytes[8] & 0x3F) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org, self.sandbox)
    }
}

fn fnv1a64(seed: u64, first: &[u8], second: &[u8]) -> u64 {
    let mut hash = seed;
    for byte in first.iter().chain([0u8].iter()).chain(second) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_org_and_sandbox() {
        let tenant = Tenant::parse("A1B2C3D4E5F6A7B8C9D0E1F2@AdobeOrg", "prod").unwrap();
        assert_eq!(tenant.org(), "A1B2C3D4E5F6A7B8C9D0E1F2@AdobeOrg");
        assert_eq!(tenant.sandbox(), "prod");
        assert_eq!(tenant.to_string(), "A1B2C3D4E5F6A7B8C9D0E1F2@AdobeOrg/prod");
    }

    #[test]
    fn refuses_malformed_values() {
        assert!(matches!(
            Tenant::parse("acme", "prod"),
            Err(TenantError::MalformedOrg(_))
        ));
        assert!(matches!(
            Tenant::parse("@AdobeOrg", "prod"),
            Err(TenantError::MalformedOrg(_))
        ));
        assert!(matches!(
            Tenant::parse("ACME@AdobeOrg", "Prod"),
            Err(TenantError::MalformedSandbox(_))
        ));
        assert!(matches!(
            Tenant::parse("ACME@AdobeOrg", ""),
            Err(TenantError::MalformedSandbox(_))
        ));
    }

    #[test]
    fn sandbox_ids_are_stable_uuids_distinct_per_tenant() {
        let a = Tenant::parse("ACME@AdobeOrg", "prod").unwrap();
        let b = Tenant::parse("ACME@AdobeOrg", "dev").unwrap();
        let c = Tenant::parse("OTHER@AdobeOrg", "prod").unwrap();
        assert_eq!(a.sandbox_id(), a.clone().sandbox_id());
        assert_ne!(a.sandbox_id(), b.sandbox_id());
        assert_ne!(a.sandbox_id(), c.sandbox_id());
        let id = a.sandbox_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8");
    }
}

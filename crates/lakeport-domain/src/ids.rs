//! Identifier generation and validation (spec §1.3).

use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use rand::RngCore;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Returns a new 24-character lower-case hex id, the form AEP uses for datasets and views.
///
/// Like a MongoDB ObjectId it is the creation second, five random bytes fixed per process
/// and a counter, so ids made later by one process sort later: the Catalog's default
/// order (`created`, then `id`) is then creation order even within one millisecond.
pub fn new_object_id() -> String {
    static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let mut bytes = [0u8; 5];
        rand::rng().fill_bytes(&mut bytes);
        bytes
    });
    let counter = COUNTER.get_or_init(|| AtomicU32::new(rand::rng().next_u32() & 0x00FF_FFFF));
    let count = counter.fetch_add(1, Ordering::Relaxed) & 0x00FF_FFFF;
    let seconds = (crate::now_millis() / 1000) as u32;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&seconds.to_be_bytes());
    bytes[4..9].copy_from_slice(process);
    bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
    let mut out = String::with_capacity(24);
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Returns a new 26-character ULID (Crockford base32, upper case), the form of batch ids.
/// ULIDs made by one process are monotonic: within one millisecond the random part is
/// incremented, as the ULID specification's monotonic mode does.
pub fn new_ulid() -> String {
    static LAST: Mutex<(i64, u128)> = Mutex::new((0, 0));
    let now = crate::now_millis();
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let random = if now <= last.0 {
        last.1.wrapping_add(1) & ((1u128 << 80) - 1)
    } else {
        random_80()
    };
    let millis = now.max(last.0);
    *last = (millis, random);
    encode_ulid(millis, random)
}

/// Returns a new UUID in the version 7 layout (the form of Flow Service ids): the creation
/// millisecond, then 74 random bits that one process increments within a millisecond, so
/// ids made later by one process sort later (listings order by creation, then id).
pub fn new_uuid() -> String {
    const RANDOM_BITS: u32 = 74;
    static LAST: Mutex<(i64, u128)> = Mutex::new((0, 0));
    let now = crate::now_millis();
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let random = if now <= last.0 {
        last.1.wrapping_add(1) & ((1u128 << RANDOM_BITS) - 1)
    } else {
        random_80() >> (80 - RANDOM_BITS)
    };
    let millis = now.max(last.0);
    *last = (millis, random);
    let millis = u128::from(u64::try_from(millis).unwrap_or_default()) & ((1 << 48) - 1);
    let rand_a = (random >> 62) & 0xfff;
    let rand_b = random & ((1u128 << 62) - 1);
    let value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b;
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn random_80() -> u128 {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .fold(0u128, |acc, byte| (acc << 8) | u128::from(*byte))
}

#[cfg(test)]
fn new_ulid_at(millis: i64) -> String {
    encode_ulid(millis, random_80())
}

fn encode_ulid(millis: i64, random: u128) -> String {
    let value: u128 = ((millis as u128 & 0xFFFF_FFFF_FFFF) << 80) | random;
    let mut out = [0u8; 26];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (25 - i);
        *slot = CROCKFORD[((value >> shift) & 0x1F) as usize];
    }
    String::from_utf8(out.to_vec()).expect("crockford alphabet is ascii")
}

/// Checks an id received from a client: ids are opaque, but they must be non-empty, at most
/// 256 characters and free of characters that cannot appear in a URL path segment.
///
/// # Errors
/// Returns a message that says what is wrong with the id.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an id must not be empty".to_owned());
    }
    if id.len() > 256 {
        return Err(format!(
            "id is {} characters long; at most 256 are allowed",
            id.len()
        ));
    }
    if let Some(bad) = id.chars().find(|c| {
        c.is_control() || c.is_whitespace() || matches!(c, '/' | '?' | '#' | ',' | '%' | '\\')
    }) {
        return Err(format!(
            "id {id:?} contains the character {bad:?}, which ids may not contain"
        ));
    }
    Ok(())
}

/// Declares an id type: a string id that cannot be passed where another kind of id is meant.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        typed_id!($(#[$doc])* $name, check_client_id);
    };
    ($(#[$doc:meta])* $name:ident, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses an id received from a client ([`check_client_id`], or the type's own
            /// check).
            ///
            /// # Errors
            /// Returns a message that says what is wrong with the id.
            pub fn parse(id: &str) -> Result<Self, String> {
                $check(id)?;
                Ok(Self(id.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// An id Lakeport made or read back from its own store.
        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl<T: AsRef<str> + ?Sized> From<&T> for $name {
            fn from(id: &T) -> Self {
                Self(id.as_ref().to_owned())
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

typed_id!(
    /// A batch's id (a ULID when Lakeport made it).
    BatchId
);
typed_id!(
    /// A dataset's id (24 lower-case hex characters when Lakeport made it).
    DatasetId
);
typed_id!(
    /// A Schema Registry resource's id: its `$id` (a URI, so it holds slashes) or its
    /// `meta:altId`. A schema's id (a dataset's `schemaRef.id`) is one.
    ResourceId,
    check_resource_id
);

typed_id!(
    /// A Query Service query's or query template's id (a UUID when Lakeport made it).
    QsObjectId,
    check_qs_object_id
);

/// The longest query or template id accepted.
pub const MAX_QS_OBJECT_ID_CHARS: usize = 64;

/// Checks a query or template id received from a client: 1 to [`MAX_QS_OBJECT_ID_CHARS`]
/// ASCII letters, digits, `-` and `_` (a UUID is one).
///
/// # Errors
/// Returns a message that says what is wrong with the id.
pub fn check_qs_object_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.len() <= MAX_QS_OBJECT_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a query or template id (1 to {MAX_QS_OBJECT_ID_CHARS} letters, digits, - and _)"
        ))
    }
}

/// The longest resource id accepted (a `$id` is a URI of the tenant's namespace).
pub const MAX_RESOURCE_ID_CHARS: usize = 1024;

/// Checks a Schema Registry id received from a client: non-empty, at most
/// [`MAX_RESOURCE_ID_CHARS`] characters, without control characters or white space.
///
/// # Errors
/// Returns a message that says what is wrong with the id.
pub fn check_resource_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an id must not be empty".to_owned());
    }
    let chars = id.chars().count();
    if chars > MAX_RESOURCE_ID_CHARS {
        return Err(format!(
            "id is {chars} characters long; at most {MAX_RESOURCE_ID_CHARS} are allowed"
        ));
    }
    if let Some(bad) = id.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "id {id:?} contains the character {bad:?}, which ids may not contain"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_24_lower_hex() {
        let id = new_object_id();
        assert_eq!(id.len(), 24);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let later = new_object_id();
        assert!(id < later, "{id} < {later}");
    }

    #[test]
    fn ulids_of_one_process_are_monotonic() {
        let ids: Vec<String> = (0..1000).map(|_| new_ulid()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn ulids_are_26_crockford_chars_and_sort_by_time() {
        let early = new_ulid_at(1_700_000_000_000);
        let late = new_ulid_at(1_700_000_000_001);
        assert_eq!(early.len(), 26);
        assert!(early.bytes().all(|b| CROCKFORD.contains(&b)));
        assert!(early < late);
        assert!(new_ulid().starts_with('0'));
    }

    #[test]
    fn resource_ids_are_checked() {
        let id = ResourceId::parse("https://ns.adobe.com/acme/schemas/a1").unwrap();
        assert_eq!(id, "https://ns.adobe.com/acme/schemas/a1");
        assert!(ResourceId::parse("_acme.schemas.a1").is_ok());
        assert!(ResourceId::parse("").is_err());
        assert!(ResourceId::parse("a\0b").is_err());
        assert!(ResourceId::parse("a b").is_err());
        assert!(ResourceId::parse(&"x".repeat(MAX_RESOURCE_ID_CHARS + 1)).is_err());
        assert!(BatchId::parse("https://ns.adobe.com/x").is_err());
    }

    #[test]
    fn client_ids_are_checked() {
        assert!(check_client_id("01HV6Z3K8Q2M4N5P6R7S8T9VWX").is_ok());
        assert!(check_client_id("0b7c1f2e-aaaa-4bbb-8ccc-0123456789ab").is_ok());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("a/b").is_err());
        assert!(check_client_id(&"x".repeat(257)).is_err());
    }
}

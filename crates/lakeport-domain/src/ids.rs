//! Identifier generation and validation (spec §1.3).

use rand::RngCore;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Returns a new 24-character lower-case hex id, the form AEP uses for datasets and views.
pub fn new_object_id() -> String {
    let mut bytes = [0u8; 12];
    // The first four bytes are the creation second, like a MongoDB ObjectId, so ids of
    // objects created later sort later.
    let seconds = (crate::now_millis() / 1000) as u32;
    bytes[..4].copy_from_slice(&seconds.to_be_bytes());
    rand::rng().fill_bytes(&mut bytes[4..]);
    let mut out = String::with_capacity(24);
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Returns a new 26-character ULID (Crockford base32, upper case), the form of batch ids.
pub fn new_ulid() -> String {
    new_ulid_at(crate::now_millis())
}

fn new_ulid_at(millis: i64) -> String {
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut value: u128 = (millis as u128 & 0xFFFF_FFFF_FFFF) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= (*byte as u128) << (8 * (9 - i));
    }
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
        assert_ne!(id, new_object_id());
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
    fn client_ids_are_checked() {
        assert!(check_client_id("01HV6Z3K8Q2M4N5P6R7S8T9VWX").is_ok());
        assert!(check_client_id("0b7c1f2e-aaaa-4bbb-8ccc-0123456789ab").is_ok());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("a/b").is_err());
        assert!(check_client_id(&"x".repeat(257)).is_err());
    }
}

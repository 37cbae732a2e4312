//! Feature flag and gradual rollout, exactly as the deployment checklist's `should_use_realtime`:
//! `bucket = int(md5(str(user_id)).hexdigest(), 16) % 100`, realtime if `bucket < percent`.

use md5::{Digest, Md5};

/// The user's rollout bucket 0..=99: the MD5 digest read as a big-endian 128-bit integer, mod 100.
pub fn bucket(user_id: &str) -> u8 {
    let digest = Md5::digest(user_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    // The remainder is < 100, so it fits in a u8.
    (u128::from_be_bytes(bytes) % 100) as u8
}

/// Whether `user_id` may use the realtime API given the flag and the rollout percentage.
pub fn realtime_allowed(enabled: bool, percent: u8, user_id: &str) -> bool {
    enabled && bucket(user_id) < percent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_python_hashlib() {
        // python3 -c "import hashlib; print(int(hashlib.md5(b'alice').hexdigest(), 16) % 100)"
        assert_eq!(bucket("alice"), 0);
        assert_eq!(bucket("bob"), 32);
        assert_eq!(bucket("user-1"), 20);
        assert_eq!(bucket("00000000-0000-0000-0000-000000000000"), 47);
    }

    #[test]
    fn percent_edges() {
        assert!(!realtime_allowed(false, 100, "alice"));
        assert!(!realtime_allowed(true, 0, "alice"));
        assert!(realtime_allowed(true, 1, "alice"));
        assert!(!realtime_allowed(true, 32, "bob"));
        assert!(realtime_allowed(true, 33, "bob"));
    }
}

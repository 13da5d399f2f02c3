//! Page tokens: opaque to clients and bound to the query that issued them.
//!
//! A token carries the position to continue from and a keyed hash (SHA-256 over a per-process
//! secret, the query's scope and the position). A token presented with another query (another
//! meeting, another filter), altered, or made up fails the check and is INVALID_ARGUMENT, so a client
//! can never page through something it did not ask for or skip the check by writing its own token.
//! The secret is drawn when the server starts, so tokens do not outlive the server process: after a
//! restart a client starts its listing again (the error says so).

use sha2::{Digest, Sha256};
use tonic::Status;

/// Bytes of the keyed hash kept in a token: enough that guessing one is hopeless.
const MAC_BYTES: usize = 12;

pub struct PageTokens {
    secret: [u8; 32],
}

impl PageTokens {
    /// A fresh secret for this process.
    pub fn new() -> Self {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self { secret }
    }

    fn mac(&self, scope: &str, position: i64) -> [u8; MAC_BYTES] {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        // Length-prefixed so no two (scope, position) pairs hash the same bytes.
        hasher.update((scope.len() as u64).to_be_bytes());
        hasher.update(scope.as_bytes());
        hasher.update(position.to_be_bytes());
        let digest = hasher.finalize();
        let mut mac = [0u8; MAC_BYTES];
        mac.copy_from_slice(&digest[..MAC_BYTES]);
        mac
    }

    /// A token to continue the query named by `scope` from `position`.
    pub fn issue(&self, scope: &str, position: i64) -> String {
        let mut raw = position.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.mac(scope, position));
        hex::encode(raw)
    }

    /// The position in `token`, if this process issued it for the query named by `scope`.
    pub fn redeem(&self, scope: &str, token: &str) -> Result<i64, Status> {
        let invalid = || {
            Status::invalid_argument(
                "page_token is not valid for this request: pass the next_page_token of the previous page with the same filters, unchanged (tokens also expire when the server restarts); to start again, leave page_token empty",
            )
        };
        let raw = hex::decode(token.trim()).map_err(|_| invalid())?;
        if raw.len() != 8 + MAC_BYTES {
            return Err(invalid());
        }
        let (position, mac) = raw.split_at(8);
        let position = i64::from_be_bytes(position.try_into().map_err(|_| invalid())?);
        // Compared whole rather than byte by byte with an early exit, so timing does not tell a
        // forger how much of a guess was right.
        let expected = self.mac(scope, position);
        let differing = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differing != 0 {
            return Err(invalid());
        }
        Ok(position)
    }
}

impl Default for PageTokens {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_only_for_its_own_query_and_unchanged() {
        let tokens = PageTokens::new();
        let token = tokens.issue("segments:a", 500);
        assert_eq!(tokens.redeem("segments:a", &token).unwrap(), 500);
        assert!(tokens.redeem("segments:b", &token).is_err());
        // Any changed character is caught, including a forged position.
        let mut forged = token.clone().into_bytes();
        forged[15] = if forged[15] == b'0' { b'1' } else { b'0' };
        assert!(tokens
            .redeem("segments:a", &String::from_utf8(forged).unwrap())
            .is_err());
        for bad in ["", "p12", "zz", &token[..10]] {
            let e = tokens.redeem("segments:a", bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
        // Another process (another secret) does not accept it.
        assert!(PageTokens::new().redeem("segments:a", &token).is_err());
    }
}

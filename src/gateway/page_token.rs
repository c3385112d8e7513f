//! ListDocuments page tokens: opaque to callers and bound to the owner they
//! were issued to.
//!
//! A token is the page cursor (the created time and id of the last document
//! of the page) sealed with AES-256-GCM-SIV under a key derived from the
//! Filestack app secret (every replica has it), with the owner as associated
//! data: it reveals nothing, cannot be forged or edited, and another owner's
//! token does not open. A random nonce per token; GCM-SIV stays safe even
//! were a nonce to repeat. Rotating the app secret invalidates outstanding
//! tokens (callers start again from the first page).

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::db::PageCursor;
use crate::gateway::domain::OwnerId;
use crate::gateway::error::GatewayError;
use crate::secret::Secret;

/// Longest token accepted (a sealed cursor is about 100 characters).
const MAX_TOKEN_LEN: usize = 256;
/// Separates this key from every other use of the app secret.
const KEY_LABEL: &[u8] = b"filegate page tokens v1";

/// Seals and opens page tokens.
pub struct PageTokens {
    key: LessSafeKey,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTokens").finish_non_exhaustive()
    }
}

impl PageTokens {
    /// Keys derived from `secret` (HMAC-SHA256 of a fixed label).
    pub fn new(secret: &Secret) -> PageTokens {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(KEY_LABEL);
        let bytes = mac.finalize().into_bytes();
        let key =
            UnboundKey::new(&AES_256_GCM_SIV, &bytes).expect("a 32-byte key suits AES-256-GCM-SIV");
        PageTokens {
            key: LessSafeKey::new(key),
        }
    }

    /// The token for `cursor`, which only `owner` can use.
    pub fn seal(&self, owner: &OwnerId, cursor: &PageCursor) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = Vec::with_capacity(NONCE_LEN + 8 + cursor.id.len() + 16);
        sealed.extend_from_slice(&nonce);
        let mut body = cursor.created_at.to_be_bytes().to_vec();
        body.extend_from_slice(cursor.id.as_bytes());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_str().as_bytes()),
                &mut body,
            )
            .expect("sealing a short cursor cannot fail");
        sealed.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// The cursor sealed in `token`, if `owner` was given it;
    /// INVALID_ARGUMENT (field `page_token`) for anything else.
    pub fn open(&self, owner: &OwnerId, token: &str) -> Result<PageCursor, GatewayError> {
        self.try_open(owner, token).ok_or_else(|| {
            GatewayError::invalid("page_token", "not a token ListDocuments gave this caller")
        })
    }

    fn try_open(&self, owner: &OwnerId, token: &str) -> Option<PageCursor> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut sealed = URL_SAFE_NO_PAD.decode(token).ok()?;
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let mut body = sealed.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&sealed).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_str().as_bytes()), &mut body)
            .ok()?;
        let (time, id) = plain.split_at_checked(8)?;
        Some(PageCursor {
            created_at: i64::from_be_bytes(time.try_into().ok()?),
            id: String::from_utf8(id.to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::PageTokens;
    use crate::db::PageCursor;
    use crate::gateway::domain::OwnerId;
    use crate::secret::Secret;

    fn cursor() -> PageCursor {
        PageCursor {
            created_at: 1_764_000_000_123_456,
            id: "doc_AbCdEfGhIjKlMnOpQrStUvWx".into(),
        }
    }

    #[test]
    fn a_token_opens_for_its_owner_only_and_reveals_nothing() {
        let tokens = PageTokens::new(&Secret::new("app-secret"));
        let (alice, bob) = (
            OwnerId::parse("alice").unwrap(),
            OwnerId::parse("bob").unwrap(),
        );
        let token = tokens.seal(&alice, &cursor());
        assert_eq!(tokens.open(&alice, &token).unwrap(), cursor());
        assert!(tokens.open(&bob, &token).is_err());
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("doc_"), "{text}");
        assert!(!text.contains("1764000000"), "{text}");
        assert_ne!(
            tokens.seal(&alice, &cursor()),
            token,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn edited_forged_and_foreign_tokens_are_refused() {
        let tokens = PageTokens::new(&Secret::new("app-secret"));
        let alice = OwnerId::parse("alice").unwrap();
        let token = tokens.seal(&alice, &cursor());
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            assert!(
                tokens.open(&alice, &URL_SAFE_NO_PAD.encode(&raw)).is_err(),
                "byte {i}"
            );
            raw[i] ^= 1;
        }
        let plain = URL_SAFE_NO_PAD.encode("1764000000123456:doc_AbCdEfGhIjKlMnOpQrStUvWx");
        let other_key = PageTokens::new(&Secret::new("another-secret")).seal(&alice, &cursor());
        for bad in ["", "!!", "AAAA", &plain, &other_key, &"A".repeat(300)] {
            assert!(tokens.open(&alice, bad).is_err(), "{bad}");
        }
    }
}

//! Security policy checks (protocol reference, section 3).
//!
//! A request passes when it carries a policy and signature (query, body
//! fields, form fields or the CDN `security` task) whose HMAC verifies with the
//! app secret over the policy string as received, whose `expiry` is in the
//! future, whose `call` list allows every call the operation needs, and whose
//! `handle` (when set) is the handle the request is about. Every refusal is a
//! 403, a missing policy included. Upload policies must also hold for the
//! file: `maxSize`/`minSize` against the size, and `path`/`container` as
//! regular expressions that must match the whole store path or container.

use std::collections::HashMap;

use crate::emulator::error::{ApiError, unix_now};
use crate::filestack::policy::{Call, Policy, PolicyError, Security};
use crate::secret::Secret;

/// What security the emulator enforces.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The app secret policies are signed with.
    pub app_secret: Secret,
    /// `false` with `--no-security`: every check passes.
    pub enabled: bool,
}

impl Guard {
    /// Checks `security` for an operation needing `calls` on `handle`.
    /// Returns the verified policy (`None` when security is off).
    pub fn check(
        &self,
        security: Option<&Security>,
        calls: &[Call],
        handle: Option<&str>,
    ) -> Result<Option<Policy>, ApiError> {
        if !self.enabled {
            return Ok(None);
        }
        let security = security.ok_or_else(|| {
            ApiError::forbidden("policy error: proper credentials were not provided")
        })?;
        let policy = security.verify(&self.app_secret).map_err(|e| match e {
            PolicyError::BadSignature => ApiError::forbidden("Invalid App policy: bad signature"),
            other => ApiError::forbidden(format!("Invalid App policy: {other}")),
        })?;
        if policy.expiry <= unix_now() {
            return Err(ApiError::forbidden("Invalid App policy: policy expired"));
        }
        if let Some(missing) = calls.iter().find(|c| !policy.allows(**c)) {
            return Err(ApiError::forbidden(format!(
                "Invalid App policy: call {missing} is not allowed"
            )));
        }
        if let (Some(pinned), Some(handle)) = (policy.handle.as_deref(), handle) {
            if pinned != handle {
                return Err(ApiError::forbidden(
                    "Invalid App policy: policy is for another handle",
                ));
            }
        }
        Ok(Some(policy))
    }
}

/// The `policy` and `signature` query parameters, when both are present.
pub fn query_security(query: &HashMap<String, String>) -> Option<Security> {
    Some(Security {
        policy: query.get("policy")?.clone(),
        signature: query.get("signature")?.clone(),
    })
}

/// Checks an upload against the policy's size, path and container rules.
pub fn check_store_rules(
    policy: Option<&Policy>,
    size: Option<u64>,
    path: Option<&str>,
    container: Option<&str>,
) -> Result<(), ApiError> {
    let Some(policy) = policy else {
        return Ok(());
    };
    if let (Some(max), Some(size)) = (policy.max_size, size) {
        if size > max {
            return Err(ApiError::forbidden(
                "Invalid App policy: file exceeds maxSize",
            ));
        }
    }
    if let (Some(min), Some(size)) = (policy.min_size, size) {
        if size < min {
            return Err(ApiError::forbidden(
                "Invalid App policy: file is below minSize",
            ));
        }
    }
    if let Some(rule) = policy.path.as_deref() {
        full_match(rule, path.unwrap_or(""), "path")?;
    }
    if let Some(rule) = policy.container.as_deref() {
        full_match(rule, container.unwrap_or(""), "container")?;
    }
    Ok(())
}

fn full_match(rule: &str, value: &str, what: &str) -> Result<(), ApiError> {
    let regex = regex::Regex::new(&format!("^(?:{rule})$"))
        .map_err(|_| ApiError::forbidden(format!("Invalid App policy: bad {what} pattern")))?;
    if regex.is_match(value) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Invalid App policy: {what} not allowed"
        )))
    }
}

/// Checks that `given` is the configured API key (400 otherwise).
pub fn check_apikey(given: Option<&str>, expected: &str) -> Result<(), ApiError> {
    match given {
        Some(key) if key == expected => Ok(()),
        Some(_) => Err(ApiError::bad_request("Invalid Application: unknown apikey")),
        None => Err(ApiError::bad_request("invalid params: apikey is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::{Guard, check_store_rules};
    use crate::filestack::policy::{Call, Policy, Security};
    use crate::secret::Secret;

    fn guard() -> Guard {
        Guard {
            app_secret: Secret::new("s"),
            enabled: true,
        }
    }

    fn far() -> i64 {
        crate::emulator::error::unix_now() + 3600
    }

    #[test]
    fn a_policy_pinned_to_another_handle_is_refused() {
        let policy = Policy::new(far(), &[Call::Read]).with_handle("AAA");
        let security = Security::sign(&policy, &Secret::new("s"));
        assert!(
            guard()
                .check(Some(&security), &[Call::Read], Some("AAA"))
                .is_ok()
        );
        let refused = guard().check(Some(&security), &[Call::Read], Some("BBB"));
        assert_eq!(refused.map(|_| ()).unwrap_err().status().as_u16(), 403);
    }

    #[test]
    fn path_rules_must_match_the_whole_path() {
        let policy = Policy::new(far(), &[Call::Pick]).with_path("uploads/.*");
        assert!(check_store_rules(Some(&policy), None, Some("uploads/a.txt"), None).is_ok());
        assert!(check_store_rules(Some(&policy), None, Some("x/uploads/a"), None).is_err());
        assert!(check_store_rules(Some(&policy), None, None, None).is_err());
    }
}

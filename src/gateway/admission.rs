//! Admission control for uploads: a cap on concurrent uploads and a global
//! byte budget for their buffers. An upload reserves what its buffers can
//! hold at most (its parts: the declared size, capped at part size × (parts
//! in flight + 1); plus one gRPC message and its stream window) before a
//! byte flows, and gives it back when it ends, however it ends. Past the
//! limits, callers wait up to the admission timeout (backpressure), then get
//! RESOURCE_EXHAUSTED with RetryInfo.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::gateway::error::GatewayError;

/// The limits, shared by every upload of the process.
#[derive(Debug, Clone)]
pub struct UploadAdmission {
    slots: Arc<Semaphore>,
    budget: Arc<Semaphore>,
    budget_bytes: u64,
    max_per_upload: u32,
    max_uploads: usize,
    wait: Duration,
}

/// What an admitted upload holds until it ends.
#[derive(Debug)]
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// How busy the uploads are (for `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionGauge {
    pub active_uploads: usize,
    pub reserved_bytes: u64,
    pub budget_bytes: u64,
}

impl UploadAdmission {
    /// `max_per_upload` (the largest reservation) must fit in the budget: a
    /// budget too small for one upload is a configuration error.
    pub fn new(
        max_uploads: usize,
        budget_bytes: u64,
        max_per_upload: u64,
        wait: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            max_uploads >= 1,
            "at least one concurrent upload must be allowed"
        );
        anyhow::ensure!(
            max_per_upload <= budget_bytes,
            "the upload memory budget ({budget_bytes} bytes) is smaller than one upload's buffers ({max_per_upload} bytes): raise it or lower the part size or parts in flight"
        );
        let max_per_upload = u32::try_from(max_per_upload)
            .map_err(|_| anyhow::anyhow!("one upload's buffers must stay under 4 GiB"))?;
        let permits = usize::try_from(budget_bytes)?.min(Semaphore::MAX_PERMITS);
        Ok(Self {
            slots: Arc::new(Semaphore::new(max_uploads)),
            budget: Arc::new(Semaphore::new(permits)),
            budget_bytes: permits as u64,
            max_per_upload,
            max_uploads,
            wait,
        })
    }

    /// Waits for a slot and `bytes` of the budget (at most the largest
    /// reservation), at most the admission wait.
    pub async fn admit(&self, bytes: u64) -> Result<Admitted, GatewayError> {
        let need = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .min(self.max_per_upload);
        let acquire = async {
            let slot = self.slots.clone().acquire_owned().await.ok()?;
            let bytes = self.budget.clone().acquire_many_owned(need).await.ok()?;
            Some(Admitted {
                _slot: slot,
                _bytes: bytes,
            })
        };
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Some(admitted)) => Ok(admitted),
            Ok(None) | Err(_) => Err(GatewayError::ResourceExhausted {
                what: "too many uploads in progress",
                reason: "RESOURCE_EXHAUSTED",
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    pub fn gauge(&self) -> AdmissionGauge {
        let free_bytes = self.budget.available_permits() as u64;
        AdmissionGauge {
            active_uploads: self.max_uploads - self.slots.available_permits(),
            reserved_bytes: self.budget_bytes - free_bytes,
            budget_bytes: self.budget_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::UploadAdmission;

    #[tokio::test]
    async fn uploads_past_the_budget_wait_then_are_refused_and_permits_come_back() {
        let admission = UploadAdmission::new(8, 100, 40, Duration::from_millis(50)).unwrap();
        let a = admission.admit(40).await.unwrap();
        let b = admission.admit(40).await.unwrap();
        assert_eq!(admission.gauge().reserved_bytes, 80);
        assert!(
            admission.admit(40).await.is_err(),
            "a third upload does not fit"
        );
        drop(a);
        let c = admission.admit(40).await.unwrap();
        drop((b, c));
        assert_eq!(admission.gauge().reserved_bytes, 0);
        assert_eq!(admission.gauge().active_uploads, 0);
    }

    #[tokio::test]
    async fn the_concurrency_cap_holds_even_with_budget_left() {
        let admission = UploadAdmission::new(1, 1000, 10, Duration::from_millis(20)).unwrap();
        let _a = admission.admit(10).await.unwrap();
        assert!(admission.admit(10).await.is_err());
    }

    #[tokio::test]
    async fn a_reservation_is_capped_at_the_largest_one() {
        let admission = UploadAdmission::new(8, 100, 40, Duration::from_millis(20)).unwrap();
        let _a = admission.admit(u64::MAX).await.unwrap();
        assert_eq!(admission.gauge().reserved_bytes, 40);
        let _small = admission.admit(5).await.unwrap();
        assert_eq!(admission.gauge().reserved_bytes, 45);
    }

    #[test]
    fn a_budget_smaller_than_one_upload_is_a_configuration_error() {
        assert!(UploadAdmission::new(1, 10, 11, Duration::ZERO).is_err());
    }
}

//! Admission control for uploads: a cap on concurrent uploads and a global
//! byte budget for their buffers. An upload reserves what its buffers can
//! hold at most (its parts: the declared size, capped at part size × (parts
//! in flight + 1); plus one gRPC message and its stream window) before a
//! byte flows, and gives it back when it ends, however it ends. Past the
//! limits, callers wait up to the admission timeout (backpressure), then get
//! RESOURCE_EXHAUSTED with RetryInfo.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::gateway::error::GatewayError;
use crate::gateway::metrics::GatewayMetrics;

/// What one upload's buffers can hold at most: its parts (the declared
/// size, or one part when undeclared, capped at the parts in flight plus
/// the one being read) and `overhead` (one gRPC message and its HTTP/2
/// stream window). The one place this is computed: the largest reservation
/// sizes the budget check at start-up, each upload reserves its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadBuffers {
    pub part_size: u64,
    pub parts_in_flight: u64,
    pub overhead: u64,
}

impl UploadBuffers {
    /// The reservation of an upload that declared `declared` bytes.
    pub fn reservation(&self, declared: Option<u64>) -> u64 {
        let most_parts = self.part_size.saturating_mul(self.parts_in_flight + 1);
        declared
            .unwrap_or(self.part_size)
            .min(most_parts)
            .saturating_add(self.overhead)
    }

    /// The largest reservation of any upload.
    pub fn largest(&self) -> u64 {
        self.reservation(Some(u64::MAX))
    }
}

/// The limits, shared by every upload of the process.
#[derive(Debug, Clone)]
pub struct UploadAdmission {
    slots: Arc<Semaphore>,
    budget: Arc<Semaphore>,
    budget_bytes: u64,
    buffers: UploadBuffers,
    max_uploads: usize,
    wait: Duration,
    metrics: GatewayMetrics,
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
    /// The largest reservation must fit in the budget: a budget too small
    /// for one upload is a configuration error.
    pub fn new(
        max_uploads: usize,
        budget_bytes: u64,
        buffers: UploadBuffers,
        wait: Duration,
    ) -> anyhow::Result<Self> {
        let max_per_upload = buffers.largest();
        anyhow::ensure!(
            max_uploads >= 1,
            "at least one concurrent upload must be allowed"
        );
        anyhow::ensure!(
            max_per_upload <= budget_bytes,
            "the upload memory budget ({budget_bytes} bytes) is smaller than one upload's buffers ({max_per_upload} bytes): raise it or lower the part size or parts in flight"
        );
        anyhow::ensure!(
            u32::try_from(max_per_upload).is_ok(),
            "one upload's buffers must stay under 4 GiB"
        );
        let permits = usize::try_from(budget_bytes)?.min(Semaphore::MAX_PERMITS);
        Ok(Self {
            slots: Arc::new(Semaphore::new(max_uploads)),
            budget: Arc::new(Semaphore::new(permits)),
            budget_bytes: permits as u64,
            buffers,
            max_uploads,
            wait,
            metrics: GatewayMetrics::default(),
        })
    }

    /// The same admission, recording its waits and refusals in `metrics`.
    pub fn with_metrics(mut self, metrics: GatewayMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Waits for a slot and the reservation of an upload that declared
    /// `declared` bytes, at most the admission wait.
    pub async fn admit(&self, declared: Option<u64>) -> Result<Admitted, GatewayError> {
        let need = u32::try_from(self.buffers.reservation(declared)).unwrap_or(u32::MAX);
        let acquire = async {
            let slot = self.slots.clone().acquire_owned().await.ok()?;
            let bytes = self.budget.clone().acquire_many_owned(need).await.ok()?;
            Some(Admitted {
                _slot: slot,
                _bytes: bytes,
            })
        };
        let started = Instant::now();
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Some(admitted)) => {
                self.metrics.admitted(started.elapsed());
                Ok(admitted)
            }
            Ok(None) | Err(_) => Err({
                self.metrics.refused_admission();
                GatewayError::ResourceExhausted {
                    what: "too many uploads in progress",
                    reason: "RESOURCE_EXHAUSTED",
                    retry_after: Duration::from_secs(1),
                }
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

    use super::{UploadAdmission, UploadBuffers};

    /// Parts of 10 bytes, 3 in flight: at most 40 bytes of parts.
    const BUFFERS: UploadBuffers = UploadBuffers {
        part_size: 10,
        parts_in_flight: 3,
        overhead: 0,
    };

    #[tokio::test]
    async fn uploads_past_the_budget_wait_then_are_refused_and_permits_come_back() {
        let admission = UploadAdmission::new(8, 100, BUFFERS, Duration::from_millis(50)).unwrap();
        let a = admission.admit(Some(40)).await.unwrap();
        let b = admission.admit(Some(40)).await.unwrap();
        assert_eq!(admission.gauge().reserved_bytes, 80);
        assert!(
            admission.admit(Some(40)).await.is_err(),
            "a third upload does not fit"
        );
        drop(a);
        let c = admission.admit(Some(40)).await.unwrap();
        drop((b, c));
        assert_eq!(admission.gauge().reserved_bytes, 0);
        assert_eq!(admission.gauge().active_uploads, 0);
    }

    #[tokio::test]
    async fn the_concurrency_cap_holds_even_with_budget_left() {
        let admission = UploadAdmission::new(1, 1000, BUFFERS, Duration::from_millis(20)).unwrap();
        let _a = admission.admit(None).await.unwrap();
        assert!(admission.admit(None).await.is_err());
    }

    #[tokio::test]
    async fn a_reservation_is_capped_at_the_largest_one() {
        let admission = UploadAdmission::new(8, 100, BUFFERS, Duration::from_millis(20)).unwrap();
        let _a = admission.admit(Some(u64::MAX)).await.unwrap();
        assert_eq!(admission.gauge().reserved_bytes, 40);
        let _small = admission.admit(Some(5)).await.unwrap();
        assert_eq!(admission.gauge().reserved_bytes, 45);
    }

    #[test]
    fn a_budget_smaller_than_one_upload_is_a_configuration_error() {
        assert!(UploadAdmission::new(1, 39, BUFFERS, Duration::ZERO).is_err());
    }

    #[test]
    fn a_reservation_counts_the_declared_size_one_part_when_undeclared_and_the_overhead() {
        let buffers = UploadBuffers {
            overhead: 7,
            ..BUFFERS
        };
        assert_eq!(buffers.reservation(Some(3)), 3 + 7);
        assert_eq!(buffers.reservation(None), 10 + 7);
        assert_eq!(buffers.reservation(Some(25)), 25 + 7);
        assert_eq!(buffers.reservation(Some(1 << 40)), 40 + 7);
        assert_eq!(buffers.largest(), 40 + 7);
    }
}

//! The open file limit: raised at start-up, and the connection limit fitted
//! to it.

use std::io;

/// Raises the soft limit of open descriptors to the hard limit (as the Go
/// runtime does at start-up) and returns the soft limit then in force;
/// `None` where it cannot be read.
#[cfg(unix)]
pub fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `setrlimit` reads one `rlimit` through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::debug!(
                error = %io::Error::last_os_error(),
                "cannot raise the open file limit"
            );
        }
    }
    // `rlim_t` is narrower than u64 on some targets.
    #[allow(clippy::useless_conversion)]
    Some(u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX))
}

#[cfg(not(unix))]
pub fn raise_descriptor_limit() -> Option<u64> {
    None
}

/// The connections each of `listeners` may hold when the process may open
/// `descriptors` files and keeps `reserve` of them for everything else:
/// `requested`, or less when they would not fit.
pub fn fit_to_descriptors(
    requested: usize,
    listeners: usize,
    descriptors: Option<u64>,
    reserve: u64,
) -> usize {
    let Some(descriptors) = descriptors else {
        return requested;
    };
    let listeners = listeners.max(1) as u64;
    let fits = descriptors.saturating_sub(reserve) / listeners;
    if (requested as u64) <= fits {
        return requested;
    }
    let lowered = usize::try_from(fits).unwrap_or(usize::MAX).max(1);
    tracing::warn!(
        requested,
        lowered,
        descriptors,
        reserve,
        "the open file limit is too low for --max-connections on each listener: serving fewer; raise the hard limit (ulimit -Hn, LimitNOFILE=) for more"
    );
    lowered
}

#[cfg(test)]
mod tests {
    use super::fit_to_descriptors;

    #[test]
    fn the_connection_limit_is_lowered_to_what_the_descriptors_allow() {
        assert_eq!(fit_to_descriptors(10_000, 2, Some(1 << 20), 1024), 10_000);
        assert_eq!(fit_to_descriptors(10_000, 2, Some(20_000), 1000), 9_500);
        assert_eq!(fit_to_descriptors(10_000, 2, Some(1000), 1024), 1);
        assert_eq!(fit_to_descriptors(10_000, 2, None, 1024), 10_000);
    }
}

//! Reading request bodies on either port without letting a client pin memory or a
//! connection: a size cap checked from the declared length, a deadline for the whole
//! body, and a memory budget shared by every body the port is reading.
//!
//! Why each exists (issue 24): a client that declares a body and then sends nothing held
//! its connection for ever, and thirty that sent all but one byte of a 9 MB peer body
//! held 280 MB until the node was killed. The deadline frees the connection; the budget
//! bounds the memory while it lasts.
//!
//! Bodies up to [`SMALL_BODY`] do not draw from the budget: they are what a healthy
//! cluster sends (heartbeats, acknowledgements, appends of a few writes, client
//! requests), so a flood of large bodies cannot starve them, and together they hold at
//! most the connection cap times [`SMALL_BODY`]. Larger ones reserve their declared
//! length before a byte is read, and are refused (503, retry later) when it is not there.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies this small are read without drawing from the port's budget.
pub const SMALL_BODY: usize = 64 << 10;

/// The budget counts whole KiB: a semaphore's permits are `u32`s.
const UNIT: usize = 1 << 10;

/// How one port reads bodies.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// The largest body accepted; a larger declared length is refused unread.
    pub max_body: usize,
    /// How long the whole body may take to arrive once the head has.
    pub timeout: Duration,
    /// Bytes all large bodies being read on this port may hold together.
    pub budget_bytes: usize,
    budget: Arc<Semaphore>,
}

impl BodyLimits {
    /// Limits with a budget of at least `budget_bytes` and never less than one largest
    /// body, so the port can always take one.
    pub fn new(max_body: usize, timeout: Duration, budget_bytes: usize) -> BodyLimits {
        let budget_bytes = budget_bytes.max(max_body);
        let units = units(budget_bytes).min(Semaphore::MAX_PERMITS);
        BodyLimits {
            max_body,
            timeout,
            budget_bytes,
            budget: Arc::new(Semaphore::new(units)),
        }
    }

    /// Bytes of the budget in use now.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        (units(self.budget_bytes).min(Semaphore::MAX_PERMITS) - self.budget.available_permits())
            * UNIT
    }
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// Why a body was not read. Each maps to one answer: 413, 503, 408 or 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body of {declared} bytes exceeds {max} bytes")]
    TooLarge { declared: usize, max: usize },
    #[error("request body exceeds {max} bytes")]
    LimitExceeded { max: usize },
    #[error("the node is reading {budget} bytes of large request bodies already; retry later")]
    Busy { budget: usize },
    #[error("the request body did not arrive within {} ms", .after.as_millis())]
    TimedOut { after: Duration },
    #[error("cannot read the request body: {0}")]
    Read(String),
}

/// A body read whole, and its share of the budget, held until this is dropped.
#[derive(Debug)]
pub struct Body {
    pub bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

/// `r` with `connection: close`: after a body error the rest of the body may still be
/// coming, so the connection cannot carry another request.
pub fn closing<B>(mut r: hyper::Response<B>) -> hyper::Response<B> {
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// The body length a request declares (`Content-Length`), if it does.
pub fn declared_length<B>(req: &Request<B>) -> Option<usize> {
    req.headers()
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads `req`'s body within `limits`. A body without a declared length (chunked) is
/// charged as the largest the port accepts.
pub async fn read_body(req: Request<Incoming>, limits: &BodyLimits) -> Result<Body, BodyError> {
    let declared = declared_length(&req);
    if let Some(n) = declared.filter(|&n| n > limits.max_body) {
        return Err(BodyError::TooLarge {
            declared: n,
            max: limits.max_body,
        });
    }
    let charge = declared.unwrap_or(limits.max_body);
    let held = if charge <= SMALL_BODY {
        None
    } else {
        let want = u32::try_from(units(charge)).unwrap_or(u32::MAX);
        match limits.budget.clone().try_acquire_many_owned(want) {
            Ok(permit) => Some(permit),
            Err(_) => {
                return Err(BodyError::Busy {
                    budget: limits.budget_bytes,
                })
            }
        }
    };
    let read = Limited::new(req.into_body(), limits.max_body).collect();
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(Ok(collected)) => Ok(Body {
            bytes: collected.to_bytes(),
            _held: held,
        }),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::LimitExceeded {
                max: limits.max_body,
            })
        }
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
        Err(_) => Err(BodyError::TimedOut {
            after: limits.timeout,
        }),
    }
}

impl BodyError {
    /// The status this error is answered with.
    pub fn status(&self) -> hyper::StatusCode {
        use hyper::StatusCode;
        match self {
            BodyError::TooLarge { .. } | BodyError::LimitExceeded { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            BodyError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::TimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable code for JSON answers.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } | BodyError::LimitExceeded { .. } => "body_too_large",
            BodyError::Busy { .. } => "busy",
            BodyError::TimedOut { .. } => "body_timeout",
            BodyError::Read(_) => "bad_body",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_never_smaller_than_one_body_and_counts_kib() {
        let l = BodyLimits::new(10 << 20, Duration::from_secs(1), 1 << 20);
        assert_eq!(l.budget_bytes, 10 << 20);
        assert_eq!(l.in_use(), 0);
        let p = l.budget.clone().try_acquire_many_owned(3).unwrap();
        assert_eq!(l.in_use(), 3 << 10);
        drop(p);
        assert_eq!(l.in_use(), 0);
    }
}

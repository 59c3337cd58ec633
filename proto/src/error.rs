//! Service errors: one typed enum for every Pressrun service, mapped to a small fixed set
//! of gRPC codes here and only here. Clients turn a `Status` back into the same enum and
//! act on the variant, never on the message text.

use tonic::{Code, Status};

/// What went wrong in a call, as the caller must act on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or names something invalid: do not retry it unchanged.
    #[error("{0}")]
    InvalidArgument(String),
    /// The named run, bundle or document does not exist here.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already (a run that is running).
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller may not do this (a path outside the server's roots).
    #[error("{0}")]
    PermissionDenied(String),
    /// No or a wrong credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// The system is not in the state the call needs (a missing bundle, a folder that holds
    /// another run): fix that first.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Full: retry later or elsewhere (load shedding).
    #[error("{0}")]
    Busy(String),
    /// Not reachable or shutting down: retry elsewhere.
    #[error("{0}")]
    Unavailable(String),
    /// The deadline passed.
    #[error("{0}")]
    Timeout(String),
    /// The call was cancelled.
    #[error("{0}")]
    Cancelled(String),
    /// A bug or an unexpected failure on the server.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            ServiceError::InvalidArgument(_) => Code::InvalidArgument,
            ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::AlreadyExists(_) => Code::AlreadyExists,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::Busy(_) => Code::ResourceExhausted,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Timeout(_) => Code::DeadlineExceeded,
            ServiceError::Cancelled(_) => Code::Cancelled,
            ServiceError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        let code = e.code();
        let message = match e {
            ServiceError::InvalidArgument(m)
            | ServiceError::NotFound(m)
            | ServiceError::AlreadyExists(m)
            | ServiceError::PermissionDenied(m)
            | ServiceError::Unauthenticated(m)
            | ServiceError::FailedPrecondition(m)
            | ServiceError::Busy(m)
            | ServiceError::Unavailable(m)
            | ServiceError::Timeout(m)
            | ServiceError::Cancelled(m)
            | ServiceError::Internal(m) => m,
        };
        Status::new(code, message)
    }
}

impl From<Status> for ServiceError {
    fn from(s: Status) -> ServiceError {
        let m = s.message().to_string();
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => ServiceError::InvalidArgument(m),
            Code::NotFound => ServiceError::NotFound(m),
            Code::AlreadyExists => ServiceError::AlreadyExists(m),
            Code::PermissionDenied => ServiceError::PermissionDenied(m),
            Code::Unauthenticated => ServiceError::Unauthenticated(m),
            Code::FailedPrecondition | Code::Aborted => ServiceError::FailedPrecondition(m),
            Code::ResourceExhausted => ServiceError::Busy(m),
            Code::Unavailable => ServiceError::Unavailable(m),
            Code::DeadlineExceeded => ServiceError::Timeout(m),
            Code::Cancelled => ServiceError::Cancelled(m),
            // Transport failures (h2 resets, broken connections) arrive as Unknown.
            Code::Unknown => ServiceError::Unavailable(m),
            Code::Ok | Code::Internal | Code::Unimplemented | Code::DataLoss => {
                ServiceError::Internal(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_wire() {
        let all = [
            ServiceError::InvalidArgument("a".into()),
            ServiceError::NotFound("b".into()),
            ServiceError::AlreadyExists("c".into()),
            ServiceError::PermissionDenied("d".into()),
            ServiceError::Unauthenticated("e".into()),
            ServiceError::FailedPrecondition("f".into()),
            ServiceError::Busy("g".into()),
            ServiceError::Unavailable("h".into()),
            ServiceError::Timeout("i".into()),
            ServiceError::Cancelled("j".into()),
            ServiceError::Internal("k".into()),
        ];
        for e in all {
            assert_eq!(ServiceError::from(Status::from(e.clone())), e);
        }
    }
}

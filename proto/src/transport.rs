//! Transport helpers shared by every Pressrun server and client: the bearer-token check
//! and interceptor, and accepted connections with Nagle's algorithm off.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Status};

/// Compares in time independent of where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Server side: requires `authorization: Bearer <token>` when a token is configured.
#[derive(Clone, Default)]
pub struct BearerCheck(pub Option<Arc<str>>);

impl tonic::service::Interceptor for BearerCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else { return Ok(req) };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if same_secret(given.as_bytes(), token.as_bytes()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong bearer token: pass the server's token",
            ))
        }
    }
}

/// Client side: adds `authorization: Bearer <token>` to every call when there is a token.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Builds the interceptor; fails when the token cannot be a header value.
    pub fn new(token: Option<&str>) -> Result<Self, tonic::metadata::errors::InvalidMetadataValue> {
        Ok(Self(
            token.map(|t| format!("Bearer {t}").parse()).transpose()?,
        ))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// Accepted connections with Nagle's algorithm off: small gRPC replies otherwise wait for
/// the peer's delayed ACK (about 40 ms per call on Linux).
pub fn nodelay(
    incoming: tokio_stream::wrappers::TcpListenerStream,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    incoming.map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// A server builder with TLS when a PEM certificate chain and key are given.
pub fn server_builder(
    tls: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<tonic::transport::Server, tonic::transport::Error> {
    let builder = tonic::transport::Server::builder();
    match tls {
        Some((cert, key)) => builder.tls_config(
            tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(cert, key)),
        ),
        None => Ok(builder),
    }
}

/// Wraps a service so every call must carry the bearer token, when there is one.
pub fn with_bearer<S>(
    service: S,
    token: Option<&str>,
) -> tonic::service::interceptor::InterceptedService<S, BearerCheck> {
    tonic::service::interceptor::InterceptedService::new(service, BearerCheck(token.map(Arc::from)))
}

/// A bearer token that cannot be used. An empty or blank token is an error, never a way
/// to turn authentication off.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the token in {0} is empty or blank: put the secret in it, or do not name it")]
    Blank(String),
    #[error("the token in {0} has characters an HTTP header cannot carry")]
    NotHeader(String),
}

/// Reads a bearer token from `file`, else from the `PRESSRUN_TOKEN` variable; `None` when
/// neither is given. Surrounding white space (a trailing newline) is not part of it.
pub fn read_token(file: Option<&Path>) -> Result<Option<String>, TokenError> {
    let (text, source) = match file {
        Some(f) => (
            std::fs::read_to_string(f).map_err(|source| TokenError::Read {
                path: f.display().to_string(),
                source,
            })?,
            f.display().to_string(),
        ),
        None => match std::env::var("PRESSRUN_TOKEN") {
            Ok(t) => (t, "PRESSRUN_TOKEN".to_string()),
            Err(_) => return Ok(None),
        },
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Blank(source));
    }
    if token.parse::<MetadataValue<Ascii>>().is_err() || token.contains(char::is_whitespace) {
        return Err(TokenError::NotHeader(source));
    }
    Ok(Some(token.to_string()))
}

/// Refuses to serve without a token on an address other machines can reach, unless the
/// operator says so (`--allow-unauthenticated`): loopback needs no token.
pub fn check_exposure(
    listen: SocketAddr,
    token: Option<&str>,
    allow_unauthenticated: bool,
) -> Result<(), String> {
    if token.is_some() || allow_unauthenticated || listen.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing to serve on {listen} without a bearer token: pass --token-file (or set \
             PRESSRUN_TOKEN), or --allow-unauthenticated if the network is trusted"
        ))
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn the_check_accepts_only_the_right_token() {
        let mut check = BearerCheck(Some("s3cret".into()));
        let mut with = |t: Option<&str>| {
            let req = Bearer::new(t).unwrap().call(Request::new(())).unwrap();
            check.call(req).is_ok()
        };
        assert!(with(Some("s3cret")));
        assert!(!with(Some("s3cre")));
        assert!(!with(None));
        assert!(BearerCheck(None).call(Request::new(())).is_ok());
    }

    #[test]
    fn blank_tokens_are_errors_not_open_doors() {
        let dir = std::env::temp_dir().join(format!("pressrun-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t");
        for blank in ["", "  \n", "\n"] {
            std::fs::write(&f, blank).unwrap();
            assert!(
                matches!(read_token(Some(&f)), Err(TokenError::Blank(_))),
                "{blank:?}"
            );
        }
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(read_token(Some(&f)).unwrap().as_deref(), Some("s3cret"));
        std::fs::write(&f, "a b").unwrap();
        assert!(matches!(
            read_token(Some(&f)),
            Err(TokenError::NotHeader(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_loopback_may_serve_without_a_token() {
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert!(check_exposure(lo, None, false).is_ok());
        assert!(check_exposure(any, None, false).is_err());
        assert!(check_exposure(any, Some("t"), false).is_ok());
        assert!(check_exposure(any, None, true).is_ok());
    }
}

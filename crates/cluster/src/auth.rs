//! What every call carries: the caller's Weir version and the cluster's
//! token. Clients add both with [`CallHeaders`]; servers check both with
//! [`CallCheck`] before any handler runs, so a process of another version,
//! or a call without the token, is refused with a clear message.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The version every process of a cluster must share: plans are rebuilt
/// from SQL in each process, so they must plan alike.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const VERSION_HEADER: &str = "weir-version";
const AUTHORIZATION: &str = "authorization";

/// Adds the version and token to outgoing calls.
#[derive(Debug, Clone)]
pub struct CallHeaders {
    token: Option<Arc<str>>,
}

impl CallHeaders {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.map(Arc::from),
        }
    }
}

impl Interceptor for CallHeaders {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        metadata.insert(VERSION_HEADER, MetadataValue::from_static(VERSION));
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::invalid_argument("the cluster token is not valid text"))?;
            metadata.insert(AUTHORIZATION, value);
        }
        Ok(request)
    }
}

/// Refuses calls of another version or without the token.
#[derive(Debug, Clone)]
pub struct CallCheck {
    token: Option<Arc<str>>,
}

impl CallCheck {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.map(Arc::from),
        }
    }

    /// Whether an `Authorization` header value carries the token.
    pub fn authorizes(&self, header: Option<&str>) -> bool {
        match &self.token {
            None => true,
            Some(token) => header
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes())),
        }
    }
}

impl Interceptor for CallCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata();
        match metadata.get(VERSION_HEADER).and_then(|v| v.to_str().ok()) {
            Some(VERSION) => {}
            Some(other) => {
                return Err(Status::failed_precondition(format!(
                    "refused: the caller runs Weir {other} and this process runs Weir {VERSION}; \
                     every process of a cluster must run the same version"
                )));
            }
            None => {
                return Err(Status::failed_precondition(format!(
                    "refused: the caller did not say its Weir version (this process runs {VERSION})"
                )));
            }
        }
        let header = metadata.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !self.authorizes(header) {
            return Err(Status::unauthenticated(
                "refused: the call does not carry the cluster's token \
                 (set 'cluster.auth.token' or WEIR_CLUSTER_TOKEN)",
            ));
        }
        Ok(request)
    }
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(headers: &mut CallHeaders, check: &mut CallCheck) -> Result<(), Status> {
        let request = headers.call(Request::new(()))?;
        check.call(request).map(|_| ())
    }

    #[test]
    fn token_and_version_are_checked() {
        let mut check = CallCheck::new(Some("s3cret"));
        assert!(checked(&mut CallHeaders::new(Some("s3cret")), &mut check).is_ok());
        let refused = checked(&mut CallHeaders::new(None), &mut check)
            .err()
            .map(|s| s.code());
        assert_eq!(refused, Some(tonic::Code::Unauthenticated));
        let wrong = checked(&mut CallHeaders::new(Some("guess")), &mut check)
            .err()
            .map(|s| s.code());
        assert_eq!(wrong, Some(tonic::Code::Unauthenticated));

        let mut old = Request::new(());
        old.metadata_mut()
            .insert(VERSION_HEADER, MetadataValue::from_static("0.0.1"));
        let message = CallCheck::new(None)
            .call(old)
            .err()
            .map(|s| s.message().to_string())
            .unwrap_or_default();
        assert!(message.contains("runs Weir 0.0.1"), "{message}");
    }
}

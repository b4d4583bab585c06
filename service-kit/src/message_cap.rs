//! The answer to a gRPC message over the size cap. gRPC's status-code table
//! gives `RESOURCE_EXHAUSTED` for it, and grpc-go and grpc-java answer so;
//! tonic answers `OUT_OF_RANGE`. A client that retries on one and not the
//! other, or an operator who alerts on one, should not have to know which
//! server it hit, so every server here answers `RESOURCE_EXHAUSTED`.
//!
//! Only tonic's codec answers `OUT_OF_RANGE` here (our handlers never do),
//! and only for a message over the cap, in a response without a body (the
//! call failed before a handler ran), so that status in the headers is
//! rewritten.

use http::HeaderValue;

const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";

/// The default cap on a decoded request message, as tonic's.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Rewrites an `OUT_OF_RANGE` answered in `response`'s headers to
/// `RESOURCE_EXHAUSTED`.
pub fn as_resource_exhausted<B>(response: &mut http::Response<B>) {
    let headers = response.headers_mut();
    if headers
        .get("grpc-status")
        .is_some_and(|v| v == OUT_OF_RANGE)
    {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: &str) -> http::Response<()> {
        let mut response = http::Response::new(());
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_str(status).unwrap());
        response
    }

    #[test]
    fn an_oversized_message_is_resource_exhausted() {
        let mut response = answered(OUT_OF_RANGE);
        as_resource_exhausted(&mut response);
        assert_eq!(response.headers()["grpc-status"], RESOURCE_EXHAUSTED);
    }

    #[test]
    fn other_answers_are_left_alone() {
        for status in ["0", "3", "5", "8", "13"] {
            let mut response = answered(status);
            as_resource_exhausted(&mut response);
            assert_eq!(response.headers()["grpc-status"], status);
        }
        let mut streaming = http::Response::new(());
        as_resource_exhausted(&mut streaming);
        assert!(streaming.headers().get("grpc-status").is_none());
    }
}

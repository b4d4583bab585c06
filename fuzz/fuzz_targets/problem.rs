//! The one gRPC → HTTP mapping, on any status a backend could send (any
//! code, message and details bytes): never a panic; the answer is a problem
//! document, and a caller's mistake (invalid argument, not found, already
//! exists, failed precondition, unauthenticated, permission denied) is
//! never a 5xx.
#![no_main]

use axum::response::IntoResponse as _;
use bytes::Bytes;
use gateway::ApiError;
use libfuzzer_sys::fuzz_target;
use tonic::Code;

fuzz_target!(|input: (i32, &str, &[u8])| {
    let (code, message, details) = input;
    let code = Code::from_i32(code);
    let status = tonic::Status::with_details(code, message, Bytes::copy_from_slice(details));
    let response = ApiError::from(status).into_response();
    let callers_mistake = matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::Unauthenticated
            | Code::PermissionDenied
    );
    if callers_mistake {
        assert!(
            response.status().is_client_error(),
            "{code:?} → {}",
            response.status()
        );
    }
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "application/problem+json"
    );
});

//! Configuration values an operator types: a retry schedule, the callers'
//! `role=token` list and an encryption key. Never a panic; a schedule that
//! parses builds a policy or is refused with a reason.
#![no_main]

use dispatcher_service::domain::RetryPolicy;
use libfuzzer_sys::fuzz_target;
use registry_service::Cipher;
use secrecy::SecretString;
use service_kit::callers::Callers;

fuzz_target!(|input: (&str, &str, &str)| {
    let (schedule, callers, key) = input;
    if let Ok(waits) = RetryPolicy::parse_schedule(schedule) {
        let _ = RetryPolicy::new(waits, 0.1, std::time::Duration::from_secs(3600));
    }
    let _ = Callers::parse(callers.split(','), registry_service::CALLER_ROLES);
    let _ = Cipher::from_base64(&SecretString::from(key.to_owned()));
});

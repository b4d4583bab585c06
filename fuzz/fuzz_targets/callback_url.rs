//! The registry's callback URL rules, on any text: never a panic; a URL
//! that passes is https, at most 2,048 characters, and passes again as
//! itself (the stored form is as valid as what the partner sent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_service::domain::UrlPolicy;
use registry_service::domain::callback_url::MAX_URL_LENGTH;

fuzz_target!(|raw: &str| {
    let policy = UrlPolicy::default();
    if let Ok(url) = policy.parse(raw) {
        let stored = url.as_str();
        assert!(stored.starts_with("https://"), "{stored}");
        assert!(raw.len() <= MAX_URL_LENGTH);
        let again = policy.parse(stored).expect("a stored URL passes again");
        assert_eq!(again.as_str(), stored);
    }
});

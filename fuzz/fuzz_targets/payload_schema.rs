//! A notification type's payload schema and a payload, both from outside
//! (an operator, a publisher): compiling and applying never panic, and a
//! payload that conforms has no violations while one that does not has at
//! most the listed ones plus a count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use service_kit::payload_schema::PayloadSchema;

// The input is the schema, a NUL byte, then the payload: seeds in the
// corpus are written by hand that way.
fuzz_target!(|input: &[u8]| {
    let Some(split) = input.iter().position(|b| *b == 0) else {
        return;
    };
    let (schema, payload) = (&input[..split], &input[split + 1..]);
    let Ok(schema) = std::str::from_utf8(schema) else {
        return;
    };
    let Ok(schema) = PayloadSchema::compile(schema) else {
        return;
    };
    let violations = schema.violations(payload);
    assert!(
        violations.len() <= 21,
        "{} violations listed",
        violations.len()
    );
    let stored = PayloadSchema::compile(&schema.to_text()).expect("a stored schema compiles");
    assert_eq!(stored.violations(payload), violations);
});

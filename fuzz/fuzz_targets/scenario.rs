//! Fuzz target `scenario`: the body is `netcheck::fuzzing::scenario`, where the replay test also runs it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = netcheck::fuzzing::scenario(text);
    }
});

//! Arbitrary text as a mock scenario file (`mock_openrouter::Scenario::from_json`): never a
//! panic, and a scenario that validates serializes back to JSON that parses, validates and
//! compares equal — the file format loses nothing the mock reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mock_openrouter::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scenario) = Scenario::from_json(text) else {
        return;
    };
    let again = serde_json::to_string(&scenario).expect("a scenario serializes");
    let back = Scenario::from_json(&again).expect("a serialized valid scenario parses");
    assert_eq!(back, scenario);
    // The workload of a valid scenario is defined too.
    let _ = mock_openrouter::workload::generate(&scenario);
});

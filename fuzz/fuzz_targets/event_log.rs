//! Arbitrary text as a worker event log (`llmr_worker::events::parse_log`), and whatever
//! parses through the report (`RunSummary::from_events`) and the timeline
//! (`timeline::render_svg`): logs are read back from disk, so neither may panic on a log that
//! was cut, edited or written by another version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmr_worker::{events, report::RunSummary, timeline};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(events) = events::parse_log(text) else {
        return;
    };
    let _summary = RunSummary::from_events(&events);
    let svg = timeline::render_svg(&events, "fuzz <&> \"title\"");
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
});

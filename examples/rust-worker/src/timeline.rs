//! The timeline picture of one run: an SVG drawn by hand from the event log.
//!
//! Why a picture: the side-by-side table says *how many* calls were wasted; the timeline shows
//! *why* — the outage window where naive keeps hammering a dead provider while our breaker
//! opens, probes half-open and closes again, the retries bunching after a 429 storm, the
//! session limiter deferring jobs, the credit alerts. One glance at ours and naive for the same
//! scenario explains the report.
//!
//! What is drawn (time on x, in seconds):
//!
//! - one lane per model (in order of first appearance): each `request` is one mark at the time
//!   it was sent — a circle for a first attempt, a diamond for a retry — coloured by its
//!   outcome (answered; the mock's fault type; else the failure's kind; a transport failure;
//!   no response in the log), with a thin line to when its response came; each `rejected`
//!   event (a call the breaker did not send) is a hollow circle on the lane's third row;
//! - above the marks, a band per model showing its breaker state over time, one segment per
//!   state period (from `breaker` events; the state before the first transition is that
//!   event's `from`, `closed` when a model has none; naive runs have no breaker and no band);
//! - a lane for `deferred` jobs: a bar from the deferral for its `wait_ms`; on the same lane,
//!   each `hold-for-credit` decision (the account ran out of credit and the job waits for a
//!   top-up) is an amber bar from the hold to the job's next `request` or `job_done` (to its
//!   `after_ms` when the log has neither), so the dry period shows as a block of held jobs;
//! - `alert` markers (raised ▼ / cleared △) with a dashed line across the lanes, and the
//!   `shutdown` as a solid line;
//! - a legend of what appears, and axis ticks in seconds.
//!
//! The output is deterministic (no maps iterated in hash order, numbers formatted with fixed
//! precision), so the same log gives the same bytes; every text is XML-escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::events::{Event, EventBody};

/// The picture's width, px.
pub const WIDTH: u32 = 1200;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 64.0;
const ALERT_LANE: f64 = 26.0;
const LANE: f64 = 70.0;
const DEFER_LANE: f64 = 36.0;
const LEGEND_ITEM_W: f64 = 190.0;
const LEGEND_ROW_H: f64 = 20.0;
const MAX_LABEL_CHARS: usize = 30;

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 (except tab, newline, return).
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// A request's outcome, as coloured.
fn outcome_of(resp: Option<&EventBody>) -> String {
    match resp {
        None => "no response".into(),
        Some(EventBody::Response {
            ok,
            status,
            fault,
            kind,
            ..
        }) => {
            if *ok {
                "ok".into()
            } else if let Some(f) = present(fault) {
                f.to_string()
            } else if status.is_none() || *status == Some(0) {
                // A Go worker may write 0 where the Rust worker writes null.
                "transport failure".into()
            } else if let Some(k) = present(kind) {
                k.to_string()
            } else {
                "error".into()
            }
        }
        Some(_) => "no response".into(),
    }
}

/// Fixed colours for the outcomes the mock and the core name; others get a palette colour
/// picked by a stable hash of the name.
fn outcome_colour(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "#2e7d32",
        "outage" => "#c62828",
        "rate-limit" | "rate-limited" => "#ef6c00",
        "overloaded" => "#ad1457",
        "slow" | "timeout" => "#6a1b9a",
        "gateway-timeout" => "#4527a0",
        "stream-error" => "#00838f",
        "reset" | "network" => "#37474f",
        "context-overflow" => "#1565c0",
        "quota-exhausted" => "#795548",
        "moderation" => "#9e9d24",
        "transport failure" => "#000000",
        "no response" => "#ffffff",
        _ => {
            const PALETTE: [&str; 6] = [
                "#e91e63", "#3f51b5", "#009688", "#ff5722", "#607d8b", "#8bc34a",
            ];
            // FNV-1a: stable across runs and platforms.
            let mut h: u32 = 0x811c_9dc5;
            for b in outcome.bytes() {
                h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
            PALETTE[(h % PALETTE.len() as u32) as usize]
        }
    }
}

/// The legend's order: answered first, then the mock's faults (in the scenario format's
/// order), kinds, and the rest by name.
fn outcome_rank(outcome: &str) -> usize {
    const AFTER_FAULTS: [&str; 8] = [
        "rate-limited",
        "timeout",
        "context-overflow",
        "quota-exhausted",
        "moderation",
        "network",
        "transport failure",
        "no response",
    ];
    std::iter::once("ok")
        .chain(mock_openrouter::scenario::FAULT_TYPES)
        .chain(AFTER_FAULTS)
        .position(|o| o == outcome)
        .unwrap_or(usize::MAX)
}

fn breaker_colour(state: &str) -> &'static str {
    match state {
        "closed" => "#c8e6c9",
        "open" => "#ef9a9a",
        "half-open" => "#ffe082",
        "forced-open" => "#b71c1c",
        "disabled" => "#e0e0e0",
        _ => "#b0bec5",
    }
}

/// Cuts a label to [`MAX_LABEL_CHARS`] characters (never inside a character).
fn short(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// Seconds for a tick label: whole seconds, or one decimal below a second's step.
fn secs(ms: u64, step_ms: u64) -> String {
    if step_ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    }
}

/// The tick step: the smallest "nice" step giving at most 12 ticks.
fn tick_step(end_ms: u64) -> u64 {
    const STEPS: [u64; 14] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 1_800_000,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| end_ms.div_ceil(*s) <= 12)
        .unwrap_or_else(|| end_ms.div_ceil(12).div_ceil(3_600_000).max(1) * 3_600_000)
}

struct Mark<'a> {
    t_ms: u64,
    job: &'a str,
    attempt: u32,
    response: Option<(u64, &'a EventBody)>,
}

struct Lane<'a> {
    model: &'a str,
    requests: Vec<Mark<'a>>,
    rejected: Vec<(u64, &'a str, u64)>,
    transitions: Vec<(u64, &'a str, &'a str)>,
}

/// Renders one run as an SVG document, `title` on top. Deterministic for the same input.
pub fn render_svg(events: &[Event], title: &str) -> String {
    let mut lanes: Vec<Lane<'_>> = Vec::new();
    let mut lane_of: BTreeMap<&str, usize> = BTreeMap::new();
    // (job, attempt) → (lane, index of the mark) for requests still waiting for a response.
    let mut waiting: BTreeMap<(&str, u32), Vec<(usize, usize)>> = BTreeMap::new();
    let mut deferred: Vec<(u64, &str, &str, u64)> = Vec::new();
    // (from, job, longest hold, until): one per `hold-for-credit` decision.
    let mut holds: Vec<(u64, &str, u64, Option<u64>)> = Vec::new();
    // job → its hold still waiting for the job's next request or job_done.
    let mut open_hold: BTreeMap<&str, usize> = BTreeMap::new();
    let mut alerts: Vec<(u64, &str, &str, f64)> = Vec::new();
    let mut shutdown: Option<(u64, &str)> = None;
    let mut run: Option<(&str, &str, &str)> = None;
    let mut end_ms: u64 = 0;

    fn lane_index<'a>(
        lanes: &mut Vec<Lane<'a>>,
        lane_of: &mut BTreeMap<&'a str, usize>,
        model: &'a str,
    ) -> usize {
        let model = if model.is_empty() {
            "(no model)"
        } else {
            model
        };
        *lane_of.entry(model).or_insert_with(|| {
            lanes.push(Lane {
                model,
                requests: Vec::new(),
                rejected: Vec::new(),
                transitions: Vec::new(),
            });
            lanes.len() - 1
        })
    }

    for e in events {
        end_ms = end_ms.max(e.t_ms);
        match &e.body {
            EventBody::RunStart {
                scenario,
                policy,
                surface,
                ..
            } => {
                run.get_or_insert((scenario, policy, surface));
            }
            EventBody::Request {
                job,
                model,
                attempt,
                ..
            } => {
                if let Some(h) = open_hold.remove(job.as_str()) {
                    holds[h].3 = Some(e.t_ms);
                }
                let l = lane_index(&mut lanes, &mut lane_of, model);
                let lane = &mut lanes[l];
                lane.requests.push(Mark {
                    t_ms: e.t_ms,
                    job,
                    attempt: *attempt,
                    response: None,
                });
                waiting
                    .entry((job.as_str(), *attempt))
                    .or_default()
                    .push((l, lane.requests.len() - 1));
            }
            EventBody::Response { job, attempt, .. } => {
                if let Some(q) = waiting.get_mut(&(job.as_str(), *attempt))
                    && !q.is_empty()
                {
                    let (l, i) = q.remove(0);
                    if let Some(m) = lanes.get_mut(l).and_then(|l| l.requests.get_mut(i)) {
                        m.response = Some((e.t_ms, &e.body));
                    }
                }
            }
            EventBody::Rejected {
                job,
                model,
                retry_in_ms,
            } => {
                let l = lane_index(&mut lanes, &mut lane_of, model);
                lanes[l].rejected.push((e.t_ms, job, *retry_in_ms));
            }
            EventBody::Breaker { model, from, to } => {
                let l = lane_index(&mut lanes, &mut lane_of, model);
                lanes[l].transitions.push((e.t_ms, from, to));
            }
            EventBody::Trim { model, .. } => {
                lane_index(&mut lanes, &mut lane_of, model);
            }
            EventBody::Deferred {
                job,
                session,
                wait_ms,
            } => {
                end_ms = end_ms.max(e.t_ms.saturating_add(*wait_ms));
                deferred.push((e.t_ms, job, session, *wait_ms));
            }
            EventBody::Alert {
                alert,
                state,
                value,
            } => alerts.push((e.t_ms, alert, state, *value)),
            EventBody::Shutdown { signal, .. } => shutdown = Some((e.t_ms, signal)),
            EventBody::Decision {
                job,
                decision,
                after_ms,
                ..
            } if decision == "hold-for-credit" => {
                let longest = after_ms.unwrap_or(0);
                end_ms = end_ms.max(e.t_ms.saturating_add(longest));
                open_hold.insert(job, holds.len());
                holds.push((e.t_ms, job, longest, None));
            }
            EventBody::JobDone { job, .. } => {
                if let Some(h) = open_hold.remove(job.as_str()) {
                    holds[h].3 = Some(e.t_ms);
                }
            }
            EventBody::Decision { .. } | EventBody::RunEnd { .. } => {}
        }
    }

    let naive = run.is_some_and(|(_, policy, _)| policy == "naive");
    let step = tick_step(end_ms.max(1));
    let ticks = end_ms.max(1).div_ceil(step);
    let span = (ticks.saturating_mul(step)).max(1) as f64;
    let plot_w = f64::from(WIDTH) - LEFT - RIGHT;
    let x = |t: u64| LEFT + (t as f64) * plot_w / span;

    // Legend entries, known before the height is.
    let mut outcomes: Vec<String> = lanes
        .iter()
        .flat_map(|l| l.requests.iter())
        .map(|m| outcome_of(m.response.map(|(_, b)| b)))
        .collect();
    outcomes.sort_by(|a, b| outcome_rank(a).cmp(&outcome_rank(b)).then(a.cmp(b)));
    outcomes.dedup();
    let mut states: Vec<&str> = vec!["closed", "open", "half-open"];
    for l in &lanes {
        for (_, from, to) in &l.transitions {
            for s in [*from, *to] {
                if !states.contains(&s) {
                    states.push(s);
                }
            }
        }
    }
    let legend_items =
        outcomes.len() + 5 + usize::from(!holds.is_empty()) + if naive { 0 } else { states.len() };
    let per_row = ((f64::from(WIDTH) - 40.0) / LEGEND_ITEM_W).floor().max(1.0) as usize;
    let legend_rows = legend_items.div_ceil(per_row);

    let lanes_top = TOP + ALERT_LANE;
    let defer_top = lanes_top + LANE * lanes.len() as f64;
    let axis_y = defer_top + DEFER_LANE;
    let legend_top = axis_y + 60.0;
    let height = legend_top + LEGEND_ROW_H * legend_rows as f64 + 16.0;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="monospace" font-size="12">"#
    );
    let _ = writeln!(o, "<title>{}</title>", escape(title));
    let _ = writeln!(
        o,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height:.0}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        o,
        r#"<text class="title" x="20" y="26" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let subtitle = match run {
        Some((scenario, policy, surface)) => format!(
            "scenario {scenario} · policy {policy} · surface {surface} · {} requests",
            lanes.iter().map(|l| l.requests.len()).sum::<usize>()
        ),
        None => "no run_start in the log".to_string(),
    };
    let _ = writeln!(
        o,
        r##"<text class="subtitle" x="20" y="46" fill="#555555">{}</text>"##,
        escape(&subtitle)
    );

    // Grid and axis.
    let _ = writeln!(o, r#"<g class="axis">"#);
    for i in 0..=ticks {
        let t = i.saturating_mul(step);
        let tx = x(t);
        let _ = writeln!(
            o,
            r##"<line x1="{tx:.1}" y1="{lanes_top:.1}" x2="{tx:.1}" y2="{axis_y:.1}" stroke="#eeeeee"/>"##
        );
        let _ = writeln!(
            o,
            r##"<line class="tick" x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#333333"/>"##,
            axis_y + 5.0
        );
        let _ = writeln!(
            o,
            r#"<text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            axis_y + 18.0,
            escape(&secs(t, step))
        );
    }
    let _ = writeln!(
        o,
        r##"<line x1="{LEFT:.1}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#333333"/>"##,
        LEFT + plot_w
    );
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since the run started</text>"#,
        LEFT + plot_w / 2.0,
        axis_y + 34.0
    );
    let _ = writeln!(o, "</g>");

    // Alerts lane label.
    let _ = writeln!(
        o,
        r#"<text x="20" y="{:.1}">alerts</text>"#,
        TOP + ALERT_LANE / 2.0 + 4.0
    );

    for (li, lane) in lanes.iter().enumerate() {
        let y0 = lanes_top + LANE * li as f64;
        let _ = writeln!(o, r#"<g class="lane">"#);
        let _ = writeln!(
            o,
            r##"<line x1="20" y1="{y0:.1}" x2="{:.1}" y2="{y0:.1}" stroke="#bdbdbd"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            o,
            r#"<text class="model" x="20" y="{:.1}"><title>{}</title>{}</text>"#,
            y0 + 16.0,
            escape(lane.model),
            escape(&short(lane.model))
        );
        let _ = writeln!(
            o,
            r##"<text x="34" y="{:.1}" fill="#777777" font-size="10">sent</text><text x="34" y="{:.1}" fill="#777777" font-size="10">retries</text><text x="34" y="{:.1}" fill="#777777" font-size="10">rejected</text>"##,
            y0 + 31.0,
            y0 + 47.0,
            y0 + 63.0
        );

        // Breaker band: one segment per state period.
        let band_y = y0 + 4.0;
        if naive {
            let _ = writeln!(
                o,
                r##"<text x="{:.1}" y="{:.1}" fill="#999999" font-size="10">no breaker (naive)</text>"##,
                LEFT + 4.0,
                band_y + 9.0
            );
        } else {
            let mut state = lane
                .transitions
                .first()
                .map_or("closed", |(_, from, _)| from);
            let mut from_t = 0u64;
            let mut periods: Vec<(u64, u64, &str)> = Vec::new();
            for (t, _, to) in &lane.transitions {
                periods.push((from_t, *t, state));
                state = to;
                from_t = *t;
            }
            periods.push((from_t, end_ms, state));
            for (a, b, st) in periods {
                let (xa, xb) = (x(a), x(b.max(a)));
                let _ = writeln!(
                    o,
                    r#"<rect class="breaker" data-state="{}" x="{xa:.1}" y="{band_y:.1}" width="{:.1}" height="10" fill="{}"><title>{}: {} from {} to {}</title></rect>"#,
                    escape(st),
                    xb - xa,
                    breaker_colour(st),
                    escape(lane.model),
                    escape(st),
                    escape(&secs_ms(a)),
                    escape(&secs_ms(b.max(a)))
                );
            }
        }

        // Latency lines first, marks on top.
        for m in &lane.requests {
            let y = if m.attempt > 1 { y0 + 44.0 } else { y0 + 28.0 };
            if let Some((t_end, _)) = m.response
                && t_end > m.t_ms
            {
                let colour = outcome_colour(&outcome_of(m.response.map(|(_, b)| b)));
                let _ = writeln!(
                    o,
                    r#"<line class="latency" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-opacity="0.35"/>"#,
                    x(m.t_ms),
                    x(t_end)
                );
            }
        }
        for m in &lane.requests {
            let outcome = outcome_of(m.response.map(|(_, b)| b));
            let colour = outcome_colour(&outcome);
            // The tooltip adds what the colour cannot: the status and the failure's kind.
            let detail = match m.response {
                Some((
                    _,
                    EventBody::Response {
                        ok: false,
                        status,
                        kind,
                        ..
                    },
                )) => {
                    let status = status
                        .filter(|s| *s != 0)
                        .map_or_else(|| "no status".to_string(), |s| s.to_string());
                    format!(" ({status}, {})", present(kind).unwrap_or("no kind"))
                }
                _ => String::new(),
            };
            let tip = format!(
                "{} attempt {} at {}: {outcome}{detail}",
                m.job,
                m.attempt,
                secs_ms(m.t_ms),
            );
            let cx = x(m.t_ms);
            if m.attempt > 1 {
                let cy = y0 + 44.0;
                let _ = writeln!(
                    o,
                    r##"<path class="req retry" d="M{cx:.1} {:.1} L{:.1} {cy:.1} L{cx:.1} {:.1} L{:.1} {cy:.1} Z" fill="{colour}" stroke="#333333" stroke-width="0.5"><title>{}</title></path>"##,
                    cy - 5.0,
                    cx + 5.0,
                    cy + 5.0,
                    cx - 5.0,
                    escape(&tip)
                );
            } else {
                let cy = y0 + 28.0;
                let _ = writeln!(
                    o,
                    r##"<circle class="req first" cx="{cx:.1}" cy="{cy:.1}" r="4" fill="{colour}" stroke="#333333" stroke-width="0.5"><title>{}</title></circle>"##,
                    escape(&tip)
                );
            }
        }
        for (t, job, retry_in) in &lane.rejected {
            let tip = format!(
                "{job} rejected by the breaker at {} (probe in {retry_in} ms)",
                secs_ms(*t)
            );
            let _ = writeln!(
                o,
                r##"<circle class="rejected" cx="{:.1}" cy="{:.1}" r="4" fill="none" stroke="#c62828" stroke-width="1.5"><title>{}</title></circle>"##,
                x(*t),
                y0 + 60.0,
                escape(&tip)
            );
        }
        let _ = writeln!(o, "</g>");
    }

    // Deferred lane.
    let _ = writeln!(
        o,
        r##"<line x1="20" y1="{defer_top:.1}" x2="{:.1}" y2="{defer_top:.1}" stroke="#bdbdbd"/>"##,
        LEFT + plot_w
    );
    let _ = writeln!(
        o,
        r#"<text x="20" y="{:.1}">{}</text>"#,
        defer_top + 20.0,
        if holds.is_empty() {
            "deferred (rate limit)"
        } else {
            "deferred / held (credit)"
        }
    );
    for (i, (t, job, longest, until)) in holds.iter().enumerate() {
        let y = defer_top + 8.0 + 8.0 * (i % 3) as f64;
        let end = until.unwrap_or_else(|| t.saturating_add(*longest));
        let (xa, xb) = (x(*t), x(end.max(*t)));
        let _ = writeln!(
            o,
            r##"<rect class="held" x="{xa:.1}" y="{y:.1}" width="{:.1}" height="5" fill="#ffb300"><title>{} held for credit at {} ({} ms, at most {} ms)</title></rect>"##,
            (xb - xa).max(1.0),
            escape(job),
            secs_ms(*t),
            end.saturating_sub(*t),
            longest
        );
    }
    for (i, (t, job, session, wait)) in deferred.iter().enumerate() {
        // Three staggered rows so that bars starting together stay visible.
        let y = defer_top + 8.0 + 8.0 * (i % 3) as f64;
        let (xa, xb) = (x(*t), x(t.saturating_add(*wait)));
        let _ = writeln!(
            o,
            r##"<rect class="deferred" x="{xa:.1}" y="{y:.1}" width="{:.1}" height="5" fill="#90a4ae"><title>{} ({}) deferred {} ms at {}</title></rect>"##,
            (xb - xa).max(1.0),
            escape(job),
            escape(session),
            wait,
            secs_ms(*t)
        );
    }

    // Alerts and shutdown across the lanes.
    for (t, alert, state, value) in &alerts {
        let ax = x(*t);
        let raised = *state == "raised";
        let colour = if raised { "#c62828" } else { "#2e7d32" };
        let (tip_y, base_y) = if raised {
            (TOP + 18.0, TOP + 8.0)
        } else {
            (TOP + 8.0, TOP + 18.0)
        };
        let _ = writeln!(
            o,
            r#"<g class="alert"><line x1="{ax:.1}" y1="{:.1}" x2="{ax:.1}" y2="{axis_y:.1}" stroke="{colour}" stroke-dasharray="3 3"/><path d="M{:.1} {base_y:.1} L{:.1} {base_y:.1} L{ax:.1} {tip_y:.1} Z" fill="{colour}"/><title>{} {} at {} (value {})</title></g>"#,
            TOP + 18.0,
            ax - 5.0,
            ax + 5.0,
            escape(alert),
            escape(state),
            secs_ms(*t),
            fmt_value(*value)
        );
    }
    if let Some((t, signal)) = shutdown {
        let sx = x(t);
        let _ = writeln!(
            o,
            r##"<g class="shutdown"><line x1="{sx:.1}" y1="{TOP:.1}" x2="{sx:.1}" y2="{axis_y:.1}" stroke="#000000" stroke-width="1.5"/><text x="{:.1}" y="{:.1}">{}</text></g>"##,
            sx + 3.0,
            TOP + 10.0,
            escape(signal)
        );
    }

    // Legend.
    let _ = writeln!(o, r#"<g class="legend">"#);
    let mut item = 0usize;
    let place = |item: &mut usize| {
        let (row, col) = (*item / per_row, *item % per_row);
        *item += 1;
        (
            20.0 + LEGEND_ITEM_W * col as f64,
            legend_top + LEGEND_ROW_H * row as f64,
        )
    };
    for oc in &outcomes {
        let (lx, ly) = place(&mut item);
        let _ = writeln!(
            o,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}" stroke="#333333" stroke-width="0.5"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            lx + 5.0,
            ly - 4.0,
            outcome_colour(oc),
            lx + 14.0,
            ly,
            escape(oc)
        );
    }
    let (lx, ly) = place(&mut item);
    let _ = writeln!(
        o,
        r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#9e9e9e"/><text x="{:.1}" y="{ly:.1}">first attempt</text>"##,
        lx + 5.0,
        ly - 4.0,
        lx + 14.0
    );
    let (lx, ly) = place(&mut item);
    let _ = writeln!(
        o,
        r##"<path d="M{:.1} {:.1} L{:.1} {:.1} L{:.1} {:.1} L{lx:.1} {:.1} Z" fill="#9e9e9e"/><text x="{:.1}" y="{ly:.1}">retry</text>"##,
        lx + 5.0,
        ly - 9.0,
        lx + 10.0,
        ly - 4.0,
        lx + 5.0,
        ly + 1.0,
        ly - 4.0,
        lx + 14.0
    );
    let (lx, ly) = place(&mut item);
    let _ = writeln!(
        o,
        r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="none" stroke="#c62828" stroke-width="1.5"/><text x="{:.1}" y="{ly:.1}">rejected by breaker</text>"##,
        lx + 5.0,
        ly - 4.0,
        lx + 14.0
    );
    if !naive {
        for st in &states {
            let (lx, ly) = place(&mut item);
            let _ = writeln!(
                o,
                r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="8" fill="{}"/><text x="{:.1}" y="{ly:.1}">breaker {}</text>"##,
                ly - 8.0,
                breaker_colour(st),
                lx + 14.0,
                escape(st)
            );
        }
    }
    let (lx, ly) = place(&mut item);
    let _ = writeln!(
        o,
        r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="5" fill="#90a4ae"/><text x="{:.1}" y="{ly:.1}">deferred (wait)</text>"##,
        ly - 6.0,
        lx + 14.0
    );
    if !holds.is_empty() {
        let (lx, ly) = place(&mut item);
        let _ = writeln!(
            o,
            r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="5" fill="#ffb300"/><text x="{:.1}" y="{ly:.1}">held for credit</text>"##,
            ly - 6.0,
            lx + 14.0
        );
    }
    let (lx, ly) = place(&mut item);
    let _ = writeln!(
        o,
        r##"<path d="M{lx:.1} {:.1} L{:.1} {:.1} L{:.1} {ly:.1} Z" fill="#c62828"/><text x="{:.1}" y="{ly:.1}">alert raised / cleared</text>"##,
        ly - 9.0,
        lx + 10.0,
        ly - 9.0,
        lx + 5.0,
        lx + 14.0
    );
    let _ = writeln!(o, "</g>");
    o.push_str("</svg>\n");
    o
}

/// A time in seconds with millisecond precision, for tooltips.
fn secs_ms(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// An alert's value: finite numbers with up to 4 decimals, others named.
fn fmt_value(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "n/a".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"c\"'d'"),
            "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;"
        );
        assert_eq!(escape("x\u{1}y\tz"), "x y\tz");
    }

    #[test]
    fn long_labels_are_cut_by_characters() {
        let name = "ä".repeat(40);
        let cut = short(&name);
        assert_eq!(cut.chars().count(), MAX_LABEL_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(short("openai/gpt-4o-mini"), "openai/gpt-4o-mini");
    }

    #[test]
    fn tick_steps_give_at_most_twelve_ticks() {
        // 480 ms: 100 ms steps (5 ticks); 6 s: 500 ms (12 ticks); 7 s: 1 s (7 ticks).
        assert_eq!(tick_step(480), 100);
        assert_eq!(tick_step(6_000), 500);
        assert_eq!(tick_step(7_000), 1_000);
        // Beyond the table: whole hours.
        assert_eq!(tick_step(100 * 3_600_000), 9 * 3_600_000);
        assert!(u64::MAX.div_ceil(tick_step(u64::MAX)) <= 13);
        assert_eq!(secs(1_500, 500), "1.5 s");
        assert_eq!(secs(3_000, 1_000), "3 s");
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let events = [
            Event {
                t_ms: u64::MAX,
                body: EventBody::Deferred {
                    job: "j".into(),
                    session: "s".into(),
                    wait_ms: u64::MAX,
                },
            },
            Event {
                t_ms: 0,
                body: EventBody::Alert {
                    alert: "runway".into(),
                    state: "raised".into(),
                    value: f64::NAN,
                },
            },
        ];
        let svg = render_svg(&events, "extreme");
        assert!(svg.contains("value n/a"));
        assert!(svg.ends_with("</svg>\n"));
    }
}

//! Activity charts: server-rendered SVG bars (tokens issued and used;
//! refusals stacked by reason) with labelled axes, a figure shown on hover
//! or keyboard focus (CSS only, so it works without JavaScript), and the
//! same figures as a table for screen readers.

use keygate::activity::{ActivityBucket, ActivityRange, ActivitySeries, RefusalReason};
use leptos::prelude::*;

/// The chart's drawing box (SVG user units); it scales to the page width.
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 210.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 40.0;

/// Links to the three ranges; `href` is the page's path.
#[component]
pub fn RangeTabs(href: String, current: ActivityRange) -> impl IntoView {
    view! {
        <nav class="range-tabs" aria-label="Time range">
            {ActivityRange::ALL
                .into_iter()
                .map(|r| {
                    let link = format!("{href}?range={}#activity", r.as_str());
                    let current_page = (r == current).then_some("page");
                    view! { <a href=link aria-current=current_page>{r.label()}</a> }
                })
                .collect_view()}
        </nav>
    }
}

/// Both charts of a series, with their legends and the text table.
#[component]
pub fn ActivityCharts(series: ActivitySeries, #[prop(into)] subject: String) -> impl IntoView {
    let t = series.totals;
    let summary = format!(
        "In the {}: tokens issued {}, successful uses {}, refusals {}.",
        series.range.label(),
        t.issued,
        t.used,
        t.refused.total()
    );
    let uses: Vec<Layer> = vec![
        Layer { class: "k-used", label: "successful uses", value: |b| b.used },
        Layer { class: "k-issued", label: "tokens issued", value: |b| b.issued },
    ];
    let refusals: Vec<Layer> = RefusalReason::ALL
        .into_iter()
        .map(|r| Layer { class: refusal_class(r), label: r.label(), value: refusal_value(r) })
        .collect();
    let unit = unit_label(series.range);
    view! {
        <p class="chart-summary" data-testid="activity-summary">{summary}</p>
        <div class="charts">
            <figure class="chart" data-testid="chart-uses">
                <figcaption>{format!("Tokens issued and successful uses, {unit} (UTC)")}</figcaption>
                {bar_chart(&series, &uses, &format!("{subject}: tokens issued and uses"))}
                <Legend layers=uses.clone()/>
            </figure>
            <figure class="chart" data-testid="chart-refusals">
                <figcaption>{format!("Refusals by reason, {unit} (UTC)")}</figcaption>
                {bar_chart(&series, &refusals, &format!("{subject}: refusals by reason"))}
                <Legend layers=refusals.clone()/>
            </figure>
        </div>
        <ActivityTable series=series/>
    }
}

#[derive(Clone)]
struct Layer {
    class: &'static str,
    label: &'static str,
    value: fn(&ActivityBucket) -> i64,
}

fn refusal_class(r: RefusalReason) -> &'static str {
    match r {
        RefusalReason::WrongSecret => "k-wrong_secret",
        RefusalReason::InvalidToken => "k-invalid_token",
        RefusalReason::RateLimited => "k-rate_limited",
        RefusalReason::Scope => "k-scope",
        RefusalReason::AddressNotAllowed => "k-address_not_allowed",
        RefusalReason::Disabled => "k-disabled",
    }
}

fn refusal_value(r: RefusalReason) -> fn(&ActivityBucket) -> i64 {
    match r {
        RefusalReason::WrongSecret => |b| b.refused.wrong_secret,
        RefusalReason::InvalidToken => |b| b.refused.invalid_token,
        RefusalReason::RateLimited => |b| b.refused.rate_limited,
        RefusalReason::Scope => |b| b.refused.scope,
        RefusalReason::AddressNotAllowed => |b| b.refused.address_not_allowed,
        RefusalReason::Disabled => |b| b.refused.disabled,
    }
}

fn unit_label(range: ActivityRange) -> &'static str {
    match range {
        ActivityRange::Day => "per hour",
        ActivityRange::Week => "per 6 hours",
        ActivityRange::Month => "per day",
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// "Nov 29"
fn month_day(d: time::OffsetDateTime) -> String {
    format!("{} {}", MONTHS[usize::from(u8::from(d.month())) - 1], d.day())
}

/// A bar's time span as people read it, e.g. "Nov 29 14:00–15:00".
fn span_label(range: ActivityRange, start: i64, size: i64) -> String {
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (a, b) = (at(start), at(start + size));
    let month = month_day;
    match range {
        ActivityRange::Month => month(a),
        _ => format!("{} {:02}:00–{:02}:00", month(a), a.hour(), b.hour()),
    }
}

/// The x-axis label of a bar.
fn tick_label(range: ActivityRange, start: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(start).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    match range {
        ActivityRange::Day => format!("{:02}:00", d.hour()),
        _ => month_day(d),
    }
}

/// A round axis maximum at or above `max` (1, 2 or 5 times a power of ten).
fn nice_max(max: i64) -> i64 {
    if max <= 4 {
        return 4;
    }
    let mut step = 1_i64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m).saturating_mul(4) >= max {
                return step.saturating_mul(m).saturating_mul(4);
            }
        }
        step = step.saturating_mul(10);
    }
}

fn bar_chart(series: &ActivitySeries, layers: &[Layer], title: &str) -> AnyView {
    let n = series.buckets.len().max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / n;
    let bar_w = (slot * 0.78).max(1.0);
    let max = series.buckets.iter().map(|b| layers.iter().map(|l| (l.value)(b)).sum::<i64>()).max().unwrap_or(0);
    let top = nice_max(max);
    let y = |v: i64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let gridlines = [0, top / 2, top]
        .into_iter()
        .map(|v| {
            view! {
                <line class="grid" x1=LEFT x2=WIDTH - RIGHT y1=y(v) y2=y(v)/>
                <text class="axis" x=LEFT - 4.0 y=y(v) + 4.0 text-anchor="end">{v.to_string()}</text>
            }
        })
        .collect_view();
    // Labels under the first, middle and last bars.
    let last = series.buckets.len().saturating_sub(1);
    let ticks = [0, last / 2, last]
        .into_iter()
        .filter_map(|i| series.buckets.get(i).map(|b| (i, b.start)))
        .map(|(i, start)| {
            let x = LEFT + slot * (i as f64 + 0.5);
            let anchor = if i == 0 { "start" } else if i == last { "end" } else { "middle" };
            let x = if i == 0 { LEFT } else if i == last { WIDTH - RIGHT } else { x };
            view! { <text class="axis" x=x y=HEIGHT - BOTTOM + 16.0 text-anchor=anchor>{tick_label(series.range, start)}</text> }
        })
        .collect_view();
    let bars = series
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
            let mut base = 0_i64;
            let rects = layers
                .iter()
                .filter_map(|l| {
                    let v = (l.value)(b);
                    if v == 0 {
                        return None;
                    }
                    let (y0, y1) = (y(base), y(base + v));
                    base += v;
                    Some(view! { <rect class=l.class x=x y=y1 width=bar_w height=(y0 - y1).max(0.5)/> })
                })
                .collect_view();
            let figures: Vec<String> = layers
                .iter()
                .map(|l| (l.label, (l.value)(b)))
                .filter(|(_, v)| *v > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let span = span_label(series.range, b.start, series.bucket_seconds);
            let text =
                format!("{span}: {}", if figures.is_empty() { "nothing".to_string() } else { figures.join(", ") });
            // The tip: the time, then the figures two to a line, over a
            // plate beside the bar, so it stays inside the chart at any width.
            let mut lines = vec![span];
            lines.extend(figures.chunks(2).map(|c| c.join(", ")));
            if lines.len() == 1 {
                lines.push("nothing".into());
            }
            let longest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
            let plate_w = (longest * 7.2 + 12.0).min(WIDTH - LEFT - RIGHT);
            let plate_h = lines.len() as f64 * 16.0 + 8.0;
            let centre = x + bar_w / 2.0;
            let plate_x =
                if centre + 8.0 + plate_w <= WIDTH - RIGHT { centre + 8.0 } else { (centre - 8.0 - plate_w).max(LEFT) };
            let plate_y = TOP;
            let tip_lines = lines
                .into_iter()
                .enumerate()
                .map(|(n, line)| view! { <tspan x=plate_x + 6.0 y=plate_y + 18.0 + n as f64 * 16.0>{line}</tspan> })
                .collect_view();
            let (label, title) = (text.clone(), text.clone());
            view! {
                <g class="bar" tabindex="0" role="img" aria-label=label>
                    <title>{title}</title>
                    <rect class="hit" x=LEFT + slot * i as f64 y=TOP width=slot height=plot_h/>
                    {rects}
                    <g class="tip">
                        <rect class="plate" x=plate_x y=plate_y width=plate_w height=plate_h rx="4"/>
                        <text>{tip_lines}</text>
                    </g>
                </g>
            }
        })
        .collect_view();
    view! {
        <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") class="bars" role="group" aria-label=title.to_string()>
            {gridlines}
            <line class="axis-line" x1=LEFT x2=LEFT y1=TOP y2=TOP + plot_h/>
            {ticks}
            {bars}
        </svg>
    }
    .into_any()
}

#[component]
fn Legend(layers: Vec<Layer>) -> impl IntoView {
    view! {
        <ul class="legend" aria-hidden="true">
            {layers.into_iter().map(|l| view! { <li><span class=format!("swatch {}", l.class)></span>{l.label}</li> }).collect_view()}
        </ul>
    }
}

/// The figures behind both charts, for screen readers.
#[component]
fn ActivityTable(series: ActivitySeries) -> impl IntoView {
    let range = series.range;
    let size = series.bucket_seconds;
    view! {
        <table class="sr-only" data-testid="activity-table">
            <caption>{format!("Activity {} (UTC), {}", unit_label(range), range.label())}</caption>
            <thead>
                <tr>
                    <th scope="col">"Time"</th>
                    <th scope="col">"Tokens issued"</th>
                    <th scope="col">"Successful uses"</th>
                    {RefusalReason::ALL.into_iter().map(|r| view! { <th scope="col">{format!("Refused: {}", r.label())}</th> }).collect_view()}
                </tr>
            </thead>
            <tbody>
                {series
                    .buckets
                    .into_iter()
                    .map(|b| {
                        view! {
                            <tr>
                                <th scope="row">{span_label(range, b.start, size)}</th>
                                <td>{b.issued}</td>
                                <td>{b.used}</td>
                                {RefusalReason::ALL.into_iter().map(|r| view! { <td>{b.refused.get(r)}</td> }).collect_view()}
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round_and_cover_the_data() {
        for (max, top) in [(0, 4), (3, 4), (5, 8), (9, 20), (41, 80), (150, 200), (999, 2000)] {
            assert_eq!(nice_max(max), top, "{max}");
        }
    }

    #[test]
    fn spans_read_as_times_or_days() {
        // 2026-11-29T14:00:00Z
        let t = 1_795_960_800;
        assert_eq!(span_label(ActivityRange::Day, t, 3_600), "Nov 29 14:00–15:00");
        assert_eq!(tick_label(ActivityRange::Day, t), "14:00");
        assert_eq!(span_label(ActivityRange::Month, t - 14 * 3_600, 86_400), "Nov 29");
    }
}

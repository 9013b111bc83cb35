//! Reads the Prometheus text exposition format that every stage serves on
//! `/metrics`: the run's live view and report take their counts from the
//! same numbers an operator would scrape. Pure.

/// One sample: a metric name, its labels, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The samples of `text`; comment lines and lines that do not parse are
/// skipped (a scrape is read for progress, never trusted blindly).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            if close < open {
                return None;
            }
            (&line[..open], parse_labels(&line[open + 1..close])?, &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, Vec::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        chars.next()?; // '='
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        out.push((name.trim().to_string(), value));
    }
}

/// The sum of every sample named `name` whose labels include `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && filter.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// The `q` quantile of histogram `name` (its `_bucket` samples), by
/// linear interpolation within the bucket, as PromQL's
/// `histogram_quantile` does; `None` without observations.
pub fn histogram_quantile(samples: &[Sample], name: &str, q: f64) -> Option<f64> {
    histogram_quantile_since(samples, &[], name, q)
}

/// [`histogram_quantile`] of the observations made after `before` was
/// read (a scrape of the same histogram, earlier; empty: all of them).
pub fn histogram_quantile_since(samples: &[Sample], before: &[Sample], name: &str, q: f64) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    let read = |samples: &[Sample]| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter(|s| s.name == bucket)
            .filter_map(|s| Some((parse_le(s.label("le")?)?, s.value)))
            .collect()
    };
    let earlier = read(before);
    let mut buckets: Vec<(f64, f64)> = read(samples)
        .into_iter()
        .map(|(le, n)| {
            let was = earlier.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, n)| *n);
            (le, (n - was).max(0.0))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let within = count - below;
            let share = if within > 0.0 { (rank - below) / within } else { 1.0 };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, count);
    }
    None
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP contrail_cdc_events Change events produced.\n\
        # TYPE contrail_cdc_events counter\n\
        contrail_cdc_events_total{table=\"public.flight_state\",op=\"u\"} 12\n\
        contrail_cdc_events_total{table=\"public.flight_state\",op=\"c\"} 3\n\
        contrail_cdc_dead_lettered_total{rule=\"a \\\"quoted\\\", rule\"} 2\n\
        contrail_cdc_slot_lag_bytes 4096\n\
        contrail_sink_batch_seconds_bucket{le=\"+Inf\"} 7\n\
        garbage line\n";

    #[test]
    fn samples_and_sums() {
        let s = parse(TEXT);
        assert_eq!(s.len(), 5);
        assert_eq!(sum(&s, "contrail_cdc_events_total", &[]), 15.0);
        assert_eq!(sum(&s, "contrail_cdc_events_total", &[("op", "c")]), 3.0);
        assert_eq!(s[2].label("rule"), Some("a \"quoted\", rule"));
        assert_eq!(sum(&s, "contrail_cdc_slot_lag_bytes", &[]), 4096.0);
        assert_eq!(sum(&s, "missing", &[]), 0.0);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let text = "h_bucket{le=\"0.1\"} 50\nh_bucket{le=\"0.2\"} 90\nh_bucket{le=\"+Inf\"} 100\nh_count 100\n";
        let s = parse(text);
        assert_eq!(histogram_quantile(&s, "h", 0.5), Some(0.1));
        assert!((histogram_quantile(&s, "h", 0.7).unwrap() - 0.15).abs() < 1e-9);
        // Past the last finite bound: that bound, as PromQL answers.
        assert_eq!(histogram_quantile(&s, "h", 0.99), Some(0.2));
        assert_eq!(histogram_quantile(&[], "h", 0.5), None);
    }

    #[test]
    fn quantiles_since_an_earlier_scrape_leave_its_observations_out() {
        let before = parse("h_bucket{le=\"0.1\"} 0\nh_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 40\n");
        let now = parse("h_bucket{le=\"0.1\"} 60\nh_bucket{le=\"1\"} 60\nh_bucket{le=\"+Inf\"} 100\n");
        // All of them: 40 of 100 past the last bound.
        assert_eq!(histogram_quantile(&now, "h", 0.99), Some(1.0));
        // Since `before`: the 60 new ones, all under 0.1.
        assert!(histogram_quantile_since(&now, &before, "h", 0.99).unwrap() <= 0.1);
        assert_eq!(histogram_quantile_since(&before, &before, "h", 0.5), None);
    }

    #[test]
    fn unterminated_labels_are_skipped_not_a_panic() {
        for line in ["m{a=\"x} 1", "m{a=x} 1", "m{} ", "m} {1", "{"] {
            let _ = parse(line);
        }
        assert!(parse("m{a=\"x} 1").is_empty());
    }
}

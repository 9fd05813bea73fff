//! `/metrics`: the proxy's counters (`proxy`) and the nodes' last poll (`nodes`) as Prometheus
//! metrics, built at scrape time (per-worker counters summed here, never on the request path)
//! and written by the `prometheus` crate's text encoder.

mod cache;
mod hotkeys;
mod nodes;
mod proxy;
mod reads;

use std::collections::BTreeMap;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use crate::metrics::events::EventHistogram;
use crate::state::Shared;

/// Metric families under construction, by name.
#[derive(Default)]
pub(super) struct Families {
    all: BTreeMap<&'static str, MetricFamily>,
}

fn labels(l: &[(&str, &str)]) -> Vec<LabelPair> {
    l.iter()
        .map(|(k, v)| {
            let mut p = LabelPair::default();
            p.set_name(k.to_string());
            p.set_value(v.to_string());
            p
        })
        .collect()
}

impl Families {
    fn family(&mut self, name: &'static str, help: &str, t: MetricType) -> &mut MetricFamily {
        self.all.entry(name).or_insert_with(|| {
            let mut f = MetricFamily::default();
            f.set_name(name.to_string());
            f.set_help(help.to_string());
            f.set_field_type(t);
            f
        })
    }

    pub(super) fn gauge(&mut self, name: &'static str, help: &str, l: &[(&str, &str)], v: f64) {
        let mut g = Gauge::default();
        g.set_value(v);
        let mut m = Metric::default();
        m.set_label(labels(l));
        m.set_gauge(g);
        self.family(name, help, MetricType::GAUGE)
            .mut_metric()
            .push(m);
    }

    pub(super) fn counter(&mut self, name: &'static str, help: &str, l: &[(&str, &str)], v: f64) {
        let mut c = Counter::default();
        c.set_value(v);
        let mut m = Metric::default();
        m.set_label(labels(l));
        m.set_counter(c);
        self.family(name, help, MetricType::COUNTER)
            .mut_metric()
            .push(m);
    }

    /// `buckets`: cumulative counts per upper bound (seconds).
    pub(super) fn histogram(
        &mut self,
        name: &'static str,
        help: &str,
        l: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let mut h = Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(
            buckets
                .iter()
                .map(|(le, n)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*le);
                    b.set_cumulative_count(*n);
                    b
                })
                .collect(),
        );
        let mut m = Metric::default();
        m.set_label(labels(l));
        m.set_histogram(h);
        self.family(name, help, MetricType::HISTOGRAM)
            .mut_metric()
            .push(m);
    }

    pub(super) fn event_histogram(&mut self, name: &'static str, help: &str, h: &EventHistogram) {
        let (buckets, sum, count) = h.cumulative();
        self.histogram(name, help, &[], &buckets, sum, count);
    }

    fn encode(self) -> String {
        let families: Vec<MetricFamily> = self.all.into_values().collect();
        let mut out = Vec::new();
        // Writing to a Vec fails only on a malformed family, which this file never builds
        // (every family has a name, a type and matching samples).
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The whole exposition.
pub fn render(shared: &Shared) -> String {
    let mut f = Families::default();
    proxy::metrics(shared, &mut f);
    reads::metrics(shared, &mut f);
    cache::metrics(shared, &mut f);
    hotkeys::metrics(shared, &mut f);
    if let Some(s) = shared.plane.facts.latest() {
        nodes::metrics(&s, &mut f);
    }
    f.encode()
}

pub(super) fn bool01(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

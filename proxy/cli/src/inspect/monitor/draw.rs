//! One frame of `hive monitor`, laid out to the terminal's size on every draw (so it resizes).

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Gauge, List, ListItem, Paragraph, Row, Sparkline, Table,
};
use ratatui::Frame;

use super::State;
use crate::inspect::view;
use hive_upstream::facts::health::Health;

fn health_style(h: Health) -> Style {
    let c = match h {
        Health::Ok => Color::Green,
        Health::Degraded => Color::Yellow,
        Health::Down => Color::Red,
    };
    Style::default().fg(c).add_modifier(Modifier::BOLD)
}

pub fn frame(f: &mut Frame, st: &State) {
    let nodes_h = st.snapshot.as_ref().map_or(3, |s| s.nodes.len() as u16 + 3);
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(3),
            Constraint::Length(3),
            Constraint::Length(nodes_h),
            Constraint::Min(6),
            Constraint::Length(1),
        ])
        .split(f.area());
    header(f, rows[0], st);
    targets(f, rows[1], st);
    nodes(f, rows[2], st);
    let bottom = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(45), Constraint::Percentage(55)])
        .split(rows[3]);
    sparklines(f, bottom[0], st);
    events(f, bottom[1], st);
    f.render_widget(
        Paragraph::new("q quits · refreshes every second · same facts as `hive status`"),
        rows[4],
    );
}

fn header(f: &mut Frame, area: Rect, st: &State) {
    let mut spans = vec![
        Span::raw("Hive monitor  "),
        Span::styled(
            format!("HEALTH {}", st.health.as_str().to_uppercase()),
            health_style(st.health),
        ),
    ];
    if let Some(s) = &st.snapshot {
        spans.push(Span::raw(format!(
            "  {} mode · {} shards · {} nodes · refreshed {}",
            s.mode,
            s.shards.len(),
            s.nodes.len(),
            st.refreshed
        )));
        let (migrating, importing, _) = s.resharding();
        if migrating + importing > 0 {
            spans.push(Span::styled(
                format!("  · RESHARDING {} slots open", migrating.max(importing)),
                Style::default().fg(Color::Yellow),
            ));
        }
    } else {
        spans.push(Span::raw("  polling..."));
    }
    if let Some(p) = &st.proxy {
        spans.push(Span::raw(match &p.error {
            None => format!(
                "  · proxy {} {} clients {:.0} ops/s",
                p.addr, p.connected_clients, p.ops_per_sec
            ),
            Some(e) => format!("  · proxy {} DOWN ({e})", p.addr),
        }));
    }
    f.render_widget(
        Paragraph::new(Line::from(spans)).block(Block::default().borders(Borders::ALL)),
        area,
    );
}

fn targets(f: &mut Frame, area: Rect, st: &State) {
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Ratio(1, 3); 3])
        .split(area);
    let Some(s) = &st.snapshot else { return };
    let total = hive_common::SLOT_COUNT as f64;
    let covered = s.slots_covered as f64 / total;
    f.render_widget(
        Gauge::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title("Slot coverage"),
            )
            .gauge_style(Style::default().fg(if covered >= 1.0 {
                Color::Green
            } else {
                Color::Red
            }))
            .ratio(covered.clamp(0.0, 1.0))
            .label(format!("{}/{}", s.slots_covered, hive_common::SLOT_COUNT)),
        cols[0],
    );
    let (hits, misses) = s
        .nodes
        .iter()
        .filter(|n| n.up)
        .fold((0u64, 0u64), |a, n| (a.0 + n.hits, a.1 + n.misses));
    let rate = (hits + misses > 0).then(|| hits as f64 * 100.0 / (hits + misses) as f64);
    let ok = rate.is_none_or(|r| r >= st.hit_target);
    f.render_widget(
        Gauge::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!("Hit rate (target {:.0}%)", st.hit_target)),
            )
            .gauge_style(Style::default().fg(if ok { Color::Green } else { Color::Yellow }))
            .ratio(rate.unwrap_or(0.0) / 100.0)
            .label(rate.map_or("no lookups yet".into(), |r| format!("{r:.1}%"))),
        cols[1],
    );
    // Through the proxy when there is one (what clients see), else the slowest node's PING.
    let (title, ms) = match st.proxy.as_ref().filter(|p| p.up) {
        Some(p) => ("Latency via proxy", p.ping_us as f64 / 1000.0),
        None => (
            "Latency, slowest node",
            s.nodes
                .iter()
                .filter(|n| n.up)
                .map(|n| n.ping_us)
                .max()
                .unwrap_or(0) as f64
                / 1000.0,
        ),
    };
    let ok = ms <= st.latency_target_ms;
    f.render_widget(
        Gauge::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!("{title} (target {} ms)", st.latency_target_ms)),
            )
            .gauge_style(Style::default().fg(if ok { Color::Green } else { Color::Red }))
            .ratio((ms / st.latency_target_ms).clamp(0.0, 1.0))
            .label(format!("{ms:.2} ms")),
        cols[2],
    );
}

/// `[####....] 42%` of maxmemory, or the used bytes alone without a limit.
fn bar(used: u64, max: u64) -> String {
    if max == 0 {
        return format!("{} (no max)", view::bytes(used));
    }
    let r = (used as f64 / max as f64).clamp(0.0, 1.0);
    let filled = (r * 10.0).round() as usize;
    format!(
        "[{}{}] {:>3.0}% {}",
        "#".repeat(filled),
        ".".repeat(10 - filled),
        r * 100.0,
        view::bytes(used)
    )
}

fn nodes(f: &mut Frame, area: Rect, st: &State) {
    let Some(s) = &st.snapshot else { return };
    let header = Row::new([
        "SHARD", "NODE", "ROLE", "SLOTS", "LINK", "LAG", "MEMORY", "KEYS", "OPS/S", "CLIENTS",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = view::rows(s).into_iter().zip(&s.nodes).map(|(r, n)| {
        let style = if !n.up {
            Style::default().fg(Color::Red)
        } else if n.role == "master" {
            Style::default().fg(Color::Cyan)
        } else {
            Style::default()
        };
        let mem = if n.up {
            bar(n.used_memory, n.maxmemory)
        } else {
            r.link.clone()
        };
        Row::new(vec![
            Cell::from(r.shard),
            Cell::from(r.addr),
            Cell::from(r.role),
            Cell::from(r.slots),
            Cell::from(if n.up { r.link } else { String::new() }),
            Cell::from(r.lag),
            Cell::from(mem),
            Cell::from(r.keys),
            Cell::from(r.ops),
            Cell::from(r.clients),
        ])
        .style(style)
    });
    let widths = [
        Constraint::Length(10),
        Constraint::Length(16),
        Constraint::Length(8),
        Constraint::Length(11),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Min(20),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::default().borders(Borders::ALL).title("Nodes")),
        area,
    );
}

fn sparklines(f: &mut Frame, area: Rect, st: &State) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title("Ops/s per master");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(s) = &st.snapshot else { return };
    let masters: Vec<&str> = s.shards.iter().map(|sh| sh.master.as_str()).collect();
    if masters.is_empty() || inner.height == 0 {
        return;
    }
    let each = (inner.height as usize / masters.len()).max(1) as u16;
    for (i, m) in masters.iter().enumerate() {
        let y = inner.y + i as u16 * each;
        if y >= inner.y + inner.height {
            break;
        }
        let row = Rect::new(
            inner.x,
            y,
            inner.width,
            each.min(inner.y + inner.height - y),
        );
        let cols = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(22), Constraint::Min(1)])
            .split(row);
        let data: Vec<u64> = st
            .ops
            .get(*m)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default();
        let last = data.last().copied().unwrap_or(0);
        f.render_widget(Paragraph::new(format!("{m} {last}")), cols[0]);
        let start = data.len().saturating_sub(cols[1].width as usize);
        f.render_widget(
            Sparkline::default()
                .data(&data[start..])
                .style(Style::default().fg(Color::Cyan)),
            cols[1],
        );
    }
}

fn events(f: &mut Frame, area: Rect, st: &State) {
    let mut items: Vec<ListItem> = st
        .findings
        .iter()
        .map(|x| {
            ListItem::new(format!("! {}: {}", x.subject, x.what))
                .style(Style::default().fg(Color::Yellow))
        })
        .collect();
    items.extend(st.events.iter().map(|e| ListItem::new(e.as_str())));
    f.render_widget(
        List::new(items).block(
            Block::default()
                .borders(Borders::ALL)
                .title("Findings and events"),
        ),
        area,
    );
}

//! `hive top`: the proxy's hottest keys by requests per second and its biggest replies, from
//! `INFO hotkeys` (1 request in `proxy.hotkeys_sample_every`, sampled in the proxy: it costs
//! the nodes nothing, unlike `redis-cli --hotkeys`). On a terminal it refreshes like `top`
//! (q quits); `--once`, `--json` or a pipe print one reading.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use comfy_table::{presets, Table};
use crossterm::event::{self, Event, KeyCode, KeyModifiers};
use serde::Serialize;

use crate::target::{connect_proxy, ProxyArg};

#[derive(Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub proxy: ProxyArg,
    /// Refresh interval, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Print one reading and exit.
    #[arg(long)]
    pub once: bool,
    /// Print one reading as JSON and exit.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Reading {
    pub proxy: String,
    pub sample_every: u64,
    pub hot: Vec<HotKey>,
    pub big: Vec<BigKey>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct HotKey {
    pub key: String,
    pub shard: String,
    pub ops_per_sec: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct BigKey {
    pub key: String,
    pub shard: String,
    pub reply_bytes: u64,
}

/// Parses the `# Hotkeys` section of an INFO reply.
pub fn parse(proxy: &str, info: &str) -> Reading {
    let mut r = Reading {
        proxy: proxy.to_string(),
        ..Reading::default()
    };
    for line in info.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let field = |k: &str| {
            value
                .split(',')
                .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                .unwrap_or_default()
                .to_string()
        };
        let num = |k: &str| field(k).parse::<f64>().unwrap_or(0.0);
        if name == "hotkeys_sample_every" {
            r.sample_every = value.trim().parse().unwrap_or(0);
        } else if name.starts_with("hotkey_") {
            r.hot.push(HotKey {
                key: field("key"),
                shard: field("shard"),
                ops_per_sec: num("ops_per_sec") as u64,
            });
        } else if name.starts_with("bigkey_") {
            r.big.push(BigKey {
                key: field("key"),
                shard: field("shard"),
                reply_bytes: num("reply_bytes") as u64,
            });
        }
    }
    r
}

async fn read(addr: &str, user: Option<&str>) -> Result<Reading> {
    let mut c = connect_proxy(addr, user)
        .await
        .map_err(|e| anyhow::anyhow!("{addr}: {e}"))?;
    let v = c
        .call(&["INFO", "hotkeys"])
        .await
        .map_err(|e| anyhow::anyhow!("INFO hotkeys on {addr}: {e}"))?;
    let text = v.as_str().unwrap_or_default().to_string();
    if !text.contains("# Hotkeys") {
        bail!("{addr} has no hotkeys section: is it a Hive proxy of this version?");
    }
    Ok(parse(addr, &text))
}

/// The two tables, as text, each cut to `rows` keys when given (a live screen's height).
pub fn render(r: &Reading, rows: Option<usize>) -> String {
    let n = rows.unwrap_or(usize::MAX);
    let mut hot = Table::new();
    hot.load_preset(presets::NOTHING)
        .set_header(["HOT KEY", "OPS/S", "SHARD"]);
    for h in r.hot.iter().take(n) {
        hot.add_row([h.key.clone(), h.ops_per_sec.to_string(), h.shard.clone()]);
    }
    let mut big = Table::new();
    big.load_preset(presets::NOTHING)
        .set_header(["BIG REPLY KEY", "BYTES", "SHARD"]);
    for b in r.big.iter().take(n) {
        big.add_row([b.key.clone(), b.reply_bytes.to_string(), b.shard.clone()]);
    }
    let sampling = match r.sample_every {
        0 => "sampling is off (proxy.hotkeys_sample_every = 0)".to_string(),
        n => format!("1 request in {n} sampled"),
    };
    let none = |v: bool| if v { "  (none sampled yet)\n" } else { "" };
    format!(
        "hive top: {}, {sampling}\n\n{hot}\n{}\n{big}\n{}",
        r.proxy,
        none(r.hot.is_empty()),
        none(r.big.is_empty()),
    )
}

pub fn run(a: TopArgs) -> Result<()> {
    let addr = a.proxy.proxy.clone().unwrap_or("127.0.0.1:6380".into());
    let user = a.proxy.proxy_user.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let live = !a.once && !a.json && std::io::stdout().is_terminal();
    if !live {
        let r = rt.block_on(read(&addr, user.as_deref()))?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            print!("{}", render(&r, None));
        }
        return Ok(());
    }
    let mut out = std::io::stdout();
    crossterm::terminal::enable_raw_mode()?;
    crossterm::execute!(out, crossterm::terminal::EnterAlternateScreen)?;
    let result = (|| -> Result<()> {
        loop {
            // Both tables fit the screen: its height less the title, headers, gaps and hint.
            let height = crossterm::terminal::size().map_or(40, |(_, h)| h as usize);
            let rows = (height.saturating_sub(9) / 2).max(1);
            let text = match rt.block_on(read(&addr, user.as_deref())) {
                Ok(r) => render(&r, Some(rows)),
                Err(e) => format!("hive top: {e:#}\n(retrying)\n"),
            };
            // Raw mode: each line needs its carriage return.
            let screen = text.replace('\n', "\r\n");
            crossterm::execute!(
                out,
                crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
                crossterm::cursor::MoveTo(0, 0)
            )?;
            write!(out, "{screen}\r\nq quits\r\n")?;
            out.flush()?;
            if event::poll(Duration::from_millis(a.interval_ms))? {
                if let Event::Key(k) = event::read()? {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                        return Ok(());
                    }
                }
            }
        }
    })();
    let _ = crossterm::execute!(out, crossterm::terminal::LeaveAlternateScreen);
    let _ = crossterm::terminal::disable_raw_mode();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_parses_the_hotkeys_section() {
        let info = "# Proxy\r\nconnected_clients:1\r\n# Hotkeys\r\nhotkeys_sample_every:100\r\n\
                    hotkey_0:key=user:1,shard=0,ops_per_sec=1200\r\n\
                    bigkey_0:key=blob,shard=2,reply_bytes=65536\r\n\r\n";
        let r = parse("p:1", info);
        assert_eq!(r.sample_every, 100);
        assert_eq!(
            r.hot,
            vec![HotKey {
                key: "user:1".into(),
                shard: "0".into(),
                ops_per_sec: 1200
            }]
        );
        assert_eq!(r.big[0].reply_bytes, 65536);
        let text = render(&r, None);
        assert_eq!(render(&r, Some(0)).matches("user:1").count(), 0);
        assert!(text.contains("user:1") && text.contains("65536"), "{text}");
    }
}

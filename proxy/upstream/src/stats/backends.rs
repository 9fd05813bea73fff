//! Backend connections per node and state, for `/metrics`. Changed only when a connection
//! connects, fails or closes, never per request.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Connected,
    /// The last connect failed; requests fail fast until the next try.
    Down,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Connected => "connected",
            ConnState::Down => "down",
        }
    }
}

#[derive(Debug, Default)]
pub struct BackendStates {
    /// Per address: connections connected, and down.
    by_addr: Mutex<BTreeMap<String, [i64; 2]>>,
}

impl BackendStates {
    /// Moves one connection of `addr` from state `from` to `to` (`None`: not counted).
    pub fn transition(&self, addr: &str, from: Option<ConnState>, to: Option<ConnState>) {
        if from == to {
            return;
        }
        let mut m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(addr.to_string()).or_default();
        if let Some(f) = from {
            e[f as usize] -= 1;
        }
        if let Some(t) = to {
            e[t as usize] += 1;
        }
    }

    /// `(addr, state, connections)` for every node seen.
    pub fn all(&self) -> Vec<(String, ConnState, i64)> {
        let m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .flat_map(|(a, c)| {
                [ConnState::Connected, ConnState::Down]
                    .into_iter()
                    .map(move |s| (a.clone(), s, c[s as usize].max(0)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_states_count_transitions() {
        let b = BackendStates::default();
        b.transition("a:1", None, Some(ConnState::Down));
        b.transition("a:1", Some(ConnState::Down), Some(ConnState::Connected));
        b.transition("a:1", None, Some(ConnState::Connected));
        b.transition("a:1", Some(ConnState::Connected), None);
        assert_eq!(
            b.all(),
            [
                ("a:1".to_string(), ConnState::Connected, 1),
                ("a:1".to_string(), ConnState::Down, 0)
            ]
        );
    }
}

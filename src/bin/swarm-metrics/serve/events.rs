//! `GET /events`: what happens to the store, as Server-Sent Events. A
//! `task` event per stored batch, an `alert` event per alert transition.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::Value;
use swarm_metrics::{now, Rules};
use tokio::sync::{broadcast, watch};

use super::Server;

/// Events a slow subscriber may fall behind by before it is told it
/// missed some (a `lagged` event with how many).
const BACKLOG: usize = 1024;

/// One announcement: its event name and JSON data.
#[derive(Debug, Clone)]
struct Announcement {
    name: &'static str,
    data: String,
}

/// Where events are announced, and the switch that ends every stream on
/// shutdown.
pub struct Hub {
    sender: broadcast::Sender<Announcement>,
    closed: watch::Sender<bool>,
}

impl Hub {
    pub fn new() -> Self {
        Hub {
            sender: broadcast::channel(BACKLOG).0,
            closed: watch::channel(false).0,
        }
    }

    /// Announces `data` as an event `name` to every subscriber (none
    /// listening is fine).
    pub fn send(&self, name: &'static str, data: &Value) {
        let _ = self.sender.send(Announcement {
            name,
            data: data.to_string(),
        });
    }

    /// Ends every stream, so that shutdown does not wait on them.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The event stream of one subscriber, with a comment every 15 s to
    /// keep proxies from closing it.
    pub fn subscribe(&self) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        let state = (self.sender.subscribe(), self.closed.subscribe());
        let stream = futures_util::stream::unfold(state, |(mut events, mut closed)| async move {
            if *closed.borrow() {
                return None;
            }
            let event = tokio::select! {
                received = events.recv() => match received {
                    Ok(a) => Event::default().event(a.name).data(a.data),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Event::default().event("lagged").data(missed.to_string())
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = closed.changed() => return None,
            };
            Some((Ok(event), (events, closed)))
        });
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    }
}

/// Evaluates `rules` every `every` until shutdown, announcing each
/// transition as an `alert` event (with the alert in `alerts eval
/// --json`'s shape). A failed evaluation is reported on stderr and tried
/// again next time.
pub async fn evaluate_every(server: Arc<Server>, rules: Rules, every: Duration) {
    let rules = Arc::new(rules);
    let mut closed = server.events.closed.subscribe();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = closed.changed() => return,
        }
        let store = Arc::clone(&server.store);
        let rules = Arc::clone(&rules);
        let evaluated =
            tokio::task::spawn_blocking(move || store.evaluate_alerts(&rules, now())).await;
        match evaluated {
            Ok(Ok(instances)) => {
                for instance in instances.iter().filter(|i| i.transition.is_some()) {
                    server
                        .events
                        .send("alert", &crate::alerts::alert_json(instance));
                }
            }
            Ok(Err(e)) => eprintln!("swarm-metrics: evaluating --rules: {e}"),
            Err(e) => eprintln!("swarm-metrics: evaluating --rules failed: {e}"),
        }
    }
}

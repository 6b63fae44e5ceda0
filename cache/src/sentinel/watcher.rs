//! Failover listeners: one pub/sub connection per sentinel, so the handle hears of a failover from
//! whichever sentinels know of it first, not from the one at the head of the URL.
//!
//! Two channels: `+switch-master`, which every sentinel publishes once it has adopted a new
//! configuration, and `+promoted-slave`, which the failover leader publishes the moment the chosen
//! replica has become primary and the new config epoch exists — usually 50 ms to seconds before
//! any `+switch-master` (the leader's own comes only at the end of the failover). Both make the
//! handle stop writing to the old primary at once; the new one is used when a quorum confirms it.
//!
//! Each listener is a task that holds only a `Weak` reference to the handle (so dropping the last
//! [`crate::Redis`] ends it) and loops: connect and subscribe within the connect + response
//! timeouts; then wait for messages while sending a `PING` every [`HEALTH_EVERY`] on the same
//! connection. A sentinel that is frozen (SIGSTOP), half-open (its host gone without a FIN) or
//! partitioned stops answering the PING, and the listener reconnects instead of waiting forever on
//! a silent socket. Reconnects back off from 100 ms to 2 s so a dead sentinel costs little.
//!
//! When a listener loses its sentinel it also drops the handle's query connection to that sentinel
//! (it is most likely dead the same way), and after every (re)subscription it asks the handle to
//! re-check the primary by agreement, since a switch announced while it was not listening would
//! otherwise go unnoticed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Value;

use super::SentinelPrimary;
use crate::node::client_for;
use crate::url::Node;

/// How often a listener checks that its sentinel still answers.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Starts one listener per sentinel; returns their abort handles.
pub(super) fn spawn_all(primary: &Arc<SentinelPrimary>) -> Vec<tokio::task::AbortHandle> {
    (0..primary.sentinels.len())
        .map(|i| tokio::spawn(listen(Arc::downgrade(primary), i)).abort_handle())
        .collect()
}

const SWITCH_MASTER: &str = "+switch-master";
const PROMOTED_SLAVE: &str = "+promoted-slave";

/// The new primary a message announces, if it is `service`'s:
/// - `+switch-master`: `<service> <old-ip> <old-port> <new-ip> <new-port>`;
/// - `+promoted-slave`: `slave <ip>:<port> <ip> <port> @ <service> <old-ip> <old-port>`.
fn parse_announcement(channel: &str, payload: &str, service: &str) -> Option<Node> {
    let parts: Vec<&str> = payload.split(' ').collect();
    let (host, port) = match (channel, parts.as_slice()) {
        (SWITCH_MASTER, [name, _, _, host, port]) if *name == service => (host, port),
        (PROMOTED_SLAVE, ["slave", _, host, port, "@", name, _, _]) if *name == service => {
            (host, port)
        }
        _ => return None,
    };
    Some(Node {
        host: host.to_string(),
        port: port.parse().ok()?,
    })
}

async fn listen(this: Weak<SentinelPrimary>, index: usize) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(primary) = this.upgrade() else {
            return;
        };
        let (service, budget, ping_timeout) = (
            primary.service.clone(),
            primary.opts.connect_timeout + primary.opts.response_timeout,
            primary.opts.response_timeout,
        );
        let subscribed = tokio::time::timeout(budget, async {
            let info = primary.sentinel_info(&primary.sentinels[index])?;
            let mut pubsub = client_for(info, &primary.opts)?.get_async_pubsub().await?;
            pubsub.subscribe(&[SWITCH_MASTER, PROMOTED_SLAVE]).await?;
            redis::RedisResult::Ok(pubsub)
        })
        .await;
        let Ok(Ok(pubsub)) = subscribed else {
            primary.forget_query_connection(index);
            drop(primary); // hold no strong reference while waiting
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        };
        backoff = BACKOFF_MIN;
        primary.recheck_soon();
        drop(primary);

        let (mut sink, mut messages) = pubsub.split();
        let mut health = tokio::time::interval(HEALTH_EVERY);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { break }; // the sentinel closed the connection
                    let payload: String = msg.get_payload().unwrap_or_default();
                    let channel = msg.get_channel_name();
                    if let Some(new) = parse_announcement(channel, &payload, &service) {
                        let Some(primary) = this.upgrade() else {
                            return;
                        };
                        tracing::info!(%service, primary = %new, sentinel = index, %channel, "sentinel announced a new primary");
                        primary.announced(new);
                    }
                }
                _ = health.tick() => {
                    let pong = tokio::time::timeout(ping_timeout, sink.ping::<Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break; // frozen, half-open or gone: reconnect
                    }
                }
            }
        }
        let Some(primary) = this.upgrade() else {
            return;
        };
        primary.forget_query_connection(index);
        drop(primary);
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_name_the_new_primary_of_our_service_only() {
        let parse = |channel, payload| parse_announcement(channel, payload, "mymaster");
        let new = parse(SWITCH_MASTER, "mymaster 10.0.0.1 6379 10.0.0.2 6380").unwrap();
        assert_eq!((new.host.as_str(), new.port), ("10.0.0.2", 6380));
        let promoted = parse(
            PROMOTED_SLAVE,
            "slave 10.0.0.3:6381 10.0.0.3 6381 @ mymaster 10.0.0.1 6379",
        )
        .unwrap();
        assert_eq!((promoted.host.as_str(), promoted.port), ("10.0.0.3", 6381));
        assert_eq!(
            parse(SWITCH_MASTER, "other 10.0.0.1 6379 10.0.0.2 6380"),
            None
        );
        assert_eq!(
            parse(
                PROMOTED_SLAVE,
                "slave 10.0.0.3:6381 10.0.0.3 6381 @ other 10.0.0.1 6379"
            ),
            None
        );
        assert_eq!(parse(SWITCH_MASTER, "mymaster 10.0.0.1 6379"), None);
        assert_eq!(
            parse(SWITCH_MASTER, "mymaster 10.0.0.1 6379 10.0.0.2 x"),
            None
        );
        assert_eq!(
            parse("+sdown", "mymaster 10.0.0.1 6379 10.0.0.2 6380"),
            None
        );
    }
}

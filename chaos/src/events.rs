//! Sentinel's own account of the failover, read from its Pub/Sub channels.
//!
//! Every sentinel publishes its state changes on channels named after the event (`+sdown`,
//! `+odown`, `+try-failover`, `+elected-leader`, `+switch-master`, `+convert-to-slave`...). The
//! failover time in the report comes from these, not from the client's point of view: "Sentinel
//! promoted a replica 3.2 s after the kill" and "clients wrote again 3.9 s after the kill" are
//! different numbers, and an operator tuning `down-after-milliseconds` needs both.
//!
//! One task per sentinel runs `PSUBSCRIBE *` and records every message with the experiment clock.
//! A killed sentinel drops the subscription; the task reconnects every 200 ms until stopped, so a
//! restarted sentinel is heard again. Reading the log file instead would work for processes but
//! not for containers; Pub/Sub works identically for both backends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::history::{Clock, History, SentinelEvent};

/// The watcher tasks; aborted on drop.
pub struct SentinelWatch {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SentinelWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Events worth a line in the timeline (the rest are still in report.json).
pub fn is_notable(event: &str) -> bool {
    matches!(
        event,
        "+sdown"
            | "-sdown"
            | "+odown"
            | "-odown"
            | "+try-failover"
            | "+elected-leader"
            | "+selected-slave"
            | "+promoted-slave"
            | "+switch-master"
            | "+convert-to-slave"
            | "+failover-end"
            | "-failover-abort-not-elected"
            | "-failover-abort-no-good-slave"
            | "+failover-end-for-timeout"
    )
}

impl SentinelWatch {
    /// Starts one subscriber per `(name, port)`. Returns once each has subscribed (or failed to,
    /// within 2 s), so no event after this call is missed.
    pub async fn start(
        sentinels: Vec<(String, u16)>,
        clock: Clock,
        history: Arc<History>,
    ) -> SentinelWatch {
        let mut tasks = Vec::new();
        let mut ready = Vec::new();
        for (name, port) in sentinels {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            ready.push(rx);
            let history = history.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = Some(tx);
                loop {
                    if let Ok(mut stream) = subscribe(port).await {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                        while let Some(msg) = stream.next().await {
                            let event = msg.get_channel_name().to_string();
                            let detail: String = msg.get_payload().unwrap_or_default();
                            history.sentinel_event(SentinelEvent {
                                at_ms: clock.now(),
                                sentinel: name.clone(),
                                event,
                                detail,
                            });
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }));
        }
        for rx in ready {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        SentinelWatch { tasks }
    }
}

async fn subscribe(port: u16) -> redis::RedisResult<redis::aio::PubSubStream> {
    use redis::IntoConnectionInfo;
    let client = redis::Client::open(
        redis::ConnectionAddr::Tcp("127.0.0.1".into(), port).into_connection_info()?,
    )?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(1), client.get_async_pubsub())
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    pubsub.psubscribe("*").await?;
    Ok(pubsub.into_on_message())
}

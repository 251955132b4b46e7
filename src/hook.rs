//! The two rmqtt hooks the bridge registers.
//!
//! - `MessagePublish`: forwards the publish. rmqtt runs it *before* its publish ACL
//!   check, so the bridge asks the session's ACL itself and never forwards a publish
//!   the broker will deny.
//! - `MessagePublishCheckAcl`: answers with the refusal of an ack-mode publish whose
//!   records Kafka did not take (see `ack.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::session::Session;
use rmqtt::types::{From, Publish, PublishAclResult, QoS};

use crate::ack::{AckWait, Acks};
use crate::bridge::Bridges;
use crate::log_limited;
use crate::publish::PublishInfo;
use crate::stats::LogLimiter;

/// What the hooks share with the plugin.
#[derive(Default)]
pub struct HookState {
    /// The running bridges; `None` while the plugin is stopped.
    pub running: RwLock<Option<Arc<Bridges>>>,
    pub acks: Arc<Acks>,
}

pub struct PublishHook(pub Arc<HookState>);

#[async_trait]
impl Handler for PublishHook {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessagePublish(session, from, publish) = param {
            // An earlier handler (a topic rewrite, say) may have replaced the publish.
            let publish = match &acc {
                Some(HookResult::Publish(p)) => p,
                _ => publish,
            };
            let bridges = self.0.running.read().clone();
            if let Some(bridges) = bridges {
                forward(&bridges, *session, from, publish).await;
            }
        }
        (true, acc)
    }
}

async fn forward(bridges: &Bridges, session: Option<&Session>, from: &From, publish: &Publish) {
    let entries = bridges.matching(&publish.topic);
    if entries.is_empty() {
        return;
    }
    if let Some(s) = session {
        let acl = s
            .scx
            .extends
            .hook_mgr()
            .hook(s.clone())
            .message_publish_check_acl(publish)
            .await;
        if !acl.is_allow() {
            entries.iter().for_each(|e| e.stats().acl_denied());
            return;
        }
    }
    let info = PublishInfo::new(from, publish);
    let ack = publish.qos != QoS::AtMostOnce && publish.packet_id.is_some();
    let mut wait = AckWait::default();
    for e in &entries {
        e.forward(&info, ack, &mut wait).await;
    }
    if let Err(failure) = wait.wait().await {
        let (Some(s), Some(packet_id)) = (session, publish.packet_id) else {
            return;
        };
        if s.superuser().await.unwrap_or_default() {
            // rmqtt skips the ACL hooks for superusers, so the refusal cannot reach the
            // client: the record is counted as failed, and the PUBACK goes out anyway.
            static SUPERUSER_LOG: LogLimiter = LogLimiter::new(1000);
            log_limited!(
                SUPERUSER_LOG,
                log::Level::Warn,
                "{:?}: ack-mode publish of a superuser failed ({failure:?}) but cannot be refused",
                s.id
            );
            return;
        }
        let protocol = s.protocol().await.unwrap_or(4);
        bridges
            .acks()
            .refuse(from.client_id.clone(), packet_id.get(), &failure, protocol);
    }
}

pub struct RefusalHook(pub Arc<Acks>);

#[async_trait]
impl Handler for RefusalHook {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessagePublishCheckAcl(session, publish) = param {
            if let Some(id) = publish.packet_id {
                if let Some(result) = self.0.take_refusal(&session.id.client_id, id.get()) {
                    return (
                        false,
                        Some(HookResult::PublishAclResult(PublishAclResult(result))),
                    );
                }
            }
        }
        (true, acc)
    }
}

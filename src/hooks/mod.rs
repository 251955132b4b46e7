//! The two rmqtt hooks the bridge registers, as thin adapters to the pipeline.
//!
//! - `MessagePublish`: forwards the publish. rmqtt runs it *before* its publish ACL
//!   check, so the bridge asks the session's ACL itself and never forwards a publish
//!   the broker will deny.
//! - `MessagePublishCheckAcl`: answers with the refusal of a publish whose records did
//!   not get where their entry's `remote.ack` level needs them (`refusals.rs`). It is
//!   registered only once a pipeline can refuse ([`RefusalRegistration`]).

mod refusals;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Register, ReturnType, Type};
use rmqtt::session::Session;
use rmqtt::types::{From, Publish, PublishAclResult, QoS};

pub use refusals::Refusals;

use crate::delivery::AckFailure;
use crate::log_limited;
use crate::observe::LogLimiter;
use crate::pipeline::{Pipeline, PublishInfo, Running};

/// Forwards every publish through the running pipeline.
pub struct PublishHook {
    pub running: Arc<Running>,
    pub refusals: Arc<Refusals>,
}

#[async_trait]
impl Handler for PublishHook {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessagePublish(session, from, publish) = param {
            // An earlier handler (a topic rewrite, say) may have replaced the publish.
            let publish = match &acc {
                Some(HookResult::Publish(p)) => p,
                _ => publish,
            };
            if let Some(pipeline) = self.running.get() {
                self.forward(&pipeline, *session, from, publish).await;
            }
        }
        (true, acc)
    }
}

impl PublishHook {
    async fn forward(
        &self,
        pipeline: &Pipeline,
        session: Option<&Session>,
        from: &From,
        publish: &Publish,
    ) {
        let entries = pipeline.route(&publish.topic);
        if entries.is_empty() {
            return;
        }
        if let Some(s) = session {
            let hooks = s.scx.extends.hook_mgr().hook(s.clone());
            if !hooks.message_publish_check_acl(publish).await.is_allow() {
                entries.iter().for_each(|e| e.acl_denied());
                return;
            }
        }
        let info = PublishInfo::new(from, publish);
        let ack = publish.qos != QoS::AtMostOnce && publish.packet_id.is_some();
        if let Err(failure) = pipeline.forward(&entries, &info, ack).await {
            if let (Some(s), Some(packet_id)) = (session, publish.packet_id) {
                self.refuse(s, from, packet_id.get(), failure).await;
            }
        }
    }

    /// Records the refusal that the session's ACL hook will answer with.
    async fn refuse(&self, s: &Session, from: &From, packet_id: u16, failure: AckFailure) {
        if s.superuser().await.unwrap_or_default() {
            // rmqtt skips the ACL hooks for superusers, so the refusal cannot reach the
            // client: the record is counted as failed, and the PUBACK goes out anyway.
            static SUPERUSER_LOG: LogLimiter = LogLimiter::new(1000);
            log_limited!(
                SUPERUSER_LOG,
                log::Level::Warn,
                "{:?}: a publish of a superuser failed ({failure:?}) but cannot be refused",
                s.id
            );
            return;
        }
        let protocol = s.protocol().await.unwrap_or(4);
        let client_id = from.client_id.clone();
        self.refusals
            .refuse(client_id, packet_id, &failure, protocol);
    }
}

/// Answers the session's ACL check with the refusal recorded for its publish.
pub struct RefusalHook(Arc<Refusals>);

#[async_trait]
impl Handler for RefusalHook {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessagePublishCheckAcl(session, publish) = param {
            if let Some(id) = publish.packet_id {
                if let Some(result) = self.0.take(&session.id.client_id, id.get()) {
                    let refusal = HookResult::PublishAclResult(PublishAclResult(result));
                    return (false, Some(refusal));
                }
            }
        }
        (true, acc)
    }
}

/// The registration of [`RefusalHook`], made the first time a pipeline that can refuse a
/// publish ([`Pipeline::may_refuse`]) is about to run. Until then the broker has no
/// `MessagePublishCheckAcl` handler of ours, and rmqtt's ACL check, made twice for every
/// publish (the bridge's own and the broker's), skips its handler chain: a lock on the
/// chain and a handler call each time (docs/benchmark-history.md measures what that saves).
pub struct RefusalRegistration {
    register: Box<dyn Register>,
    refusals: Arc<Refusals>,
    /// Whether the handler was added; it then stays, enabled while the plugin runs.
    added: AtomicBool,
}

impl RefusalRegistration {
    pub fn new(scx: &ServerContext, refusals: Arc<Refusals>) -> RefusalRegistration {
        RefusalRegistration {
            register: scx.extends.hook_mgr().register(),
            refusals,
            added: AtomicBool::new(false),
        }
    }

    /// Makes sure refusals reach the client before `pipeline` takes publishes.
    pub async fn prepare_for(&self, pipeline: &Pipeline) {
        if !pipeline.may_refuse() && !self.added.load(Ordering::Acquire) {
            return;
        }
        if !self.added.swap(true, Ordering::AcqRel) {
            let handler = Box::new(RefusalHook(self.refusals.clone()));
            // First among the ACL handlers, so that a refusal ends the chain.
            self.register
                .add_priority(Type::MessagePublishCheckAcl, u32::MAX, handler)
                .await;
        }
        self.register.start().await;
    }

    pub async fn stop(&self) {
        self.register.stop().await;
    }
}

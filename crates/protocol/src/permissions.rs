//! What each service may publish and subscribe to on NATS, defined once.
//!
//! Every service logs in to NATS as a user of its own, whose permissions allow only the subjects
//! it needs: a compromised ws-agent cannot read password hashes from `$KV.dyschat_users`, write
//! a membership record, answer as the auth service or consume the writer's messages. The NATS
//! configurations of every environment (`deploy/nats/dyschat-users.conf` for production, the one
//! `make run_dev` writes, the one the tests start their servers with) are generated from
//! [`authorization`], so a subject added to a service and missing here fails the tests (the
//! server refuses it and logs a permissions violation).
//!
//! JetStream's API is itself NATS subjects (`$JS.API.<verb>.<stream>[.<consumer>]`), so the grants
//! below name the streams and buckets each service uses and the verbs it needs on them: creating
//! or updating what it ensures at start, reading (direct gets and ordered consumers) what it
//! reads, and writing (`$KV.<bucket>.>`) only what it owns.
//!
//! Replies to requests go to the requester's inbox, which carries the service's name
//! ([`inbox_prefix`]), so a service can read only its own replies; the answering side publishes
//! to the reply subject of what it received (`allow_responses`).

use crate::files_layout;
use crate::layout::{self, kv_stream};
use crate::streams::{self, MessageStreams};
use crate::subjects;

/// A service of the mesh, as NATS knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Auth,
    Rooms,
    MsgWriter,
    WsAgent,
    Search,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Auth,
        Service::Rooms,
        Service::MsgWriter,
        Service::WsAgent,
        Service::Search,
    ];

    /// The NATS user of the service (also its connection name).
    pub fn user(self) -> &'static str {
        match self {
            Service::Auth => subjects::auth::SERVICE,
            Service::Rooms => subjects::rooms::SERVICE,
            Service::MsgWriter => "dyschat-msg-writer",
            Service::WsAgent => "dyschat-ws-agent",
            Service::Search => subjects::search::SERVICE,
        }
    }

    /// The variable holding the service's NATS password in the production configuration.
    pub fn password_var(self) -> &'static str {
        match self {
            Service::Auth => "DYSCHAT_AUTH_NATS_PASSWORD",
            Service::Rooms => "DYSCHAT_ROOMS_NATS_PASSWORD",
            Service::MsgWriter => "DYSCHAT_MSG_WRITER_NATS_PASSWORD",
            Service::WsAgent => "DYSCHAT_WS_AGENT_NATS_PASSWORD",
            Service::Search => "DYSCHAT_SEARCH_NATS_PASSWORD",
        }
    }
}

/// The inbox prefix of a client named `name`: its replies arrive under `<prefix>.>`.
pub fn inbox_prefix(name: &str) -> String {
    format!("_INBOX_{name}")
}

/// The subjects a user may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub publish: Vec<String>,
    /// Refused even where `publish` allows.
    pub deny_publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// Refused even where `subscribe` allows.
    pub deny_subscribe: Vec<String>,
    /// May publish to the reply subject of a request it received.
    pub allow_responses: bool,
}

const API: &str = "$JS.API";

impl Grant {
    fn publish(&mut self, subjects: impl IntoIterator<Item = impl Into<String>>) -> &mut Self {
        self.publish.extend(subjects.into_iter().map(Into::into));
        self
    }

    fn subscribe(&mut self, subjects: impl IntoIterator<Item = impl Into<String>>) -> &mut Self {
        self.subscribe.extend(subjects.into_iter().map(Into::into));
        self
    }

    /// Creates or updates `stream` at start (never deletes or purges it).
    fn ensures(&mut self, stream: &str) -> &mut Self {
        self.publish(
            ["INFO", "CREATE", "UPDATE"].map(|verb| format!("{API}.STREAM.{verb}.{stream}")),
        )
    }

    /// Reads `stream`: direct gets, stored-message gets, ordered consumers of its own.
    fn reads(&mut self, stream: &str) -> &mut Self {
        self.publish([
            format!("{API}.DIRECT.GET.{stream}"),
            format!("{API}.DIRECT.GET.{stream}.>"),
            format!("{API}.STREAM.MSG.GET.{stream}"),
            format!("{API}.CONSUMER.CREATE.{stream}"),
            format!("{API}.CONSUMER.CREATE.{stream}.>"),
            format!("{API}.CONSUMER.MSG.NEXT.{stream}.*"),
            format!("{API}.CONSUMER.DELETE.{stream}.>"),
            format!("{API}.CONSUMER.INFO.{stream}.>"),
        ])
    }

    /// Follows the KV bucket `bucket` with a watch (reads, and answers the flow-control requests
    /// of its ordered push consumer, `$JS.FC.<stream>.>`) without writing to it.
    fn watches_bucket(&mut self, bucket: &str) -> &mut Self {
        let stream = kv_stream(bucket);
        self.ensures(&stream)
            .reads(&stream)
            .publish([format!("$JS.FC.{stream}.>")])
    }

    /// May look at the durable `consumer` of `stream` but not take its messages, acknowledge,
    /// replace or delete it (the writer's consumer, for everyone but the writer).
    fn only_watches(&mut self, stream: &str, consumer: &str) -> &mut Self {
        self.deny_publish.extend([
            format!("{API}.CONSUMER.CREATE.{stream}.{consumer}"),
            format!("{API}.CONSUMER.CREATE.{stream}.{consumer}.>"),
            format!("{API}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}"),
            format!("{API}.CONSUMER.DELETE.{stream}.{consumer}"),
            format!("{API}.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            format!("$JS.ACK.{stream}.{consumer}.>"),
        ]);
        self
    }

    /// Removes messages of `stream` by subject (room deletion); never deletes the stream.
    fn purges(&mut self, stream: &str) -> &mut Self {
        self.publish([format!("{API}.STREAM.PURGE.{stream}")])
    }

    /// Erases single messages of `stream` (a deleted chat message, and the older change events
    /// of it, which a purge of its change subject keeping the last one removes).
    fn erases(&mut self, stream: &str) -> &mut Self {
        self.purges(stream)
            .publish([format!("{API}.STREAM.MSG.DELETE.{stream}")])
    }

    /// Ensures, reads and writes the KV bucket `bucket`.
    fn owns_bucket(&mut self, bucket: &str) -> &mut Self {
        let stream = kv_stream(bucket);
        self.ensures(&stream)
            .reads(&stream)
            .publish([format!("$KV.{bucket}.>")])
    }

    /// Ensures, reads and writes the object store `bucket` (chunks and metadata under
    /// `$O.<bucket>.>`), and purges it by subject (removing an object purges its chunks).
    fn owns_object_store(&mut self, bucket: &str) -> &mut Self {
        let stream = crate::files_layout::object_stream(bucket);
        self.ensures(&stream)
            .reads(&stream)
            .purges(&stream)
            .publish([format!("$O.{bucket}.>")])
    }

    /// A NATS micro service: its endpoints under `group`, the service API's discovery subjects,
    /// and answers to what it receives.
    fn serves(&mut self, name: &str, group: &str) -> &mut Self {
        self.allow_responses = true;
        self.subscribe([
            format!("{group}.>"),
            "$SRV.*".to_string(),
            format!("$SRV.*.{name}"),
            format!("$SRV.*.{name}.>"),
        ])
    }
}

/// The grant of `service`.
pub fn grant(service: Service) -> Grant {
    let mut g = Grant::default();
    g.publish([format!("{API}.INFO")])
        .subscribe([format!("{}.>", inbox_prefix(service.user()))]);
    match service {
        Service::Auth => {
            g.serves(subjects::auth::SERVICE, subjects::auth::GROUP)
                .owns_bucket(layout::USERS_BUCKET)
                .owns_bucket(layout::USERNAMES_BUCKET)
                .owns_bucket(layout::USER_IDS_BUCKET)
                // The only writer of revocations (logout).
                .owns_bucket(layout::REVOKED_BUCKET);
        }
        Service::Rooms => {
            g.serves(subjects::rooms::SERVICE, subjects::rooms::GROUP)
                .owns_bucket(layout::ROOMS_BUCKET)
                .owns_bucket(layout::ROOM_INDEX_BUCKET)
                .owns_bucket(layout::MEMBERS_BUCKET)
                .owns_bucket(layout::MEMBERSHIPS_BUCKET)
                .owns_bucket(layout::BANS_BUCKET)
                .owns_bucket(layout::INVITES_BUCKET)
                .owns_bucket(layout::DMS_BUCKET)
                .owns_bucket(layout::BLOCKS_BUCKET)
                // A room's deletion removes its messages (below) and its (room, user) records.
                .purges(&kv_stream(layout::MEMBERS_BUCKET))
                .purges(&kv_stream(layout::INVITES_BUCKET))
                .purges(&kv_stream(layout::BANS_BUCKET))
                // ... and its member count.
                .purges(layout::COUNTERS_STREAM)
                // ... and its files; unattached files are swept.
                .owns_bucket(files_layout::FILE_RECORDS_BUCKET)
                .purges(&kv_stream(files_layout::FILE_RECORDS_BUCKET))
                .owns_bucket(files_layout::FILE_SWEEP_BUCKET)
                .purges(&kv_stream(files_layout::FILE_SWEEP_BUCKET))
                .owns_object_store(files_layout::FILES_OBJECT_STORE)
                // Presence is written by the agents; rooms ensures and reads it for member pages.
                .ensures(&kv_stream(layout::PRESENCE_BUCKET))
                .reads(&kv_stream(layout::PRESENCE_BUCKET))
                // The live agents (written by them) are who must confirm an eviction.
                .ensures(&kv_stream(layout::AGENTS_BUCKET))
                .reads(&kv_stream(layout::AGENTS_BUCKET))
                .ensures(layout::COUNTERS_STREAM)
                .reads(layout::COUNTERS_STREAM)
                // The stream of notifications the feed writes.
                .ensures(layout::FEED_STREAM)
                // A deleted message's (or room's) notifications are erased.
                .reads(layout::FEED_STREAM)
                .erases(layout::FEED_STREAM)
                .publish([
                    subjects::COUNTERS_WILDCARD.to_string(),
                    subjects::MEMBERSHIP_WILDCARD.to_string(),
                    subjects::ROOM_EVENTS_WILDCARD.to_string(),
                    subjects::EVICTION_WILDCARD.to_string(),
                    // Usernames of invitees and direct-room peers.
                    subjects::auth::USER_SUBJECT.to_string(),
                    // Who a mention names.
                    subjects::auth::USERS_BY_NAME_SUBJECT.to_string(),
                    subjects::FEED_WILDCARD.to_string(),
                    subjects::NOTIFIED_WILDCARD.to_string(),
                ]);
            let feed = layout::FEED_CONSUMER;
            for messages in MessageStreams::every_possible_stream() {
                // A room's deletion removes its messages; the feed has its own durable
                // consumer of room messages and reads whether a message was deleted before its
                // notifications were made.
                g.purges(&messages)
                    .ensures(&messages)
                    .reads(&messages)
                    .only_watches(&messages, layout::WRITER_CONSUMER)
                    .publish([
                        format!("{API}.CONSUMER.DURABLE.CREATE.{messages}.{feed}"),
                        format!("{API}.CONSUMER.CREATE.{messages}.{feed}"),
                        format!("{API}.CONSUMER.CREATE.{messages}.{feed}.>"),
                        format!("{API}.CONSUMER.INFO.{messages}.{feed}"),
                        format!("{API}.CONSUMER.MSG.NEXT.{messages}.{feed}"),
                        format!("$JS.ACK.{messages}.{feed}.>"),
                    ]);
            }
        }
        Service::MsgWriter => {
            let writer = layout::WRITER_CONSUMER;
            for stream in MessageStreams::every_possible_stream() {
                g.ensures(&stream)
                    .reads(&stream)
                    // Applying a deletion erases the message and its older change events.
                    .erases(&stream)
                    .publish([
                        format!("{API}.CONSUMER.DURABLE.CREATE.{stream}.{writer}"),
                        format!("{API}.CONSUMER.MSG.NEXT.{stream}.{writer}"),
                        format!("$JS.ACK.{stream}.{writer}.>"),
                    ]);
            }
            g.ensures(layout::DEAD_LETTER_STREAM)
                .publish([subjects::DEAD_LETTER_WILDCARD.to_string()])
                // A deleted room's history leaves Redis.
                .subscribe([subjects::ROOM_EVENTS_WILDCARD]);
        }
        Service::Search => {
            // Its own durable consumers (`search-<instance>`, see `search_layout`): made,
            // replaced when its index was lost, pulled and acknowledged. A subject token cannot
            // be matched by prefix, so the consumers of the stream are granted but the writer's
            // and the feed's.
            g.serves(subjects::search::SERVICE, subjects::search::GROUP);
            for stream in MessageStreams::every_possible_stream() {
                g.ensures(&stream)
                    .publish([
                        format!("{API}.STREAM.INFO.{stream}"),
                        format!("{API}.CONSUMER.DURABLE.CREATE.{stream}.>"),
                        format!("{API}.CONSUMER.CREATE.{stream}.>"),
                        format!("{API}.CONSUMER.INFO.{stream}.>"),
                        format!("{API}.CONSUMER.DELETE.{stream}.>"),
                        format!("{API}.CONSUMER.MSG.NEXT.{stream}.>"),
                        format!("$JS.ACK.{stream}.>"),
                    ])
                    .only_watches(&stream, layout::WRITER_CONSUMER)
                    .only_watches(&stream, layout::FEED_CONSUMER);
            }
            // A deleted room's documents leave the index.
            g.subscribe([subjects::ROOM_EVENTS_WILDCARD]);
        }
        Service::WsAgent => {
            for stream in MessageStreams::every_possible_stream() {
                g.ensures(&stream)
                    .reads(&stream)
                    .only_watches(&stream, layout::WRITER_CONSUMER)
                    .only_watches(&stream, layout::FEED_CONSUMER);
            }
            g.owns_bucket(layout::PRESENCE_BUCKET)
                .owns_bucket(layout::AGENTS_BUCKET)
                .owns_bucket(layout::READ_BUCKET)
                .owns_bucket(layout::FEED_READ_BUCKET)
                // Uploads, downloads, attachments and a message's deletion.
                .owns_bucket(files_layout::FILE_RECORDS_BUCKET)
                .owns_bucket(files_layout::FILE_SWEEP_BUCKET)
                .owns_object_store(files_layout::FILES_OBJECT_STORE)
                // Notifications are rooms' to write; the agents page and count them.
                .ensures(layout::FEED_STREAM)
                .reads(layout::FEED_STREAM)
                // Revocations are auth's to write; every agent ensures and watches them.
                .watches_bucket(layout::REVOKED_BUCKET)
                .publish([
                    subjects::ROOM_MESSAGES_WILDCARD.to_string(),
                    subjects::ROOM_CHANGES_WILDCARD.to_string(),
                    // nats-server checks a publish against the subject after its account's
                    // mapping: with partitions, a send is allowed on its stored subject.
                    streams::PARTITIONED_MESSAGES_WILDCARD.to_string(),
                    streams::PARTITIONED_CHANGES_WILDCARD.to_string(),
                    format!("{}.>", subjects::auth::GROUP),
                    format!("{}.>", subjects::rooms::GROUP),
                    format!("{}.>", subjects::search::GROUP),
                    subjects::service_ping(subjects::auth::SERVICE),
                    subjects::service_ping(subjects::rooms::SERVICE),
                    subjects::TYPING_WILDCARD.to_string(),
                    subjects::PRESENCE_WILDCARD.to_string(),
                    subjects::USER_EVENTS_WILDCARD.to_string(),
                    subjects::RECEIPT_WILDCARD.to_string(),
                ])
                .subscribe([
                    subjects::LIVE_WILDCARD,
                    subjects::LIVE_CHANGES_WILDCARD,
                    subjects::MEMBERSHIP_WILDCARD,
                    subjects::TYPING_WILDCARD,
                    subjects::PRESENCE_WILDCARD,
                    subjects::RECEIPT_WILDCARD,
                    // Each user's subject, while the agent holds a socket of theirs.
                    subjects::USER_EVENTS_WILDCARD,
                    subjects::ROOM_EVENTS_WILDCARD,
                    // Every agent answers every eviction (not a queue group).
                    subjects::EVICTION_WILDCARD,
                ]);
            // The eviction acknowledgement goes to the rooms service's reply inbox.
            g.allow_responses = true;
        }
    }
    g
}

/// How a user's password appears in a generated configuration.
#[derive(Debug, Clone, Copy)]
pub enum Password<'a> {
    /// The value itself (a development or test server).
    Literal(&'a str),
    /// A variable the server reads from its environment (production: [`Service::password_var`]).
    Variable(&'a str),
}

/// One `users` entry of a nats-server configuration: `user`, `password` and its grant.
pub fn user_entry(user: &str, password: Password<'_>, grant: &Grant) -> String {
    let password = match password {
        Password::Literal(p) => quoted(p),
        Password::Variable(var) => format!("${var}"),
    };
    let list = |name: &str, subjects: &[String]| {
        let mut out = format!("        {name}: [\n");
        for s in subjects {
            out.push_str(&format!("          {}\n", quoted(s)));
        }
        out.push_str("        ]\n");
        out
    };
    let mut out = format!(
        "  {{\n    user: {}\n    password: {password}\n",
        quoted(user)
    );
    out.push_str("    permissions: {\n      publish: {\n");
    out.push_str(&list("allow", &grant.publish));
    if !grant.deny_publish.is_empty() {
        out.push_str(&list("deny", &grant.deny_publish));
    }
    out.push_str("      }\n      subscribe: {\n");
    out.push_str(&list("allow", &grant.subscribe));
    if !grant.deny_subscribe.is_empty() {
        out.push_str(&list("deny", &grant.deny_subscribe));
    }
    out.push_str("      }\n");
    if grant.allow_responses {
        out.push_str("      allow_responses: true\n");
    }
    out.push_str("    }\n  }\n");
    out
}

/// The `users` list of every service, passwords as `password` gives them.
pub fn authorization<'a>(password: impl Fn(Service) -> Password<'a>) -> String {
    let mut out = String::from("users: [\n");
    for service in Service::ALL {
        out.push_str(&user_entry(
            service.user(),
            password(service),
            &grant(service),
        ));
    }
    out.push_str("]\n");
    out
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(patterns: &[String], subject: &str) -> bool {
        patterns.iter().any(|p| matches(p, subject))
    }

    fn may_publish(grant: &Grant, subject: &str) -> bool {
        allows(&grant.publish, subject) && !allows(&grant.deny_publish, subject)
    }

    /// NATS subject matching: `*` one token, `>` the rest.
    fn matches(pattern: &str, subject: &str) -> bool {
        let mut p = pattern.split('.');
        let mut s = subject.split('.');
        loop {
            match (p.next(), s.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn the_agent_cannot_touch_what_others_own() {
        let agent = grant(Service::WsAgent);
        for forbidden in [
            "$JS.API.DIRECT.GET.KV_dyschat_users",
            "$JS.API.CONSUMER.CREATE.KV_dyschat_users",
            "$JS.API.STREAM.MSG.GET.KV_dyschat_users",
            "$KV.dyschat_users.u1",
            "$KV.dyschat_members.r1.u1",
            "$JS.API.STREAM.DELETE.DYSCHAT_MESSAGES",
            "$JS.API.STREAM.PURGE.DYSCHAT_MESSAGES",
            "$JS.API.CONSUMER.MSG.NEXT.DYSCHAT_MESSAGES.msg-writer",
            "dyschat.events.membership.r1",
            "$JS.ACK.DYSCHAT_MESSAGES.msg-writer.1.2.3.4.5.6",
            "$JS.API.CONSUMER.DELETE.DYSCHAT_MESSAGES.msg-writer",
            "$JS.API.CONSUMER.CREATE.DYSCHAT_MESSAGES.msg-writer.dyschat.msg.room.*",
            "$KV.dyschat_revoked.0123abcd",
            "$JS.API.STREAM.PURGE.KV_dyschat_revoked",
            "$JS.API.STREAM.MSG.DELETE.KV_dyschat_revoked",
        ] {
            assert!(
                !may_publish(&agent, forbidden),
                "agent may publish {forbidden}"
            );
        }
        assert!(may_publish(
            &agent,
            "$JS.API.CONSUMER.MSG.NEXT.DYSCHAT_MESSAGES.xYz12"
        ));
        assert!(may_publish(
            &agent,
            "$JS.API.CONSUMER.INFO.DYSCHAT_MESSAGES.msg-writer"
        ));
        for revoked in [
            "$JS.API.DIRECT.GET.KV_dyschat_revoked.$KV.dyschat_revoked.0123abcd",
            "$JS.API.CONSUMER.CREATE.KV_dyschat_revoked.xYz12.$KV.dyschat_revoked.>",
            "$JS.API.STREAM.INFO.KV_dyschat_revoked",
            "$JS.FC.KV_dyschat_revoked.xYz12.1",
        ] {
            assert!(
                may_publish(&agent, revoked),
                "agent may not publish {revoked}"
            );
        }
        for forbidden in [
            "dyschat.auth.login",
            "dyschat.rooms.join",
            "_INBOX_dyschat-auth.x",
        ] {
            assert!(
                !allows(&agent.subscribe, forbidden),
                "agent may subscribe {forbidden}"
            );
        }
        assert!(allows(&agent.publish, "dyschat.msg.room.r1"));
        assert!(allows(&agent.publish, "dyschat.auth.login"));
        assert!(allows(&agent.subscribe, "_INBOX_dyschat-ws-agent.abc.1"));
    }

    #[test]
    fn only_auth_reads_the_users_bucket() {
        for service in Service::ALL {
            let reads = allows(
                &grant(service).publish,
                "$JS.API.DIRECT.GET.KV_dyschat_users",
            );
            assert_eq!(reads, service == Service::Auth, "{service:?}");
        }
    }

    #[test]
    fn only_auth_writes_revocations() {
        for service in Service::ALL {
            let writes = may_publish(&grant(service), "$KV.dyschat_revoked.0123abcd");
            assert_eq!(writes, service == Service::Auth, "{service:?}");
        }
    }

    #[test]
    fn the_configuration_names_every_user_with_its_password() {
        let conf = authorization(|s| Password::Variable(s.password_var()));
        for service in Service::ALL {
            assert!(conf.contains(&format!("user: \"{}\"", service.user())));
            assert!(conf.contains(&format!("password: ${}", service.password_var())));
        }
        let dev = authorization(|_| Password::Literal("a \"quoted\" one"));
        assert!(dev.contains(r#"password: "a \"quoted\" one""#));
    }
}

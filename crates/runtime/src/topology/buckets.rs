//! The KV buckets of the mesh, one configuration each. Every bucket keeps one revision per key
//! (`history: 1`): the services read the last value, and a key's revision orders its changes.
//! Buckets whose entries only live while their writer refreshes them (presence, agents) are in
//! memory with a TTL.

use async_nats::jetstream::{kv, stream::StorageType};
use dyschat_protocol::layout::{self, *};

use crate::config::TopologySettings;

fn bucket(config: &TopologySettings, name: &str, description: &str) -> kv::Config {
    kv::Config {
        bucket: name.into(),
        description: description.into(),
        history: 1,
        storage: StorageType::File,
        num_replicas: config.stream_replicas,
        ..Default::default()
    }
}

pub fn users_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        USERS_BUCKET,
        "DYSCHAT users by lower-cased username",
    )
}

pub fn rooms_bucket(config: &TopologySettings) -> kv::Config {
    bucket(config, ROOMS_BUCKET, "DYSCHAT rooms by room id")
}

pub fn members_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        MEMBERS_BUCKET,
        "DYSCHAT room members: <room_id>.<user_id>",
    )
}

pub fn memberships_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        MEMBERSHIPS_BUCKET,
        "DYSCHAT rooms of each user: <user_id>.<room_id>",
    )
}

pub fn room_index_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        ROOM_INDEX_BUCKET,
        "DYSCHAT room list in creation order: room id",
    )
}

pub fn agents_bucket(config: &TopologySettings) -> kv::Config {
    kv::Config {
        max_age: layout::PRESENCE_TTL,
        storage: StorageType::Memory,
        ..bucket(config, AGENTS_BUCKET, "DYSCHAT live ws-agents: <agent_id>")
    }
}

pub fn presence_bucket(config: &TopologySettings) -> kv::Config {
    kv::Config {
        max_age: layout::PRESENCE_TTL,
        storage: StorageType::Memory,
        ..bucket(
            config,
            PRESENCE_BUCKET,
            "DYSCHAT online users: <user_id>.<agent_id>",
        )
    }
}

/// Read markers (file storage: they outlive restarts), written by the agents.
pub fn read_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        READ_BUCKET,
        "DYSCHAT read markers: <user_id>.<room_id> -> seq",
    )
}

pub fn feed_read_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        FEED_READ_BUCKET,
        "DYSCHAT feed markers: <user_id> -> notification_id",
    )
}

pub fn bans_bucket(config: &TopologySettings) -> kv::Config {
    bucket(config, BANS_BUCKET, "DYSCHAT bans: <room_id>.<user_id>")
}

pub fn invites_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        INVITES_BUCKET,
        "DYSCHAT invitations: <room_id>.<user_id>",
    )
}

pub fn dms_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        DMS_BUCKET,
        "DYSCHAT direct rooms: <user_a>.<user_b> (sorted) -> room id",
    )
}

pub fn blocks_bucket(config: &TopologySettings) -> kv::Config {
    bucket(config, BLOCKS_BUCKET, "DYSCHAT blocks: <blocker>.<blocked>")
}

pub fn usernames_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        USERNAMES_BUCKET,
        "DYSCHAT usernames index (public): one token per character",
    )
}

pub fn user_ids_bucket(config: &TopologySettings) -> kv::Config {
    bucket(
        config,
        USER_IDS_BUCKET,
        "DYSCHAT user directory (public): <user_id>",
    )
}

/// Revoked tokens (logout): auth writes each with a per-message TTL ending when the token would
/// have expired (`limit_markers` turns per-message TTLs on; nats-server 2.11 or newer), so the
/// bucket holds only revocations that still matter and needs no sweeping. No bucket-wide
/// `max_age`: auth and every agent ensure this bucket, and its configuration must not depend
/// on a variable (the token lifetime) that only auth reads.
pub fn revoked_bucket(config: &TopologySettings) -> kv::Config {
    kv::Config {
        limit_markers: Some(layout::REVOKED_MARKER_TTL),
        ..bucket(
            config,
            REVOKED_BUCKET,
            "DYSCHAT revoked tokens: <token id> -> expiry",
        )
    }
}

/// File records (`<room_id>.<ulid>`, see `dyschat_protocol::files_layout`), written by the
/// agents (upload, attach, a message's deletion) and the rooms service (a room's deletion, the
/// sweep of unattached files). A removed record is purged with a short TTL (`limit_markers`), so
/// its marker does not stay in the stream for ever.
pub fn file_records_bucket(config: &TopologySettings) -> kv::Config {
    kv::Config {
        limit_markers: Some(layout::REVOKED_MARKER_TTL),
        ..bucket(
            config,
            dyschat_protocol::files_layout::FILE_RECORDS_BUCKET,
            "DYSCHAT file records: <room_id>.<ulid> -> file and state",
        )
    }
}

/// The sweep's work list of files (`<room_id>.<ulid>` -> the time written, see
/// `dyschat_protocol::files_layout`), written by the agents and the rooms service; entries are
/// purged with a short marker TTL like the records.
pub fn file_sweep_bucket(config: &TopologySettings) -> kv::Config {
    kv::Config {
        limit_markers: Some(layout::REVOKED_MARKER_TTL),
        ..bucket(
            config,
            dyschat_protocol::files_layout::FILE_SWEEP_BUCKET,
            "DYSCHAT files the sweep must look at: <room_id>.<ulid> -> since",
        )
    }
}

//! The Lua scripts, compiled into the binary and loaded into Redis on first use.
//!
//! `redis::Script` sends `EVALSHA` and falls back to loading the script when Redis
//! answers `NOSCRIPT` (after a restart, say), so nothing has to preload them.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))));
    };
}

script!(ENQUEUE, "enqueue.lua");
script!(FETCH, "fetch.lua");
script!(CONFIRM, "confirm.lua");
script!(ACK, "ack.lua");
script!(RENEW, "renew.lua");
script!(RESCUE, "rescue.lua");
script!(RELEASE, "release.lua");
script!(PROGRESS, "progress.lua");
script!(REMOVE, "remove.lua");
script!(REQUEUE, "requeue.lua");
script!(PAUSE, "pause.lua");
script!(CLEAN, "clean.lua");
script!(PAGE, "page.lua");
script!(OVERVIEW, "overview.lua");
script!(HEARTBEAT, "heartbeat.lua");
script!(WORKERS, "workers.lua");
script!(RETENTION_SELECT, "retention_select.lua");
script!(RETENTION_REMOVE, "retention_remove.lua");
script!(FLOW_SET, "flow_set.lua");
script!(FLOW_STATUS, "flow_status.lua");
script!(ARCHIVE_HOLD, "archive_hold.lua");

//! A flare's registry in Redis, `burst:{flare_id}:packs`: which packs have
//! joined and which have closed, and the scripts that keep it true.
//!
//! A pack joins when it connects and is refused if its flare already has
//! that pack (the flare id is in use, or its state has not expired). Every
//! write to an inbox is [`PUSH`], which drops the frame once the destination
//! closed, so nothing (an abort from a pack that failed late, say) recreates
//! a closed pack's inbox; [`CLOSE`] deletes the pack's inbox and marks it
//! closed in one step, and the last pack to close deletes the registry.

use super::{BackendError, BrokerOptions, EXPIRY_MARGIN, Failure, check_flare_id, frame, inbox_key, io_error};

/// Joins pack `ARGV[1]` to the registry `KEYS[1]` (expiring in `ARGV[2]`
/// seconds); 0 if the pack was there already.
const JOIN: &str = "if redis.call('HSETNX', KEYS[1], ARGV[1], 'open') == 0 then return 0 end \
    redis.call('EXPIRE', KEYS[1], ARGV[2]) return 1";

/// Appends frame `ARGV[3]` to the inbox `KEYS[2]` of pack `ARGV[1]`
/// (expiring in `ARGV[2]` seconds) unless the registry `KEYS[1]` says the
/// pack closed.
const PUSH: &str = "if redis.call('HGET', KEYS[1], ARGV[1]) == 'closed' then return 0 end \
    redis.call('RPUSH', KEYS[2], ARGV[3]) redis.call('EXPIRE', KEYS[2], ARGV[2]) return 1";

/// Deletes the inbox `KEYS[2]` of pack `ARGV[1]` and marks it closed in the
/// registry `KEYS[1]`, which is deleted once all `ARGV[2]` packs closed.
const CLOSE: &str = "redis.call('DEL', KEYS[2]) redis.call('HSET', KEYS[1], ARGV[1], 'closed') \
    local closed = 0 \
    for _, state in ipairs(redis.call('HVALS', KEYS[1])) do if state == 'closed' then closed = closed + 1 end end \
    if closed >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) else redis.call('EXPIRE', KEYS[1], ARGV[3]) end \
    return closed";

/// The registry key of flare `flare_id`.
pub fn registry_key(flare_id: &str) -> String {
    format!("burst:{flare_id}:packs")
}

/// Joins pack `pack_id` to the registry of flare `flare_id`; `false` if
/// the pack is there already.
pub(super) async fn join(
    connection: &mut redis::aio::MultiplexedConnection,
    flare_id: &str,
    pack_id: u32,
    expiry: u64,
) -> redis::RedisResult<bool> {
    let joined: i64 = redis::cmd("EVAL")
        .arg(JOIN)
        .arg(1)
        .arg(registry_key(flare_id))
        .arg(pack_id)
        .arg(expiry)
        .query_async(connection)
        .await?;
    Ok(joined == 1)
}

/// The command that deletes the inbox of pack `pack_id` and marks it closed
/// (deleting the registry once all `pack_count` packs closed).
pub(super) fn close(flare_id: &str, pack_id: u32, pack_count: u32, expiry: u64) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command
        .arg(CLOSE)
        .arg(2)
        .arg(registry_key(flare_id))
        .arg(inbox_key(flare_id, pack_id))
        .arg(pack_id)
        .arg(pack_count)
        .arg(expiry);
    command
}

/// Adds to `pipe` the write of `frame` to the inbox of `to_pack` in flare
/// `flare_id`, which is dropped if that pack has closed.
pub(super) fn push(
    pipe: &mut redis::Pipeline,
    flare_id: &str,
    to_pack: u32,
    expiry: u64,
    frame: impl redis::ToRedisArgs,
) {
    pipe.cmd("EVAL")
        .arg(PUSH)
        .arg(2)
        .arg(registry_key(flare_id))
        .arg(inbox_key(flare_id, to_pack))
        .arg(to_pack)
        .arg(expiry)
        .arg(frame)
        .ignore();
}

/// Tells the packs `packs` of flare `flare_id` that the flare failed, from
/// outside it: the controller, when it fails a flare whose packs run (or
/// are about to) on hosts that would otherwise wait for their deadline. A
/// pack that has not joined yet finds the abort when it does; one that
/// closed is not recreated.
///
/// # Errors
/// [`BackendError::Io`] naming the URL.
pub async fn abort_flare(
    options: &BrokerOptions,
    flare_id: &str,
    packs: &[u32],
    failure: &Failure,
) -> Result<(), BackendError> {
    check_flare_id(flare_id)?;
    let url = options.url.as_str();
    let client = redis::Client::open(url).map_err(io_error(url))?;
    let mut connection = client.get_multiplexed_async_connection().await.map_err(io_error(url))?;
    let (frame, expiry) = (frame::encode_abort(flare_id, failure), (options.deadline + EXPIRY_MARGIN).as_secs());
    let mut pipe = redis::pipe();
    for &pack in packs {
        push(&mut pipe, flare_id, pack, expiry, &frame[..]);
    }
    pipe.query_async::<()>(&mut connection).await.map_err(io_error(url))
}

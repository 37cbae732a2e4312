//! The Redis backend: several instances share the interview locks, budgets and relay registry.
//!
//! - **Lock**: `{prefix}:lock:{interview}`, a hash (`owner` = `instance:conn`, `user`,
//!   `session`) with a lease (`REDIS_LOCK_LEASE_S`) the owning instance renews every third of
//!   it. An instance that dies stops renewing: its interviews are free within one lease. Claim,
//!   renewal and release are Lua scripts, so each is one atomic step.
//! - **Take-back across instances**: the claim script replaces the holder in the same step; the
//!   new instance then publishes an `evict` message on the old instance's channel
//!   (`{prefix}:inst:{instance}`), which closes its socket 4410 and answers `gone` once that
//!   session has persisted what it had. A renewal that finds another holder evicts too.
//! - **Budgets**: `{prefix}:budget:{interview}:{kind}`, a token bucket on Redis's clock that
//!   expires once it would be full again.
//! - **Relays**: `{prefix}:relay:{interview}` names the instance holding the interview's upstream
//!   session (renewed like a lock). A browser whose reconnect lands on another instance gets a
//!   new upstream session with the interview replayed, and the old instance is told to stop its
//!   relay.
//!
//! With Redis away: claims fail (the connection is refused with 1013, retryable), budgets
//! answer yes, renewals are retried, sessions in progress go on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot, watch};

use super::{Claim, Claimant, Coord, CoordError, LocalTable, PreviousGone};
use crate::config::Limits;
use crate::log::{log, Level};
use crate::ws::limits::Budget;

/// Deadline of every Redis command.
const OP_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest an instance waits for a taken-over session to end before answering `gone`.
const GONE_WAIT: Duration = Duration::from_secs(10);
/// Wait before re-subscribing after the subscription connection was lost.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);
/// At most one warning per this long while Redis is away.
const WARN_EVERY: Duration = Duration::from_secs(5);
/// Key prefix: every key and channel of this server starts with it.
pub const PREFIX: &str = "rv";

static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HMGET', KEYS[1], 'owner', 'user', 'session')
if not cur[1] then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'user', ARGV[2], 'session', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'granted'}
end
if ARGV[4] ~= '' and cur[2] == ARGV[2] and cur[3] == ARGV[4] then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'user', ARGV[2], 'session', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'took_over', cur[1]}
end
return {'busy'}
",
    )
});

static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local o = redis.call('HGET', KEYS[1], 'owner')
if o == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
if not o then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'user', ARGV[2], 'session', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 2
end
return 0
",
    )
});

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Sets a string key to ARGV[1] (with a lease) unless another value holds it; 1 when set.
static HOLD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if not v or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
",
    )
});

static DROP_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// A token bucket in milli-tokens on Redis's clock: ARGV capacity, gain per ms, wanted, ttl.
static BUCKET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'l', 't')
local level = tonumber(v[1]) or cap
local last = tonumber(v[2]) or now
if now > last then
  level = math.min(cap, level + (now - last) * rate)
  last = now
end
local ok = 0
if want <= level then
  level = level - want
  ok = 1
end
redis.call('HSET', KEYS[1], 'l', level, 't', last)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return ok
",
    )
});

/// A message between instances, on the receiver's channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Msg {
    /// Close your session `conn` of `iv` (taken over), then answer `Gone { token }` to `reply`.
    Evict {
        iv: String,
        conn: u64,
        reply: String,
        token: u64,
    },
    /// The session evicted under `token` is over.
    Gone { token: u64 },
    /// Stop your relay of `iv`: the browser is attached elsewhere.
    StopRelay { iv: String },
}

/// The Redis coordinator of one instance.
pub struct RedisCoord {
    client: redis::Client,
    conn: ConnectionManager,
    /// This instance's random id (lock owners, channel name).
    instance: String,
    lease_ms: u64,
    pub(super) local: LocalTable,
    /// Interviews whose relay this instance holds.
    relays: Mutex<HashSet<String>>,
    /// Take-backs waiting for another instance's `gone`, by token.
    waiters: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_token: AtomicU64,
    relay_stops: broadcast::Sender<String>,
    /// Lock releases still in flight (the server waits for them when it stops).
    releasing: watch::Sender<usize>,
    last_warning: Mutex<Option<Instant>>,
    /// Dropped with the coordinator: its background tasks end.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for RedisCoord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoord")
            .field("instance", &self.instance)
            .field("lease_ms", &self.lease_ms)
            .finish_non_exhaustive()
    }
}

async fn op<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, CoordError> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(CoordError::Timeout),
    }
}

fn random_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Unique enough per host when the OS has no randomness to give.
        b = (std::process::id() as u64 ^ crate::http::now_ms()).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl RedisCoord {
    /// Connects to `url` and starts the subscription and lease renewal tasks.
    pub async fn connect(url: &str, lease_ms: u64) -> Result<Arc<Self>, CoordError> {
        let client = redis::Client::open(url)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(OP_TIMEOUT)
            .set_response_timeout(OP_TIMEOUT)
            .set_number_of_retries(1);
        let conn = op(client.get_connection_manager_with_config(cfg)).await?;
        let (stop, stopped) = watch::channel(());
        let me = Arc::new(Self {
            client,
            conn,
            instance: random_id(),
            lease_ms: lease_ms.max(100),
            local: LocalTable::default(),
            relays: Mutex::default(),
            waiters: Mutex::default(),
            next_token: AtomicU64::new(1),
            relay_stops: broadcast::channel(256).0,
            releasing: watch::channel(0).0,
            last_warning: Mutex::new(None),
            _stop: stop,
        });
        me.ping().await?;
        // Subscribed before serving, so no eviction addressed to this instance is missed.
        let first = me.subscribe().await?;
        tokio::spawn(listen(Arc::downgrade(&me), first, stopped.clone()));
        tokio::spawn(renew(Arc::downgrade(&me), stopped));
        log(
            Level::Info,
            "coordination in redis",
            &[
                ("instance", me.instance.clone().into()),
                ("lease_ms", me.lease_ms.into()),
            ],
        );
        Ok(me)
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{PREFIX}:{kind}:{id}")
    }

    fn channel(instance: &str) -> String {
        format!("{PREFIX}:inst:{instance}")
    }

    fn owner(&self, conn: u64) -> String {
        format!("{}:{conn}", self.instance)
    }

    fn warn(&self, what: &'static str, e: &CoordError) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        log(
            Level::Warn,
            "redis unavailable",
            &[("op", what.into()), ("error", e.to_string().into())],
        );
    }

    async fn subscribe(&self) -> Result<redis::aio::PubSub, CoordError> {
        let mut ps = op(self.client.get_async_pubsub()).await?;
        op(ps.subscribe(Self::channel(&self.instance))).await?;
        Ok(ps)
    }

    async fn publish(&self, instance: &str, msg: &Msg) -> Result<u64, CoordError> {
        let payload =
            serde_json::to_string(msg).map_err(|e| CoordError::Unexpected(e.to_string()))?;
        let mut c = self.conn.clone();
        op(c.publish(Self::channel(instance), payload)).await
    }

    pub(super) async fn claim(
        &self,
        coord: &Coord,
        interview_id: &str,
        c: Claimant<'_>,
    ) -> Result<Claim, CoordError> {
        let mut conn = self.conn.clone();
        let mut inv = CLAIM.key(self.key("lock", interview_id));
        inv.arg(self.owner(c.conn))
            .arg(c.user_id)
            .arg(c.session_id)
            .arg(c.resume.unwrap_or(""))
            .arg(self.lease_ms);
        let answer: Vec<String> = op(inv.invoke_async(&mut conn)).await?;
        let previous = match answer.first().map(String::as_str) {
            Some("granted") => None,
            Some("busy") => return Ok(Claim::Busy),
            Some("took_over") => {
                let prev = answer.get(1).cloned().unwrap_or_default();
                let (inst, conn) = prev
                    .rsplit_once(':')
                    .and_then(|(i, n)| Some((i.to_string(), n.parse::<u64>().ok()?)))
                    .ok_or_else(|| CoordError::Unexpected(format!("lock owner {prev:?}")))?;
                Some((inst, conn))
            }
            other => return Err(CoordError::Unexpected(format!("{other:?}"))),
        };
        let gone = match &previous {
            // A holder in this process: evicted before the new entry replaces it.
            Some((inst, prev_conn)) if *inst == self.instance => Some(
                self.local
                    .evict(interview_id, *prev_conn)
                    .map_or(PreviousGone::Unreachable, PreviousGone::Local),
            ),
            _ => None,
        };
        let (evicted, alive) = LocalTable::insert(&mut self.local.lock(), interview_id, &c);
        let slot = coord.slot(interview_id, c.conn, evicted, alive);
        let Some((inst, previous_conn)) = previous else {
            return Ok(Claim::Granted(slot));
        };
        let remote = gone.is_none();
        let previous_gone = match gone {
            Some(g) => g,
            None => self.evict_remote(&inst, interview_id, previous_conn).await,
        };
        Ok(Claim::TookOver {
            slot,
            previous_gone,
            previous_conn,
            remote,
        })
    }

    /// Tells `instance` to close its session `conn` of `interview_id`.
    async fn evict_remote(&self, instance: &str, interview_id: &str, conn: u64) -> PreviousGone {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, tx);
        let msg = Msg::Evict {
            iv: interview_id.to_string(),
            conn,
            reply: self.instance.clone(),
            token,
        };
        match self.publish(instance, &msg).await {
            Ok(n) if n > 0 => PreviousGone::Remote(rx),
            // Nobody listens on that channel: the instance is gone, and its session with it.
            r => {
                if let Err(e) = r {
                    self.warn("evict", &e);
                }
                self.waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&token);
                PreviousGone::Unreachable
            }
        }
    }

    pub(super) fn release(self: &Arc<Self>, interview_id: &str, conn: u64) {
        self.local.remove(interview_id, conn);
        let me = self.clone();
        let key = self.key("lock", interview_id);
        let owner = self.owner(conn);
        self.releasing.send_modify(|n| *n += 1);
        spawn(async move {
            let mut c = me.conn.clone();
            let mut inv = RELEASE.key(key);
            inv.arg(owner);
            if let Err(e) = op(inv.invoke_async::<i64>(&mut c)).await {
                // The lease frees it in the end.
                me.warn("release", &e);
            }
            me.releasing.send_modify(|n| *n = n.saturating_sub(1));
        });
    }

    /// Waits until the lock releases in flight are done (at shutdown, so that this instance's
    /// interviews are free at once for the others rather than after the lease).
    pub(super) async fn settle(&self) {
        let mut rx = self.releasing.subscribe();
        while *rx.borrow_and_update() > 0 {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub(super) async fn take(
        &self,
        limits: &Limits,
        interview_id: &str,
        budget: Budget,
        amount: u64,
    ) -> bool {
        let (per_s, burst) = budget.spec(limits);
        let cap = burst.max(1).saturating_mul(1000);
        // Until the bucket would be full again (then forgetting it loses nothing).
        let ttl = cap.checked_div(per_s).map_or(86_400_000, |ms| ms + 1000);
        let mut c = self.conn.clone();
        let mut inv = BUCKET.key(self.key("budget", &format!("{interview_id}:{}", budget.name())));
        inv.arg(cap)
            .arg(per_s)
            .arg(amount.saturating_mul(1000))
            .arg(ttl);
        match op(inv.invoke_async::<i64>(&mut c)).await {
            Ok(v) => v == 1,
            Err(e) => {
                self.warn("budget", &e);
                true
            }
        }
    }

    pub(super) fn relay_started(self: &Arc<Self>, interview_id: &str) {
        self.relays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(interview_id.to_string());
        let me = self.clone();
        let id = interview_id.to_string();
        spawn(async move {
            if let Err(e) = me.hold_relay(&id).await {
                me.warn("relay registry", &e);
            }
        });
    }

    pub(super) fn relay_ended(self: &Arc<Self>, interview_id: &str) {
        self.relays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(interview_id);
        let me = self.clone();
        let key = self.key("relay", interview_id);
        spawn(async move {
            let mut c = me.conn.clone();
            let mut inv = DROP_IF.key(key);
            inv.arg(&me.instance);
            if let Err(e) = op(inv.invoke_async::<i64>(&mut c)).await {
                me.warn("relay registry", &e);
            }
        });
    }

    /// Sets or renews this instance's relay entry; false when another instance holds it.
    async fn hold_relay(&self, interview_id: &str) -> Result<bool, CoordError> {
        let mut c = self.conn.clone();
        let mut inv = HOLD.key(self.key("relay", interview_id));
        inv.arg(&self.instance).arg(self.lease_ms);
        Ok(op(inv.invoke_async::<i64>(&mut c)).await? == 1)
    }

    pub(super) async fn stop_relay_elsewhere(&self, interview_id: &str) -> bool {
        let mut c = self.conn.clone();
        let holder: Option<String> = match op(c.get(self.key("relay", interview_id))).await {
            Ok(h) => h,
            Err(e) => {
                self.warn("relay registry", &e);
                return false;
            }
        };
        let Some(inst) = holder.filter(|i| *i != self.instance) else {
            return false;
        };
        let msg = Msg::StopRelay {
            iv: interview_id.to_string(),
        };
        if let Err(e) = self.publish(&inst, &msg).await {
            self.warn("relay registry", &e);
        }
        true
    }

    pub(super) fn relay_stops(&self) -> broadcast::Receiver<String> {
        self.relay_stops.subscribe()
    }

    pub(super) async fn ping(&self) -> Result<(), CoordError> {
        let mut c = self.conn.clone();
        let pong: String = op(redis::cmd("PING").query_async(&mut c)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(CoordError::Unexpected(pong))
        }
    }

    /// One message from another instance.
    fn on_message(self: &Arc<Self>, msg: Msg) {
        match msg {
            Msg::Evict {
                iv,
                conn,
                reply,
                token,
            } => {
                let gone = self.local.evict(&iv, conn);
                if gone.is_some() {
                    log(
                        Level::Info,
                        "interview taken over by another instance",
                        &[("conn", conn.into()), ("interview_id", iv.into())],
                    );
                }
                let me = self.clone();
                spawn(async move {
                    if let Some(g) = gone {
                        let _ =
                            tokio::time::timeout(GONE_WAIT, PreviousGone::Local(g).wait()).await;
                    }
                    if let Err(e) = me.publish(&reply, &Msg::Gone { token }).await {
                        me.warn("take-back answer", &e);
                    }
                });
            }
            Msg::Gone { token } => {
                let w = self
                    .waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&token);
                if let Some(w) = w {
                    let _ = w.send(());
                }
            }
            Msg::StopRelay { iv } => {
                let _ = self.relay_stops.send(iv);
            }
        }
    }

    /// Renews the leases of every slot and relay this instance holds.
    async fn renew_all(self: &Arc<Self>) -> Result<(), CoordError> {
        let held: Vec<(String, u64, String, String)> = self
            .local
            .lock()
            .iter()
            .map(|(iv, h)| (iv.clone(), h.conn, h.user_id.clone(), h.session_id.clone()))
            .collect();
        let mut c = self.conn.clone();
        for (iv, conn, user, session) in held {
            let mut inv = RENEW.key(self.key("lock", &iv));
            inv.arg(self.owner(conn))
                .arg(&user)
                .arg(&session)
                .arg(self.lease_ms);
            if op(inv.invoke_async::<i64>(&mut c)).await? == 0 {
                // Lost while Redis was away and claimed by another connection since.
                if self.local.evict(&iv, conn).is_some() {
                    log(
                        Level::Warn,
                        "interview lease lost to another holder",
                        &[("conn", conn.into()), ("interview_id", iv.into())],
                    );
                }
            }
        }
        let relays: Vec<String> = self
            .relays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        for iv in relays {
            if !self.hold_relay(&iv).await? {
                let _ = self.relay_stops.send(iv);
            }
        }
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, w| !w.is_closed());
        Ok(())
    }
}

/// Runs `f` on the runtime if there is one (drops happen inside it; at process exit there may
/// be none, and the lease then frees what `f` would have).
fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(f);
    }
}

/// Receives this instance's messages, re-subscribing after Redis comes back.
async fn listen(me: Weak<RedisCoord>, first: redis::aio::PubSub, mut stop: watch::Receiver<()>) {
    let mut ps = Some(first);
    loop {
        if let Some(p) = ps.take() {
            let mut stream = p.into_on_message();
            loop {
                tokio::select! {
                    m = stream.next() => match m {
                        Some(m) => {
                            let Some(me) = me.upgrade() else { return };
                            match serde_json::from_slice::<Msg>(m.get_payload_bytes()) {
                                Ok(msg) => me.on_message(msg),
                                Err(e) => me.warn("message", &CoordError::Unexpected(e.to_string())),
                            }
                        }
                        None => break,
                    },
                    _ = stop.changed() => return,
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            _ = stop.changed() => return,
        }
        let Some(strong) = me.upgrade() else { return };
        match strong.subscribe().await {
            Ok(p) => {
                log(Level::Info, "redis subscription restored", &[]);
                ps = Some(p);
            }
            Err(e) => strong.warn("subscribe", &e),
        }
    }
}

/// Renews leases every third of the lease.
async fn renew(me: Weak<RedisCoord>, mut stop: watch::Receiver<()>) {
    let Some(every) = me.upgrade().map(|m| Duration::from_millis(m.lease_ms / 3)) else {
        return;
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(30)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(strong) = me.upgrade() else { return };
        if let Err(e) = strong.renew_all().await {
            strong.warn("lease renewal", &e);
        }
    }
}

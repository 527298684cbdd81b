//! The `redis` backend: one Lua script per decision (EVALSHA, EVAL-loaded again after a
//! Redis restart) implements GCRA atomically on the Redis server's clock, so every
//! streamgate instance that names the same block and Redis draws from one budget.
//!
//! - One multiplexed connection per block (redis `ConnectionManager`, created on the
//!   first request; it reconnects by itself).
//! - Micro-batching: up to [`MAX_IN_FLIGHT`] calls are in flight per block; decisions
//!   that arrive while that many are out go together in the next call (one script run for
//!   up to [`MAX_BATCH`] keys, each decided in arrival order). No request waits for a
//!   batch to fill: while fewer calls are out, a request is sent at once. Under load this
//!   divides Redis's per-call cost (the Lua dispatch dominates a GCRA step) by the batch
//!   size.
//! - Each call has [`TIMEOUT`]; an error or a timeout opens a short circuit
//!   ([`BREAKER`]) during which requests skip Redis and follow `on_backend_error`, so an
//!   outage costs one slow request per breaker period instead of one per request.
//! - Keys: `streamgate:rl:NAME:ip:ADDR`, or `streamgate:rl:NAME:{c,h,q}:HEX` where HEX
//!   is the first 128 bits of SHA-256 of the claim, header or query value: fixed-size
//!   keys whatever a client sends. NAME is percent-encoded. Each key expires when its
//!   budget is full again.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::key::BudgetKey;
use super::Decision;

/// Longest wait for one decision.
pub const TIMEOUT: Duration = Duration::from_millis(100);
/// How long requests skip Redis after it failed.
pub const BREAKER: Duration = Duration::from_millis(500);

/// Most decisions in one script call.
pub const MAX_BATCH: usize = 64;
/// Most script calls in flight per block.
pub const MAX_IN_FLIGHT: usize = 4;

/// GCRA for a batch. KEYS[1..n]: the budgets, one per decision (a key may repeat: the
/// decisions are taken in order); ARGV[1]: emission interval (µs); ARGV[2]: burst.
/// Returns `{a1, n1, a2, n2, ...}`: `a = 1, n = remaining` when allowed, `a = 0, n =
/// wait_us` when not. The state is the theoretical arrival time (TAT, µs since the epoch
/// on the Redis clock), formatted with `%.0f` because Lua 5.1 would print large numbers
/// in exponent form.
const SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or now) or now
  if tat < now then tat = now end
  local new_tat = tat + period
  local allow_at = new_tat - burst * period
  if now < allow_at then
    out[2 * i - 1] = 0
    out[2 * i] = allow_at - now
  else
    redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
    out[2 * i - 1] = 1
    out[2 * i] = math.floor((now - allow_at) / period)
  end
end
return out
"#;

/// One decision waiting for the batcher.
type Waiter = (String, oneshot::Sender<Result<Decision, RedisStoreError>>);

/// Characters of a block name kept as they are in a Redis key.
const NAME_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

/// Why Redis did not decide.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisStoreError {
    /// Redis failed recently; not asked again yet.
    #[error("redis failed less than {}ms ago", BREAKER.as_millis())]
    CircuitOpen,
    /// No answer within [`TIMEOUT`].
    #[error("redis did not answer within {}ms", TIMEOUT.as_millis())]
    Timeout,
    /// Connection or script error (the message never holds the URL).
    #[error("redis error: {0}")]
    Redis(String),
}

/// A block's budgets in Redis.
pub struct RedisStore {
    client: redis::Client,
    conn: OnceLock<ConnectionManager>,
    /// The batcher task's queue, started on first use (it needs the runtime); the task
    /// ends when the store is dropped.
    queue: OnceLock<mpsc::UnboundedSender<Waiter>>,
    script: redis::Script,
    prefix: String,
    period_us: u64,
    burst: u32,
    /// Monotonic ms (see [`now_ms`]) until which Redis is not asked.
    open_until_ms: AtomicU64,
}

impl RedisStore {
    /// A store for block `name` (connects on first use). `url` was checked by validation.
    pub fn new(name: &str, url: &str, period: Duration, burst: u32) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(url).map_err(|_| RedisStoreError::Redis("invalid redis url".into()))?;
        Ok(Self {
            client,
            conn: OnceLock::new(),
            queue: OnceLock::new(),
            script: redis::Script::new(SCRIPT),
            prefix: format!("streamgate:rl:{}:", utf8_percent_encode(name, NAME_SET)),
            period_us: u64::try_from(period.as_micros()).unwrap_or(u64::MAX).max(1),
            burst,
            open_until_ms: AtomicU64::new(0),
        })
    }

    /// The Redis key of a budget.
    pub fn redis_key(&self, key: &BudgetKey<'_>) -> String {
        let mut k = String::with_capacity(self.prefix.len() + 40);
        k.push_str(&self.prefix);
        k.push_str(key.kind_name());
        k.push(':');
        match key {
            BudgetKey::Ip(ip) => {
                let _ = write!(k, "{ip}");
            }
            BudgetKey::Value { value, .. } => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for b in &Sha256::digest(value)[..16] {
                    k.push(char::from(HEX[usize::from(b >> 4)]));
                    k.push(char::from(HEX[usize::from(b & 15)]));
                }
            }
        }
        k
    }

    /// Takes one request from the key's budget, in Redis.
    pub async fn check(&self, key: &BudgetKey<'_>) -> Result<Decision, RedisStoreError> {
        if now_ms() < self.open_until_ms.load(Relaxed) {
            return Err(RedisStoreError::CircuitOpen);
        }
        // The connection manager bounds connecting and every response by TIMEOUT itself
        // (a second timer per request here would only add cost).
        let result = self.call(key).await;
        if result.is_err() {
            self.open_until_ms.store(now_ms().saturating_add(BREAKER.as_millis() as u64), Relaxed);
        }
        result
    }

    async fn call(&self, key: &BudgetKey<'_>) -> Result<Decision, RedisStoreError> {
        let queue = match self.queue.get() {
            Some(q) => q,
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let batcher =
                    Batcher { conn: self.connection()?, script: self.script.clone(), period_us: self.period_us, burst: self.burst };
                tokio::spawn(batcher.run(rx));
                self.queue.get_or_init(|| tx)
            }
        };
        let (tx, rx) = oneshot::channel();
        queue.send((self.redis_key(key), tx)).map_err(|_| RedisStoreError::Redis("the batcher stopped".into()))?;
        rx.await.unwrap_or_else(|_| Err(RedisStoreError::Redis("the batcher stopped".into())))
    }

    /// The shared connection, created on first use inside the runtime (it spawns a task).
    fn connection(&self) -> Result<ConnectionManager, RedisStoreError> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            // The breaker paces reconnects; the manager's own retries would keep every
            // request waiting for the whole backoff.
            .set_number_of_retries(0);
        let c = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| RedisStoreError::Redis(e.kind_and_detail()))?;
        Ok(self.conn.get_or_init(|| c).clone())
    }
}

/// Sends queued decisions to Redis, one script call at a time.
struct Batcher {
    conn: ConnectionManager,
    script: redis::Script,
    period_us: u64,
    burst: u32,
}

impl Batcher {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Waiter>) {
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                first = rx.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                    let Some(first) = first else { break };
                    let mut batch: Vec<Waiter> = Vec::with_capacity(8);
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(w) => batch.push(w),
                            Err(_) => break,
                        }
                    }
                    let (conn, script, period_us, burst) = (self.conn.clone(), self.script.clone(), self.period_us, self.burst);
                    in_flight.spawn(async move {
                        let decided = decide(conn, &script, period_us, burst, &batch).await;
                        for (i, (_, tx)) in batch.into_iter().enumerate() {
                            let _ = tx.send(match &decided {
                                Ok(d) => d.get(i).copied().ok_or_else(|| RedisStoreError::Redis("short reply from the rate-limit script".into())),
                                Err(e) => Err(e.clone()),
                            });
                        }
                    });
                }
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
    }
}

/// One script call for a batch of decisions.
async fn decide(
    mut conn: ConnectionManager,
    script: &redis::Script,
    period_us: u64,
    burst: u32,
    batch: &[Waiter],
) -> Result<Vec<Decision>, RedisStoreError> {
    let mut call = script.prepare_invoke();
    for (key, _) in batch {
        call.key(key.as_str());
    }
    call.arg(period_us).arg(burst);
    let flat: Vec<i64> = call.invoke_async(&mut conn).await.map_err(|e| RedisStoreError::Redis(e.kind_and_detail()))?;
    Ok(flat
        .chunks_exact(2)
        .map(|p| {
            if p[0] == 1 {
                Decision::Allowed
            } else {
                Decision::Limited { wait: Duration::from_micros(u64::try_from(p[1]).unwrap_or(0)) }
            }
        })
        .collect())
}

/// A redis error's kind and detail, without anything that could hold the URL.
trait KindAndDetail {
    fn kind_and_detail(&self) -> String;
}

impl KindAndDetail for redis::RedisError {
    fn kind_and_detail(&self) -> String {
        let kind = format!("{:?}", self.kind());
        match self.detail() {
            Some(d) if !d.contains("redis://") => format!("{kind}: {d}"),
            _ => kind,
        }
    }
}

/// Milliseconds on a process-wide monotonic clock.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn keys_are_prefixed_fixed_size_and_escaped() {
        let s = RedisStore::new("per viewer:x", "redis://127.0.0.1:1", Duration::from_millis(50), 10).unwrap();
        assert_eq!(s.redis_key(&BudgetKey::Ip("10.0.0.1".parse().unwrap())), "streamgate:rl:per%20viewer%3Ax:ip:10.0.0.1");
        let long = "x".repeat(10_000) + "\r\nFLUSHALL";
        let k = s.redis_key(&BudgetKey::Value { kind: b'h', value: Cow::Borrowed(long.as_bytes()) });
        assert!(k.starts_with("streamgate:rl:per%20viewer%3Ax:h:"), "{k}");
        assert_eq!(k.len(), "streamgate:rl:per%20viewer%3Ax:h:".len() + 32);
        let q = s.redis_key(&BudgetKey::Value { kind: b'q', value: Cow::Borrowed(long.as_bytes()) });
        assert_eq!(k[k.len() - 32..], q[q.len() - 32..]);
        assert_ne!(k, q, "sources differ by their part of the key");
    }
}

//! The rows the dashboard scenario loads, planned in memory before any is written, so that
//! both backends get the same history and every derived table (hourly counts per endpoint,
//! traffic per minute, endpoint health) agrees with the attempts.
//!
//! The history: payments of four messages each (created, authorized, captured or failed,
//! updated or refunded), each payment at one random application, its ordering key `pay_<n>`,
//! spread over the 24 hours before `now`. Every message goes to both endpoints of its
//! application. A delivery takes 1 to 5 attempts (72 / 14 / 8 / 4 / 2 %), the last one
//! succeeding, at hookd's default retry schedule (5 s, 5 min, 30 min, 2 h, ±20 %); attempts that
//! would fall after `now` are not made yet, so those deliveries are pending (their next retry
//! is due), and, as hookd orders deliveries of one key to one endpoint, the key's later
//! deliveries to that endpoint are held. Deliveries of a key start only once the previous one
//! finished. The number of attempts is then made exact by giving a few old last-of-their-key
//! deliveries one attempt more (or less), which moves nothing else.
//!
//! Everything random comes from a hash of the row's coordinates, so the writers recompute any
//! attempt's time, outcome and duration from the plan without keeping 3,000,000 attempts in
//! memory.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ulid::Ulid;

pub const HOUR_MS: i64 = 3_600_000;
pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Messages of a payment: created, authorized, captured (or failed), updated (or refunded).
pub const PER_PAYMENT: u64 = 4;
/// The delays before retries 1.. (hookd's default `HOOKD_RETRY_SCHEDULE`, first four).
const RETRY_GAPS_MS: [i64; 4] = [5_000, 300_000, 1_800_000, 7_200_000];
/// A delivery's attempts, in hundredths: 1 attempt 72 %, 2 attempts 14 %, 3 8 %, 4 4 %, 5 2 %
/// (mean 1.5: 2 deliveries per message, 3 attempts per message).
const ATTEMPT_WEIGHTS: [u64; 5] = [72, 14, 8, 4, 2];
/// A pending delivery's next retry is never due before this long after `now`, so no attempt
/// runs while the pages are timed.
const RETRY_NOT_BEFORE_MS: i64 = HOUR_MS;
/// Payment payloads' event types per step; step 2 is `payment.failed` for one payment in 20,
/// step 3 `payment.refunded` for one in 10.
pub const EVENT_TYPES: [&str; 6] = [
    "payment.created",
    "payment.authorized",
    "payment.captured",
    "payment.failed",
    "payment.refunded",
    "payment.updated",
];
pub const CITIES: [&str; 20] = [
    "Lisbon", "Porto", "Madrid", "Seville", "Lyon", "Paris", "Ghent", "Utrecht", "Bremen",
    "Munich", "Vienna", "Graz", "Turin", "Milan", "Krakow", "Gdansk", "Malmo", "Oslo", "Tallinn",
    "Dublin",
];
pub const KINDS: [&str; 10] = [
    "Coffee", "Books", "Cycles", "Florist", "Bakery", "Outdoor", "Records", "Pharmacy", "Toys",
    "Tailor",
];

/// The name of application `n`, e.g. "Lisbon Coffee 0421"; unique through its number.
pub fn app_name(n: usize) -> String {
    let city = CITIES[n % CITIES.len()];
    let kind = KINDS[(n / CITIES.len()) % KINDS.len()];
    format!("{city} {kind} {n:04}")
}

/// The part of [`app_name`] an operator would type to find it: "Coffee 0421".
pub fn app_query(n: usize) -> String {
    let name = app_name(n);
    name.split_once(' ')
        .map_or(name.clone(), |(_, rest)| rest.to_owned())
}

pub fn payment_key(payment: u32) -> String {
    format!("pay_{payment}")
}

/// splitmix64: a well-mixed 64-bit value from any 64-bit input.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A hash of a row's coordinates and a salt naming what it decides.
pub fn hash(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed), |acc, &p| mix(acc ^ mix(p)))
}

/// What happened to one delivery (message × endpoint) by `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its last attempt succeeded.
    Delivered,
    /// Attempts failed so far; the next is due at this time.
    Pending { next_at: i64 },
    /// Waiting for an earlier delivery of its ordering key to the same endpoint.
    Held,
}

#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// When its first attempt started (held: when its message was ingested).
    pub first_at: i64,
    /// Attempts it takes in all; the last of them succeeds.
    pub planned: u8,
    /// Attempts made by `now`.
    pub made: u8,
    pub outcome: Outcome,
}

/// One message and its two deliveries (the application's endpoints 0 and 1).
#[derive(Clone, Debug)]
pub struct Message {
    pub ulid: Ulid,
    pub created_at: i64,
    pub payment: u32,
    /// 0 created, 1 authorized, 2 captured or failed, 3 updated or refunded.
    pub step: u8,
    pub app: u16,
    pub deliveries: [Delivery; 2],
}

impl Message {
    pub fn id(&self) -> String {
        format!("msg_{}", self.ulid)
    }

    pub fn event_type(&self) -> &'static str {
        event_type(self.payment, self.step)
    }

    /// The platform's own id for the event, unique within the application.
    pub fn event_id(&self) -> String {
        format!("evt_{}_{}", self.payment, self.step)
    }

    /// The stored payload (~300 bytes), as the payment gateway sends it.
    pub fn payload(&self) -> String {
        let event = self.event_type();
        let status = match event {
            "payment.created" => "created",
            "payment.authorized" => "authorized",
            "payment.failed" => "failed",
            "payment.refunded" => "refunded",
            _ => "captured",
        };
        let p = self.payment;
        let timestamp = rfc3339(self.created_at);
        format!(
            "{{\"event\":\"{event}\",\"timestamp\":\"{timestamp}\",\"data\":{{\"paymentId\":\"pay_{p}\",\
             \"status\":\"{status}\",\"amount\":{amount},\"currency\":\"EUR\",\
             \"orderId\":\"ord_{p:012}\",\"customer\":\"cus_{customer:06}\",\
             \"description\":\"Card checkout, web shop order (bench)\",\
             \"method\":\"card\",\"card\":{{\"brand\":\"visa\",\"last4\":\"{last4:04}\"}}}}}}",
            amount = 500 + (p % 40) * 125,
            customer = p % 100_000,
            last4 = p % 10_000,
        )
    }
}

/// `2026-12-06T14:31:00Z` for unix milliseconds (proleptic Gregorian, UTC).
pub fn rfc3339(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days_from_civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn event_type(payment: u32, step: u8) -> &'static str {
    let index = match step {
        0 => 0,
        1 => 1,
        2 if payment % 20 == 7 => 3,
        2 => 2,
        _ if payment % 10 == 3 => 4,
        _ => 5,
    };
    EVENT_TYPES[index]
}

/// One attempt of a delivery, recomputed from the plan.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub ulid: Ulid,
    pub at: i64,
    pub success: bool,
    pub status_code: u16,
    pub duration_ms: i64,
}

impl Attempt {
    pub fn id(&self) -> String {
        format!("atmpt_{}", self.ulid)
    }

    pub fn response(&self) -> &'static str {
        match self.status_code {
            200 => "{\"received\":true}",
            204 => "",
            502 => "<html><body><h1>502 Bad Gateway</h1></body></html>",
            503 => "{\"error\":\"service unavailable, try again later\"}",
            _ => "{\"error\":\"internal error\"}",
        }
    }
}

/// The seed and the end of the history: all an attempt's draws need.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub seed: u64,
    pub now: i64,
}

/// The whole history, before ids of applications and endpoints are known.
pub struct Plan {
    pub rules: Rules,
    /// Sorted by id (time).
    pub messages: Vec<Message>,
    pub attempts: u64,
    pub pending: u64,
    pub held: u64,
}

/// What an attempt's random draws are keyed by.
const SALT_CATEGORY: u64 = 1;
const SALT_GAP: u64 = 2;
const SALT_DURATION: u64 = 3;
const SALT_STATUS: u64 = 4;
const SALT_ULID: u64 = 5;
const SALT_DISPATCH: u64 = 6;

impl Plan {
    /// Plans `messages` messages (a multiple of 4) with exactly `attempts` attempts over
    /// `apps` applications, ending at `now` (unix ms).
    pub fn new(
        seed: u64,
        now: i64,
        apps: usize,
        messages: u64,
        attempts: u64,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            messages > 0 && messages.is_multiple_of(PER_PAYMENT),
            "--messages must be a positive multiple of {PER_PAYMENT}"
        );
        anyhow::ensure!(
            (1..=u64::from(u16::MAX)).contains(&(apps as u64)),
            "--apps must be 1 to 65535"
        );
        let payments = u32::try_from(messages / PER_PAYMENT)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut plan = Self {
            rules: Rules { seed, now },
            messages: Vec::with_capacity(usize::try_from(messages)?),
            attempts: 0,
            pending: 0,
            held: 0,
        };
        let start = now - DAY_MS;
        for payment in 0..payments {
            let app = u16::try_from(rng.gen_range(0..apps))?;
            // Step times: created, then authorized 1–3 s, captured 3–10 s, updated 5–60 min.
            let mut times = [0_i64; 4];
            times[1] = rng.gen_range(1_000..3_000);
            times[2] = times[1] + rng.gen_range(2_000..7_000);
            times[3] = times[2] + rng.gen_range(300_000..3_600_000);
            let base = start + (i64::from(payment) * DAY_MS) / i64::from(payments);
            // The last message of the payment no later than a second before `now`.
            let base = base.min(now - 1_000 - times[3]);
            let mut steps: Vec<Message> = (0..4_u8)
                .map(|step| {
                    let created_at = base + times[usize::from(step)];
                    let random = u128::from(hash(seed, &[SALT_ULID, payment.into(), step.into()]))
                        << 16
                        | u128::from(rng.gen::<u16>());
                    Message {
                        ulid: Ulid::from_parts(u64::try_from(created_at).unwrap_or(0), random),
                        created_at,
                        payment,
                        step,
                        app,
                        deliveries: [Delivery {
                            first_at: created_at,
                            planned: 0,
                            made: 0,
                            outcome: Outcome::Held,
                        }; 2],
                    }
                })
                .collect();
            for endpoint in 0..2 {
                plan.rules.chain(&mut steps, endpoint);
            }
            plan.messages.extend(steps);
        }
        plan.messages.sort_unstable_by_key(|m| m.ulid);
        plan.count();
        plan.make_exact(attempts)?;
        Ok(plan)
    }

    /// Attempt `n` (0-based) of the delivery of `message` to its application's `endpoint`.
    pub fn attempt_of(&self, message: &Message, endpoint: usize, n: u8) -> Attempt {
        self.rules.attempt(
            &message.deliveries[endpoint],
            key(message, endpoint),
            message.app,
            n,
        )
    }

    /// The attempts made by `now` of the delivery of `message` to `endpoint`.
    pub fn attempts_of<'a>(
        &'a self,
        message: &'a Message,
        endpoint: usize,
    ) -> impl Iterator<Item = Attempt> + 'a {
        let made = message.deliveries[endpoint].made;
        (0..made).map(move |n| self.attempt_of(message, endpoint, n))
    }

    fn count(&mut self) {
        let (mut attempts, mut pending, mut held) = (0, 0, 0);
        for message in &self.messages {
            for delivery in &message.deliveries {
                attempts += u64::from(delivery.made);
                match delivery.outcome {
                    Outcome::Pending { .. } => pending += 1,
                    Outcome::Held => held += 1,
                    Outcome::Delivered => {}
                }
            }
        }
        (self.attempts, self.pending, self.held) = (attempts, pending, held);
    }

    /// Adds (or removes) one attempt to old deliveries that end their key's chain (step 3),
    /// oldest first, until the attempts number `target`. Nothing follows such a delivery, and
    /// an old one finishes long before `now` either way.
    fn make_exact(&mut self, target: u64) -> anyhow::Result<()> {
        let rules = self.rules;
        let old = rules.now - DAY_MS / 2;
        let mut i = 0;
        while self.attempts != target {
            let Some(message) = self.messages.get_mut(i) else {
                anyhow::bail!(
                    "cannot plan exactly {target} attempts for {} messages (closest: {})",
                    self.messages.len(),
                    self.attempts
                );
            };
            i += 1;
            if message.step != 3 || message.created_at >= old {
                continue;
            }
            for endpoint in 0..2 {
                let delivery = message.deliveries[endpoint];
                if delivery.outcome != Outcome::Delivered || self.attempts == target {
                    continue;
                }
                let planned = if self.attempts < target && delivery.planned < 5 {
                    delivery.planned + 1
                } else if self.attempts > target && delivery.planned > 1 {
                    delivery.planned - 1
                } else {
                    continue;
                };
                let settled = rules.settle(delivery.first_at, planned, key(message, endpoint));
                if settled.outcome == Outcome::Delivered {
                    self.attempts =
                        self.attempts + u64::from(settled.made) - u64::from(delivery.made);
                    message.deliveries[endpoint] = settled;
                }
            }
        }
        Ok(())
    }
}

impl Rules {
    /// Plans the deliveries of one payment's messages to one endpoint, in key order: each
    /// starts once the previous one succeeded; after one still pending, the rest are held.
    fn chain(&self, steps: &mut [Message], endpoint: usize) {
        let mut previous_end: Option<i64> = Some(i64::MIN);
        for message in steps.iter_mut() {
            let key = key(message, endpoint);
            let Some(after) = previous_end else {
                message.deliveries[endpoint] = Delivery {
                    first_at: message.created_at,
                    planned: 0,
                    made: 0,
                    outcome: Outcome::Held,
                };
                continue;
            };
            let dispatch = i64::try_from(hash(self.seed, &[SALT_DISPATCH, key]) % 40).unwrap_or(0);
            let first_at = (message.created_at + 2 + dispatch).max(after + 2);
            let planned = category(hash(self.seed, &[SALT_CATEGORY, key]));
            let delivery = self.settle(first_at, planned, key);
            previous_end = match delivery.outcome {
                Outcome::Delivered => {
                    let last = self.attempt(&delivery, key, message.app, delivery.planned - 1);
                    Some(last.at + last.duration_ms)
                }
                _ => None,
            };
            message.deliveries[endpoint] = delivery;
        }
    }

    /// A delivery starting at `first_at` with `planned` attempts, as it stands at `now`.
    fn settle(&self, first_at: i64, planned: u8, key: u64) -> Delivery {
        let mut delivery = Delivery {
            first_at,
            planned,
            made: 0,
            outcome: Outcome::Delivered,
        };
        for n in 0..planned {
            let at = self.attempt_at(first_at, key, n);
            if at > self.now {
                delivery.outcome = Outcome::Pending {
                    next_at: at.max(self.now + RETRY_NOT_BEFORE_MS),
                };
                return delivery;
            }
            delivery.made = n + 1;
        }
        delivery
    }

    /// The start of attempt `n` (0-based): the retry schedule's gaps, each ±20 %.
    fn attempt_at(&self, first_at: i64, key: u64, n: u8) -> i64 {
        let mut at = first_at;
        for (i, gap) in RETRY_GAPS_MS.iter().enumerate().take(usize::from(n)) {
            let jitter = hash(self.seed, &[SALT_GAP, key, i as u64]) % 401; // 0..=400 → ±20 %
            at += gap * (800 + i64::try_from(jitter).unwrap_or(0)) / 1000;
        }
        at
    }

    fn attempt(&self, delivery: &Delivery, key: u64, app: u16, n: u8) -> Attempt {
        let at = self.attempt_at(delivery.first_at, key, n);
        let success = n + 1 == delivery.planned;
        let endpoint_speed = endpoint_base_ms(self.seed, app, key & 1);
        let spread = hash(self.seed, &[SALT_DURATION, key, n.into()]);
        let duration_ms = endpoint_speed * (60 + i64::try_from(spread % 100).unwrap_or(0)) / 100;
        let status_code = if success {
            if spread.is_multiple_of(3) {
                200
            } else {
                204
            }
        } else {
            match hash(self.seed, &[SALT_STATUS, key, n.into()]) % 10 {
                0..=5 => 500,
                6 | 7 => 503,
                _ => 502,
            }
        };
        let random = u128::from(hash(self.seed, &[SALT_ULID, key, n.into(), 0xa77e]));
        Attempt {
            ulid: Ulid::from_parts(u64::try_from(at).unwrap_or(0), random << 16 | u128::from(n)),
            at,
            success,
            status_code,
            duration_ms,
        }
    }
}

/// The key every random draw of a delivery hangs off.
fn key(message: &Message, endpoint: usize) -> u64 {
    (u64::from(message.payment) << 8) | (u64::from(message.step) << 1) | endpoint as u64
}

/// Attempts a delivery takes, from a uniform hash, per [`ATTEMPT_WEIGHTS`].
fn category(h: u64) -> u8 {
    let mut roll = h % 100;
    for (n, weight) in ATTEMPT_WEIGHTS.iter().enumerate() {
        if roll < *weight {
            return u8::try_from(n + 1).unwrap_or(1);
        }
        roll -= weight;
    }
    1
}

/// How long an endpoint takes to answer, so that each is consistently fast or slow: most in
/// 20–80 ms, some in 80–300 ms, a few in 0.3–1.5 s and one in a hundred in 1.5–5 s.
fn endpoint_base_ms(seed: u64, app: u16, endpoint: u64) -> i64 {
    let h = hash(seed, &[0xe9d, app.into(), endpoint]);
    let roll = h % 100;
    let within = i64::try_from((h >> 8) % 1000).unwrap_or(0);
    match roll {
        0..=59 => 20 + within * 60 / 1000,
        60..=89 => 80 + within * 220 / 1000,
        90..=98 => 300 + within * 1200 / 1000,
        _ => 1500 + within * 3500 / 1000,
    }
}

/// What the derived tables hold, computed from the plan as hookd computes them from the
/// attempts it records.
pub struct Derived {
    /// (app index, endpoint 0/1, hour) → (succeeded, failed, duration_ms)
    pub activity: BTreeMap<(u16, u8, i64), (i64, i64, i64)>,
    /// minute → (messages_in, delivered, failed)
    pub traffic: BTreeMap<i64, (i64, i64, i64)>,
    /// (app index, endpoint 0/1) → when its current run of failures began
    pub first_failure: HashMap<(u16, u8), i64>,
}

impl Plan {
    pub fn derive(&self) -> Derived {
        let mut activity: BTreeMap<(u16, u8, i64), (i64, i64, i64)> = BTreeMap::new();
        let mut traffic: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
        let mut last_success: HashMap<(u16, u8), i64> = HashMap::new();
        let mut failures: HashMap<(u16, u8), Vec<i64>> = HashMap::new();
        for message in &self.messages {
            traffic
                .entry(message.created_at.div_euclid(MINUTE_MS))
                .or_default()
                .0 += 1;
            for endpoint in 0..2_u8 {
                let who = (message.app, endpoint);
                for attempt in self.attempts_of(message, usize::from(endpoint)) {
                    let hour = attempt.at.div_euclid(HOUR_MS);
                    let counts = activity.entry((message.app, endpoint, hour)).or_default();
                    let minute = traffic.entry(attempt.at.div_euclid(MINUTE_MS)).or_default();
                    counts.2 += attempt.duration_ms;
                    if attempt.success {
                        counts.0 += 1;
                        minute.1 += 1;
                        let last = last_success.entry(who).or_insert(i64::MIN);
                        *last = (*last).max(attempt.at);
                    } else {
                        counts.1 += 1;
                        minute.2 += 1;
                        failures.entry(who).or_default().push(attempt.at);
                    }
                }
            }
        }
        let first_failure = failures
            .into_iter()
            .filter_map(|(who, times)| {
                let since = last_success.get(&who).copied().unwrap_or(i64::MIN);
                times
                    .into_iter()
                    .filter(|&t| t > since)
                    .min()
                    .map(|t| (who, t))
            })
            .collect();
        Derived {
            activity,
            traffic,
            first_failure,
        }
    }

    /// A random payment's number, for searches.
    pub fn payments(&self) -> u32 {
        u32::try_from(self.messages.len() as u64 / PER_PAYMENT).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000;

    #[test]
    fn plans_exact_counts_in_id_order() {
        let plan = Plan::new(7, NOW, 50, 40_000, 120_000).expect("plans");
        assert_eq!(plan.messages.len(), 40_000);
        assert_eq!(plan.attempts, 120_000);
        let made: u64 = plan
            .messages
            .iter()
            .flat_map(|m| m.deliveries.iter())
            .map(|d| u64::from(d.made))
            .sum();
        assert_eq!(made, 120_000);
        assert!(plan.messages.windows(2).all(|w| w[0].ulid < w[1].ulid));
        assert!(plan
            .messages
            .iter()
            .all(|m| m.created_at < NOW && m.created_at >= NOW - DAY_MS - HOUR_MS));
        assert!(plan.pending > 0, "some deliveries wait for a retry");
    }

    #[test]
    fn keys_stay_in_order_per_endpoint() {
        let plan = Plan::new(3, NOW, 20, 20_000, 60_000).expect("plans");
        let mut by_key: HashMap<(u32, usize), Vec<&Message>> = HashMap::new();
        for m in &plan.messages {
            for e in 0..2 {
                by_key.entry((m.payment, e)).or_default().push(m);
            }
        }
        for ((_, e), messages) in by_key {
            let mut open = false;
            let mut last_end = i64::MIN;
            for m in messages {
                let d = m.deliveries[e];
                if open {
                    assert_eq!(d.outcome, Outcome::Held, "after an unfinished delivery");
                    assert_eq!(d.made, 0);
                    continue;
                }
                let attempts: Vec<Attempt> = plan.attempts_of(m, e).collect();
                assert_eq!(attempts.len(), usize::from(d.made));
                if let Some(first) = attempts.first() {
                    assert!(first.at >= last_end && first.at >= m.created_at);
                }
                assert!(attempts.iter().all(|a| a.at <= NOW));
                assert!(attempts
                    .windows(2)
                    .all(|w| w[0].at < w[1].at && !w[0].success));
                match d.outcome {
                    Outcome::Delivered => {
                        let last = attempts.last().expect("delivered after an attempt");
                        assert!(last.success);
                        last_end = last.at + last.duration_ms;
                    }
                    Outcome::Pending { next_at } => {
                        assert!(next_at > NOW);
                        assert!(attempts.iter().all(|a| !a.success));
                        open = true;
                    }
                    Outcome::Held => panic!("held without an unfinished delivery before it"),
                }
            }
        }
    }

    #[test]
    fn derived_tables_count_every_attempt() {
        let plan = Plan::new(5, NOW, 10, 4_000, 12_000).expect("plans");
        let derived = plan.derive();
        let counted: i64 = derived.activity.values().map(|(s, f, _)| s + f).sum();
        assert_eq!(counted, 12_000);
        let (messages_in, delivered, failed) = derived
            .traffic
            .values()
            .fold((0, 0, 0), |acc, v| (acc.0 + v.0, acc.1 + v.1, acc.2 + v.2));
        assert_eq!((messages_in, delivered + failed), (4_000, 12_000));
    }

    #[test]
    fn payloads_are_about_300_bytes_of_json() {
        let plan = Plan::new(1, NOW, 3, 4_000, 12_000).expect("plans");
        for m in plan.messages.iter().take(40) {
            let payload = m.payload();
            let v: serde_json::Value = serde_json::from_str(&payload).expect("valid json");
            assert_eq!(v["event"], m.event_type());
            assert!((250..=350).contains(&payload.len()), "{}", payload.len());
        }
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_000_000_000), "2026-11-30T00:53:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn app_queries_find_their_app() {
        assert_eq!(app_name(421), "Porto Books 0421");
        assert_eq!(app_query(421), "Books 0421");
    }
}

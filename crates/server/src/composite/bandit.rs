//! `kind = "bandit"`: chooses a variant per request and learns from rewards, as Clipper's
//! model-selection layer proposed. Every answer carries a `feedback_id` parameter minted and
//! signed by the server ([`super::feedback_id`]); `POST /v2/models/{m}/feedback` with that id
//! and a reward in [0, 1] updates the variant that answered, once. Policies:
//!
//! - `thompson` (default): Beta-Bernoulli Thompson sampling; a variant's Beta(α, β) starts at
//!   (1, 1) and a reward r adds r to α and 1 - r to β; each request goes to the variant whose
//!   sampled mean is highest.
//! - `exp3`: Exp3 with exploration rate γ; p_i = (1 - γ) w_i / Σw + γ / K, and a reward r to
//!   the chosen variant multiplies its weight by exp(γ r / (K p_i)) (kept as log-weights).
//!
//! The state is written to a small JSON file (default `bandit-state.json` under the model's
//! name in the state directory, at most once a second and when the bandit is dropped) and read
//! back at load, so it survives restarts and reloads. With a shared store (`--state redis://`,
//! [`super::shared_state`]) replicas learn together instead: every 100 ms each adds what it
//! learnt to the store and takes the totals back, and a feedback id is spent for all of them.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rand::RngExt;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Target;
use super::feedback_id::{BadFeedbackId, FEEDBACK_TTL_SECS, FeedbackKey};
use super::shared_state::SharedState;
use crate::access::keys::hex;

/// Rewarded feedback ids remembered, so that each counts once; past it the oldest are
/// forgotten (12 bytes each: about 3 MB).
pub(crate) const SPENT_CAPACITY: usize = 100_000;

/// How often the state file is rewritten at most.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// How often a bandit adds what it learnt to a shared store and reads the totals back.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Where a bandit keeps what it learns.
#[derive(Clone, Debug)]
pub enum BanditStore {
    /// In memory: lost at unload.
    Memory,
    /// A JSON file, rewritten at most once a second.
    File(PathBuf),
    /// A store shared with the other replicas, under `key`.
    Shared {
        /// The store.
        state: Arc<SharedState>,
        /// The bandit's hash in it.
        key: String,
    },
}

pub(crate) use ferroserve_loader::config::PolicyKind;

/// What is learnt about one variant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Arm {
    target: String,
    /// Thompson: Beta parameters.
    alpha: f64,
    beta: f64,
    /// Exp3: log-weight.
    log_weight: f64,
    /// Requests routed here.
    chosen: u64,
    /// Rewards received, and their sum.
    rewarded: u64,
    reward_sum: f64,
}

impl Arm {
    /// The learnt quantities, in [`Arm::FIELDS`] order: all sums, so replicas add them up.
    fn values(&self) -> [f64; 6] {
        [
            self.alpha,
            self.beta,
            self.log_weight,
            self.chosen as f64,
            self.rewarded as f64,
            self.reward_sum,
        ]
    }

    /// Names of [`Arm::values`] in a shared store.
    const FIELDS: [&str; 6] = [
        "alpha",
        "beta",
        "log_weight",
        "chosen",
        "rewarded",
        "reward_sum",
    ];

    /// This arm with `values` in place of its own.
    fn with_values(&self, values: [f64; 6]) -> Arm {
        Arm {
            target: self.target.clone(),
            alpha: values[0],
            beta: values[1],
            log_weight: values[2],
            chosen: values[3].round().max(0.0) as u64,
            rewarded: values[4].round().max(0.0) as u64,
            reward_sum: values[5],
        }
    }
}

/// `base` plus what `view` learnt since it was `sent`, field by field: a replica's view once
/// the store's totals (`base`, which include `sent`) are back.
fn rebased(view: &Arm, sent: &Arm, base: &Arm) -> Arm {
    let (v, s, b) = (view.values(), sent.values(), base.values());
    base.with_values(std::array::from_fn(|i| b[i] + v[i] - s[i]))
}

/// The part that is saved.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct State {
    policy: PolicyKind,
    arms: Vec<Arm>,
}

/// Why feedback was refused.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The model is not a bandit.
    #[error(
        "model '{model}' is not a bandit (kind = \"bandit\" in its model.toml); it takes no feedback"
    )]
    NotABandit {
        /// The model.
        model: String,
    },
    /// The id was not minted by this server, was altered, or has expired.
    #[error("feedback id '{id}' for model '{model}' {reason}")]
    BadId {
        /// The model.
        model: String,
        /// The id given (its first 100 characters).
        id: String,
        /// Why.
        reason: BadFeedbackId,
    },
    /// The id is another model's, or names a variant this bandit no longer has.
    #[error(
        "feedback id is for model '{issued_for}' variant '{variant}', which model '{model}' does not have (now)"
    )]
    OtherChoice {
        /// The model the feedback was sent to.
        model: String,
        /// The model the id was minted by.
        issued_for: String,
        /// The variant it names.
        variant: String,
    },
    /// The id's reward was taken already.
    #[error("feedback id for model '{model}' was rewarded already; each answer takes one reward")]
    Spent {
        /// The model.
        model: String,
    },
    /// The reward is not in [0, 1].
    #[error("reward {reward}: expected a number from 0 to 1")]
    BadReward {
        /// The reward given.
        reward: f64,
    },
}

/// One arm's choices and rewards, as counts (restored with the state after a restart).
#[derive(Clone, Debug, PartialEq)]
pub struct ArmCounts {
    /// The variant.
    pub target: String,
    /// Requests routed to it.
    pub chosen: u64,
    /// Rewards received for it.
    pub rewarded: u64,
    /// Their sum.
    pub reward_sum: f64,
}

/// A bandit over targets.
#[derive(Debug)]
pub struct Bandit {
    variants: Vec<Target>,
    gamma: f64,
    state: Mutex<State>,
    /// Signs the feedback ids of answers and checks those of rewards.
    key: Arc<FeedbackKey>,
    /// Nonces of the rewarded ids.
    spent: Mutex<Spent>,
    /// Where the state is kept.
    store: BanditStore,
    /// With a shared store: the arms as the store's totals made them at the last visit (the
    /// prior before the first); what this replica has learnt since is `state` minus them.
    synced: Mutex<Vec<Arm>>,
    /// The arms as they start: a shared store holds what was learnt on top.
    prior: Vec<Arm>,
    dirty: AtomicBool,
}

/// The nonces of the latest [`SPENT_CAPACITY`] rewarded ids, oldest first in `order`.
#[derive(Debug, Default)]
struct Spent {
    nonces: HashSet<[u8; 12]>,
    order: VecDeque<[u8; 12]>,
}

impl Bandit {
    /// A bandit over `variants`, its state read from `store` (a file holding the same
    /// variants and policy, or the shared store's totals), else fresh; its feedback ids signed
    /// with `key`. Starts the thread that saves or shares it (none for [`BanditStore::Memory`]).
    pub fn new(
        variants: Vec<Target>,
        policy: PolicyKind,
        gamma: f64,
        store: BanditStore,
        key: Arc<FeedbackKey>,
    ) -> Arc<Bandit> {
        let fresh = State {
            policy,
            arms: variants
                .iter()
                .map(|t| Arm {
                    target: t.to_string(),
                    alpha: 1.0,
                    beta: 1.0,
                    log_weight: 0.0,
                    chosen: 0,
                    rewarded: 0,
                    reward_sum: 0.0,
                })
                .collect(),
        };
        let prior = fresh.arms.clone();
        let state_path = match &store {
            BanditStore::File(path) => Some(path.as_path()),
            BanditStore::Memory | BanditStore::Shared { .. } => None,
        };
        let saved = state_path.map(std::fs::read);
        let shown = state_path.unwrap_or(Path::new("")).display();
        let state = match saved.unwrap_or_else(|| Err(std::io::ErrorKind::NotFound.into())) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(saved)
                    if saved.policy == policy
                        && saved
                            .arms
                            .iter()
                            .map(|a| &a.target)
                            .eq(fresh.arms.iter().map(|a| &a.target)) =>
                {
                    tracing::info!(path = %shown, "bandit state restored");
                    saved
                }
                Ok(_) => {
                    tracing::warn!(path = %shown, "bandit state is for other variants or another policy; starting afresh");
                    fresh
                }
                Err(error) => {
                    tracing::warn!(path = %shown, %error, "bandit state unreadable; starting afresh");
                    fresh
                }
            },
            Err(_) => fresh,
        };
        let interval = match &store {
            BanditStore::Memory => None,
            BanditStore::File(_) => Some(SAVE_INTERVAL),
            BanditStore::Shared { .. } => Some(SYNC_INTERVAL),
        };
        let bandit = Arc::new(Bandit {
            variants,
            gamma,
            state: Mutex::new(state),
            key,
            spent: Mutex::new(Spent::default()),
            synced: Mutex::new(prior.clone()),
            prior,
            store,
            dirty: AtomicBool::new(false),
        });
        // A replica joining starts from what the others learnt.
        bandit.persist();
        if let Some(interval) = interval {
            let weak = Arc::downgrade(&bandit);
            let spawned = std::thread::Builder::new()
                .name("fs-bandit-state".into())
                .spawn(move || save_loop(&weak, interval));
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the bandit state writer; state is saved on unload only");
            }
        }
        bandit
    }

    /// Chooses the variant for one request to `model`, and mints the feedback id its answer
    /// carries.
    pub fn choose(&self, model: &str) -> (usize, &Target, String) {
        let (arm, probability) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let (arm, p) = match state.policy {
                PolicyKind::Thompson => (thompson(&state.arms), 0.0),
                PolicyKind::Exp3 => {
                    let p = exp3_probabilities(&state.arms, self.gamma);
                    let u = rand::rng().random::<f64>();
                    let mut cumulative = 0.0;
                    let arm = p
                        .iter()
                        .position(|pi| {
                            cumulative += pi;
                            u < cumulative
                        })
                        .unwrap_or(p.len() - 1);
                    (arm, p[arm])
                }
            };
            state.arms[arm].chosen += 1;
            (arm, p)
        };
        self.dirty.store(true, Ordering::Relaxed);
        let target = &self.variants[arm];
        let id = self.key.mint(model, &target.to_string(), probability);
        (arm, target, id)
    }

    /// Applies `reward` to the variant the feedback id `id` (of an answer of `model`) names;
    /// each id once.
    pub fn reward(&self, model: &str, id: &str, reward: f64) -> Result<String, FeedbackError> {
        if !(0.0..=1.0).contains(&reward) {
            return Err(FeedbackError::BadReward { reward });
        }
        let choice = self.key.open(id).map_err(|reason| FeedbackError::BadId {
            model: model.to_owned(),
            id: id.chars().take(100).collect(),
            reason,
        })?;
        // The arms' names, as the state keeps them, without taking its lock.
        let arm = self
            .prior
            .iter()
            .position(|a| a.target == choice.variant)
            .filter(|_| choice.model == model)
            .ok_or_else(|| FeedbackError::OtherChoice {
                model: model.to_owned(),
                issued_for: choice.model.clone(),
                variant: choice.variant.clone(),
            })?;
        if !self.spend(choice.nonce) {
            return Err(FeedbackError::Spent {
                model: model.to_owned(),
            });
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let k = state.arms.len() as f64;
        let policy = state.policy;
        let a = &mut state.arms[arm];
        a.rewarded += 1;
        a.reward_sum += reward;
        match policy {
            PolicyKind::Thompson => {
                a.alpha += reward;
                a.beta += 1.0 - reward;
            }
            PolicyKind::Exp3 => {
                a.log_weight += self.gamma * reward / (k * choice.probability.max(1e-12));
            }
        }
        let target = a.target.clone();
        drop(state);
        self.dirty.store(true, Ordering::Relaxed);
        Ok(target)
    }

    /// Each arm's choices and rewards, for the metrics.
    pub fn arm_counts(&self) -> Vec<ArmCounts> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .arms
            .iter()
            .map(|a| ArmCounts {
                target: a.target.clone(),
                chosen: a.chosen,
                rewarded: a.rewarded,
                reward_sum: a.reward_sum,
            })
            .collect()
    }

    /// The arms' state, for the statistics.
    pub fn describe(&self) -> Value {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let probabilities = match state.policy {
            PolicyKind::Exp3 => Some(exp3_probabilities(&state.arms, self.gamma)),
            PolicyKind::Thompson => None,
        };
        let variants: Vec<Value> = state
            .arms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut v = json!({
                    "target": a.target,
                    "chosen": a.chosen,
                    "rewarded": a.rewarded,
                    "mean_reward": (a.rewarded > 0).then(|| a.reward_sum / a.rewarded as f64),
                });
                match &probabilities {
                    Some(p) => v["probability"] = json!(p[i]),
                    None => v["beta"] = json!([a.alpha, a.beta]),
                }
                v
            })
            .collect();
        json!({
            "kind": "bandit",
            "policy": state.policy,
            "variants": variants,
            "rewards_remembered": self.spent.lock().unwrap_or_else(|e| e.into_inner()).order.len(),
            "state_file": match &self.store {
                BanditStore::File(path) => Some(path.display().to_string()),
                _ => None,
            },
            "shared_state": match &self.store {
                BanditStore::Shared { state, .. } => Some(state.shown()),
                _ => None,
            },
        })
    }

    /// Marks the feedback id with `nonce` spent: false when it was already, here or, with a
    /// shared store, on any replica (when the store cannot be reached, this replica's memory
    /// decides).
    fn spend(&self, nonce: [u8; 12]) -> bool {
        if let BanditStore::Shared { state, key } = &self.store {
            let ttl = Duration::from_secs(FEEDBACK_TTL_SECS + 60);
            match state.spend(&format!("{key}:spent:{}", hex(&nonce)), ttl) {
                Ok(first) => return first,
                Err(error) => {
                    tracing::warn!(%error, store = state.shown(), "cannot reach the shared state; feedback ids are checked by this replica alone")
                }
            }
        }
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if !spent.nonces.insert(nonce) {
            return false;
        }
        spent.order.push_back(nonce);
        while spent.order.len() > SPENT_CAPACITY {
            if let Some(old) = spent.order.pop_front() {
                spent.nonces.remove(&old);
            }
        }
        true
    }

    /// Saves the state to its file, or shares it through the store.
    fn persist(&self) {
        match &self.store {
            BanditStore::Memory => {}
            BanditStore::File(path) => self.save(path),
            BanditStore::Shared { state, key } => self.share(state, key),
        }
    }

    /// Adds what this replica learnt since its last visit to the store, and takes the
    /// totals, which hold every replica's learning, as its own (plus what it learnt in the
    /// meantime). When the store cannot be reached, the learning waits for the next visit.
    fn share(&self, store: &SharedState, key: &str) {
        // One visit at a time: `synced` is the store's totals (on the prior) as last read, so
        // what this replica learnt since is its view minus them.
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let view = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .arms
            .clone();
        let mut amounts = Vec::new();
        for (now, then) in view.iter().zip(synced.iter()) {
            let (now_values, then_values) = (now.values(), then.values());
            for (i, field) in Arm::FIELDS.iter().enumerate() {
                let amount = now_values[i] - then_values[i];
                if amount != 0.0 {
                    amounts.push((format!("{}|{field}", now.target), amount));
                }
            }
        }
        let totals = match store.add_and_read(key, &amounts) {
            Ok(totals) => totals,
            Err(error) => {
                tracing::warn!(%error, store = store.shown(), "cannot reach the shared state; this bandit learns alone until it can");
                return;
            }
        };
        let base: Vec<Arm> = self
            .prior
            .iter()
            .map(|prior| {
                let p = prior.values();
                prior.with_values(std::array::from_fn(|i| {
                    let field = format!("{}|{}", prior.target, Arm::FIELDS[i]);
                    p[i] + totals.get(&field).copied().unwrap_or(0.0)
                }))
            })
            .collect();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.arms = state
            .arms
            .iter()
            .zip(&view)
            .zip(&base)
            .map(|((now, sent), base)| rebased(now, sent, base))
            .collect();
        *synced = base;
    }

    /// Writes the state to `path` if it changed since the last write (a temporary file, then
    /// a rename, so a crash never leaves half a file).
    fn save(&self, path: &Path) {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let tmp = path.with_extension("json.tmp");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| serde_json::to_vec_pretty(&state).map_err(std::io::Error::other))
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "cannot save the bandit state");
        }
    }
}

impl Drop for Bandit {
    fn drop(&mut self) {
        self.persist();
    }
}

/// Saves or shares the bandit's state every `interval` while it lives.
fn save_loop(bandit: &Weak<Bandit>, interval: Duration) {
    loop {
        std::thread::sleep(interval);
        match bandit.upgrade() {
            Some(b) => b.persist(),
            None => return,
        }
    }
}

/// The arm whose Beta sample is highest.
fn thompson(arms: &[Arm]) -> usize {
    let mut rng = rand::rng();
    let mut best = (0, f64::MIN);
    for (i, a) in arms.iter().enumerate() {
        let sample = Beta::new(a.alpha, a.beta).map_or(0.5, |d| d.sample(&mut rng));
        if sample > best.1 {
            best = (i, sample);
        }
    }
    best.0
}

/// Exp3's probabilities from the log-weights.
fn exp3_probabilities(arms: &[Arm], gamma: f64) -> Vec<f64> {
    let k = arms.len() as f64;
    let max = arms.iter().map(|a| a.log_weight).fold(f64::MIN, f64::max);
    let weights: Vec<f64> = arms.iter().map(|a| (a.log_weight - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights
        .iter()
        .map(|w| (1.0 - gamma) * w / total + gamma / k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::composite::shared_state::SharedStateUrl;

    fn bandit(policy: PolicyKind, path: PathBuf) -> Arc<Bandit> {
        Bandit::new(
            vec![Target::parse("m@1").unwrap(), Target::parse("m@2").unwrap()],
            policy,
            0.1,
            BanditStore::File(path),
            Arc::new(FeedbackKey::random()),
        )
    }

    /// Variant 2 pays 0.8 of the time, variant 1 0.2: both policies learn to prefer it.
    fn learns(policy: PolicyKind) {
        let dir = tempfile::tempdir().unwrap();
        let b = bandit(policy, dir.path().join("state.json"));
        let mut rng = rand::rng();
        let mut late = [0; 2];
        for i in 0..3000 {
            let (arm, _, id) = b.choose("m");
            let pays = rng.random::<f64>() < if arm == 1 { 0.8 } else { 0.2 };
            b.reward("m", &id, if pays { 1.0 } else { 0.0 }).unwrap();
            if i >= 2000 {
                late[arm] += 1;
            }
        }
        assert!(late[1] > 800, "{policy:?}: {late:?}");
    }

    #[test]
    fn thompson_sampling_learns_the_better_variant() {
        learns(PolicyKind::Thompson);
    }

    #[test]
    fn exp3_learns_the_better_variant() {
        learns(PolicyKind::Exp3);
    }

    #[test]
    fn feedback_is_checked_and_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let b = bandit(PolicyKind::Thompson, dir.path().join("state.json"));
        let (arm, _, id) = b.choose("m");
        assert!(matches!(
            b.reward("m", &id, 1.5),
            Err(FeedbackError::BadReward { .. })
        ));
        assert_eq!(
            b.reward("m", &id, 1.0).unwrap(),
            b.variants[arm].to_string()
        );
        let again = b.reward("m", &id, 1.0).unwrap_err().to_string();
        assert!(again.contains("rewarded already"), "{again}");
        // Made up, or another model's.
        let made_up = b.reward("m", "victim", 1.0).unwrap_err().to_string();
        assert!(
            made_up.contains("was not issued by this server"),
            "{made_up}"
        );
        let (_, _, other) = b.choose("other");
        let error = b.reward("m", &other, 1.0).unwrap_err().to_string();
        assert!(error.contains("for model 'other'"), "{error}");
    }

    #[test]
    fn a_replica_with_the_same_key_takes_the_others_ids() {
        let key = Arc::new(FeedbackKey::random());
        let variants = vec![Target::parse("m@1").unwrap(), Target::parse("m@2").unwrap()];
        let replica = |key: &Arc<FeedbackKey>| {
            Bandit::new(
                variants.clone(),
                PolicyKind::Exp3,
                0.1,
                BanditStore::Memory,
                Arc::clone(key),
            )
        };
        let (a, b) = (replica(&key), replica(&key));
        let (arm, _, id) = a.choose("m");
        assert_eq!(b.reward("m", &id, 1.0).unwrap(), variants[arm].to_string());
        let stranger = replica(&Arc::new(FeedbackKey::random()));
        let (_, _, id) = a.choose("m");
        assert!(stranger.reward("m", &id, 1.0).is_err());
    }

    #[test]
    fn rewarded_ids_are_remembered_up_to_the_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let b = bandit(PolicyKind::Thompson, dir.path().join("state.json"));
        let (_, _, first) = b.choose("m");
        b.reward("m", &first, 1.0).unwrap();
        for _ in 0..SPENT_CAPACITY {
            let (_, _, id) = b.choose("m");
            b.reward("m", &id, 0.0).unwrap();
        }
        assert_eq!(b.describe()["rewards_remembered"], SPENT_CAPACITY);
    }

    #[test]
    fn the_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let b = bandit(PolicyKind::Thompson, path.clone());
        for _ in 0..10 {
            let (_, _, id) = b.choose("m");
            b.reward("m", &id, 1.0).unwrap();
        }
        let before = b.describe()["variants"].clone();
        drop(b);
        let restored = bandit(PolicyKind::Thompson, path.clone());
        assert_eq!(restored.describe()["variants"], before);
        // Other variants: the saved state does not apply.
        let other = Bandit::new(
            vec![Target::parse("x").unwrap(), Target::parse("y").unwrap()],
            PolicyKind::Thompson,
            0.1,
            BanditStore::File(path),
            Arc::new(FeedbackKey::random()),
        );
        assert_eq!(other.describe()["variants"][0]["chosen"], 0);
    }

    /// A process killed when dropped, even when a test fails.
    struct Killed(std::process::Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A `redis-server` on a free loopback port, for as long as the guard lives; `None` (and a
    /// note) where Debian's redis-server is not installed (`.ci/run` installs it).
    fn redis() -> Option<(Killed, SharedStateUrl)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            if std::env::var_os("FERROSERVE_REQUIRE_REDIS").is_some() {
                panic!("redis-server is not installed and FERROSERVE_REQUIRE_REDIS is set");
            }
            eprintln!("redis-server not installed: the shared-state test is skipped");
            return None;
        };
        let url = SharedStateUrl::new(format!("redis://127.0.0.1:{port}"));
        for _ in 0..200 {
            if SharedState::open(&url).is_ok() {
                return Some((Killed(child), url));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer");
    }

    #[test]
    fn replicas_sharing_a_store_learn_together_and_spend_ids_once() {
        let Some((_server, url)) = redis() else {
            return;
        };
        let key = Arc::new(FeedbackKey::random());
        let variants = vec![Target::parse("m@1").unwrap(), Target::parse("m@2").unwrap()];
        let state = Arc::new(SharedState::open(&url).unwrap());
        let replica = || {
            Bandit::new(
                variants.clone(),
                PolicyKind::Thompson,
                0.1,
                BanditStore::Shared {
                    state: Arc::clone(&state),
                    key: "ferroserve:bandit:m:thompson".into(),
                },
                Arc::clone(&key),
            )
        };
        let (a, b) = (replica(), replica());
        // Ten rewards of 1 to variant 2 through replica a, whoever chose.
        let mut given = 0;
        while given < 10 {
            let (arm, _, id) = b.choose("m");
            if arm == 1 {
                a.reward("m", &id, 1.0).unwrap();
                given += 1;
            }
        }
        // A reward of 0 to variant 2, spent on a: refused on b too.
        let id = loop {
            match a.choose("m") {
                (1, _, id) => break id,
                _ => continue,
            }
        };
        a.reward("m", &id, 0.0).unwrap();
        let again = b.reward("m", &id, 1.0).unwrap_err().to_string();
        assert!(again.contains("rewarded already"), "{again}");
        a.persist();
        b.persist();
        a.persist();
        let view = |bandit: &Bandit| bandit.describe()["variants"][1].clone();
        assert_eq!(view(&a)["beta"], json!([11.0, 2.0]), "{}", a.describe());
        assert_eq!(view(&b)["beta"], view(&a)["beta"]);
        let chosen = |bandit: &Bandit| {
            bandit.describe()["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["chosen"].as_u64().unwrap())
                .sum::<u64>()
        };
        assert_eq!(chosen(&a), chosen(&b));
        // A replica joining later starts from the totals.
        let c = replica();
        assert_eq!(view(&c)["beta"], view(&a)["beta"]);
    }
}

//! `kind = "bandit"`: chooses a variant per request and learns from rewards, as Clipper's
//! model-selection layer proposed. Every answer carries a request id (the caller's, or one made
//! up); `POST /v2/models/{m}/feedback` with that id and a reward in [0, 1] updates the variant
//! that answered. Policies:
//!
//! - `thompson` (default): Beta-Bernoulli Thompson sampling; a variant's Beta(α, β) starts at
//!   (1, 1) and a reward r adds r to α and 1 - r to β; each request goes to the variant whose
//!   sampled mean is highest.
//! - `exp3`: Exp3 with exploration rate γ; p_i = (1 - γ) w_i / Σw + γ / K, and a reward r to
//!   the chosen variant multiplies its weight by exp(γ r / (K p_i)) (kept as log-weights).
//!
//! The state is written to a small JSON file (default `.bandit-state.json` in the model
//! directory, at most once a second and when the bandit is dropped) and read back at load, so
//! it survives restarts and reloads.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rand::RngExt;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Target;

/// Answered requests remembered for feedback; older ones are forgotten first.
pub(crate) const PENDING_CAPACITY: usize = 100_000;

/// Longest request id remembered for feedback, in bytes: with [`PENDING_CAPACITY`], the
/// memory the pending choices can take is bounded (about 26 MB).
pub(crate) const MAX_FEEDBACK_ID: usize = 256;

/// How often the state file is rewritten at most.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

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
    /// No answered request has that id (never seen, already rewarded, or forgotten).
    #[error(
        "model '{model}' has no answered request with id '{id}' awaiting feedback (each request takes one reward; the latest {PENDING_CAPACITY} are remembered, ids of at most {MAX_FEEDBACK_ID} bytes)"
    )]
    UnknownRequest {
        /// The model.
        model: String,
        /// The id given.
        id: String,
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
    /// The latest answered requests, awaiting feedback.
    pending: Mutex<Pending>,
    /// Where the state is kept; `None`: in memory only.
    state_path: Option<PathBuf>,
    dirty: AtomicBool,
}

/// The latest [`PENDING_CAPACITY`] choices. A reward removes its id from `by_id` only; its
/// entry in `order` goes stale and is dropped when it comes to the front, so neither a reward
/// nor an eviction has to search the queue.
#[derive(Debug, Default)]
struct Pending {
    /// Request id → (its choice's sequence number, arm, the probability it had, for Exp3).
    by_id: HashMap<String, (u64, usize, f64)>,
    /// (sequence number, request id) of every choice, oldest first.
    order: VecDeque<(u64, String)>,
    next: u64,
}

impl Bandit {
    /// A bandit over `variants`, its state read from `state_path` when that file holds the
    /// same variants and policy, else fresh. Starts the thread that saves it (with no
    /// `state_path`, the state lives in memory only).
    pub fn new(
        variants: Vec<Target>,
        policy: PolicyKind,
        gamma: f64,
        state_path: Option<PathBuf>,
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
        let saved = state_path.as_ref().map(std::fs::read);
        let shown = state_path.as_deref().unwrap_or(Path::new("")).display();
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
        let bandit = Arc::new(Bandit {
            variants,
            gamma,
            state: Mutex::new(state),
            pending: Mutex::new(Pending::default()),
            state_path,
            dirty: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&bandit);
        let spawned = std::thread::Builder::new()
            .name("fs-bandit-state".into())
            .spawn(move || save_loop(&weak));
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the bandit state writer; state is saved on unload only");
        }
        bandit
    }

    /// Chooses the variant for request `id` and remembers the choice for its feedback.
    pub fn choose(&self, id: &str) -> (usize, &Target) {
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
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // An id already awaiting feedback keeps its first choice: a later request reusing it
        // (another client's id, say) cannot re-bind the reward to its own variant. Ids past
        // the length limit are answered but not remembered.
        if id.len() > MAX_FEEDBACK_ID || pending.by_id.contains_key(id) {
            return (arm, &self.variants[arm]);
        }
        let seq = pending.next;
        pending.next += 1;
        pending.by_id.insert(id.to_owned(), (seq, arm, probability));
        pending.order.push_back((seq, id.to_owned()));
        while pending.order.len() > PENDING_CAPACITY {
            let Some((old_seq, old)) = pending.order.pop_front() else {
                break;
            };
            // Only if that id was not rewarded, nor chosen again since.
            if pending.by_id.get(&old).is_some_and(|e| e.0 == old_seq) {
                pending.by_id.remove(&old);
            }
        }
        (arm, &self.variants[arm])
    }

    /// Applies `reward` to the variant that answered request `id`.
    pub fn reward(&self, model: &str, id: &str, reward: f64) -> Result<String, FeedbackError> {
        if !(0.0..=1.0).contains(&reward) {
            return Err(FeedbackError::BadReward { reward });
        }
        let (_, arm, probability) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .remove(id)
            .ok_or_else(|| FeedbackError::UnknownRequest {
                model: model.to_owned(),
                id: id.to_owned(),
            })?;
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
            PolicyKind::Exp3 => a.log_weight += self.gamma * reward / (k * probability.max(1e-12)),
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
            "awaiting_feedback": self.pending.lock().unwrap_or_else(|e| e.into_inner()).by_id.len(),
            "state_file": self.state_path,
        })
    }

    /// Writes the state if it changed since the last write (a temporary file, then a rename,
    /// so a crash never leaves half a file).
    fn save(&self) {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let Some(path) = &self.state_path else {
            return;
        };
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
        self.save();
    }
}

/// Saves the bandit's state every [`SAVE_INTERVAL`] while it lives.
fn save_loop(bandit: &Weak<Bandit>) {
    loop {
        std::thread::sleep(SAVE_INTERVAL);
        match bandit.upgrade() {
            Some(b) => b.save(),
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

    fn bandit(policy: PolicyKind, path: PathBuf) -> Arc<Bandit> {
        Bandit::new(
            vec![Target::parse("m@1").unwrap(), Target::parse("m@2").unwrap()],
            policy,
            0.1,
            Some(path),
        )
    }

    /// Variant 2 pays 0.8 of the time, variant 1 0.2: both policies learn to prefer it.
    fn learns(policy: PolicyKind) {
        let dir = tempfile::tempdir().unwrap();
        let b = bandit(policy, dir.path().join("state.json"));
        let mut rng = rand::rng();
        let mut late = [0; 2];
        for i in 0..3000 {
            let id = format!("r{i}");
            let (arm, _) = b.choose(&id);
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
        b.choose("a");
        assert!(matches!(
            b.reward("m", "a", 1.5),
            Err(FeedbackError::BadReward { .. })
        ));
        assert!(b.reward("m", "a", 1.0).is_ok());
        let again = b.reward("m", "a", 1.0).unwrap_err().to_string();
        assert!(again.contains("no answered request with id 'a'"), "{again}");
    }

    #[test]
    fn an_id_awaiting_feedback_is_not_rebound_and_long_ids_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let b = bandit(PolicyKind::Exp3, dir.path().join("state.json"));
        let (first, _) = b.choose("victim");
        // Reusing the id many times cannot move its reward to another variant.
        for _ in 0..200 {
            b.choose("victim");
        }
        let rewarded = b.reward("m", "victim", 1.0).unwrap();
        assert_eq!(rewarded, b.variants[first].to_string());
        assert_eq!(b.describe()["awaiting_feedback"], 0);
        let long = "x".repeat(MAX_FEEDBACK_ID + 1);
        b.choose(&long);
        let error = b.reward("m", &long, 1.0).unwrap_err().to_string();
        assert!(error.contains("at most 256 bytes"), "{error}");
    }

    #[test]
    fn the_latest_choices_are_remembered_and_a_reused_id_keeps_its_newest() {
        let dir = tempfile::tempdir().unwrap();
        let b = bandit(PolicyKind::Exp3, dir.path().join("state.json"));
        b.choose("first");
        b.choose("x");
        b.reward("m", "x", 1.0).unwrap();
        b.choose("x");
        for i in 0..PENDING_CAPACITY - 2 {
            b.choose(&i.to_string());
        }
        // One choice too many: the oldest, "first", is forgotten; "x"'s stale entry is next.
        assert!(b.reward("m", "first", 1.0).is_err());
        b.choose("one more");
        assert!(
            b.reward("m", "x", 0.0).is_ok(),
            "x's newest choice was evicted"
        );
        assert_eq!(b.describe()["awaiting_feedback"], PENDING_CAPACITY - 2 + 1);
    }

    #[test]
    fn the_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let b = bandit(PolicyKind::Thompson, path.clone());
        for i in 0..10 {
            let id = i.to_string();
            b.choose(&id);
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
            Some(path),
        );
        assert_eq!(other.describe()["variants"][0]["chosen"], 0);
    }
}

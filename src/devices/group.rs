//! The peers of a data-parallel run: the lead (the calling thread, which keeps the run's [`Trainer`] for logging,
//! evaluation and checkpoints) and N − 1 followers, each a thread with a trainer of its own in the same state.
//! Every step the lead cuts the global batch into N shards, hands shard r to peer r and steps its own; the peers meet
//! in the collectives of [`super`] and end the step with the same parameters, optimiser state and EMA.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use burn::collective::{finish_collective, register, reset_collective, CollectiveConfig, PeerId};

use super::{enter, Ascent, Peer};
use crate::backend::TrainBackend;
use crate::params::Inner;
use crate::pipeline::{Batch, StreamBatch, ViewBatch};
use crate::recipe::{IamDDistribution, IamDSource, Recipe, StageSpec};
use crate::train::{StepReport, Trainer};

/// Why a recipe cannot run on several devices, or why a data-parallel run stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DevicesError {
    /// A stream's per-step batch does not split into equal shards.
    #[error("{key} gives {size} {stream} images a step, which --devices {devices} does not divide into equal shards")]
    Indivisible {
        /// The recipe key(s) that set the size.
        key: &'static str,
        /// Which stream.
        stream: &'static str,
        /// Images of that stream a step.
        size: usize,
        /// Devices asked for.
        devices: usize,
    },
    /// A stage whose loss would change meaning when computed per shard.
    #[error("stage.{index} ({kind}): {why}, so it cannot run on --devices {devices}")]
    Stage {
        /// 0-based index among the `[[stage]]` tables.
        index: usize,
        /// The stage's kind.
        kind: &'static str,
        /// What would change.
        why: &'static str,
        /// Devices asked for.
        devices: usize,
    },
    /// m-sharpness chunks that a peer's shard does not hold whole.
    #[error(
        "update.m = {m} does not divide the {shard} labelled images each of --devices {devices} holds, so the \
             peers' chunks would not be the global batch's"
    )]
    Chunks {
        /// `update.m`.
        m: usize,
        /// Labelled images per peer.
        shard: usize,
        /// Devices asked for.
        devices: usize,
    },
    /// `--devices 0`.
    #[error("--devices must be at least 1")]
    Zero,
    /// A peer failed (panicked, or lost the others) during a step.
    #[error("peer {rank} of {count} failed at step {step}: {message}")]
    PeerFailed {
        /// Which peer failed first.
        rank: usize,
        /// Number of peers.
        count: usize,
        /// The step (0-based) being taken.
        step: u64,
        /// Its panic message.
        message: String,
    },
    /// The collective group could not be formed.
    #[error("the {count} peers could not register with burn-collective: {message}")]
    Register {
        /// Number of peers.
        count: usize,
        /// burn-collective's error.
        message: String,
    },
}

/// Refuses a recipe that `devices` peers cannot run with its single-device meaning (docs/devices.md).
pub fn check_recipe(recipe: &Recipe, devices: usize) -> Result<(), DevicesError> {
    if devices == 0 {
        return Err(DevicesError::Zero);
    }
    if devices == 1 {
        return Ok(());
    }
    let labeled = recipe.data.batch_size;
    if !labeled.is_multiple_of(devices) {
        return Err(DevicesError::Indivisible { key: "data.batch_size", stream: "labelled", size: labeled, devices });
    }
    let unlabeled = recipe.data.batch_size * recipe.data.mu;
    if !unlabeled.is_multiple_of(devices) {
        let key = "data.batch_size × data.mu";
        return Err(DevicesError::Indivisible { key, stream: "unlabeled", size: unlabeled, devices });
    }
    if let Some(m) = recipe.update.m() {
        // Each peer cuts its shard into chunks of m: only when m divides the shard are they the global batch's chunks.
        if !(labeled / devices).is_multiple_of(m) {
            return Err(DevicesError::Chunks { m, shard: labeled / devices, devices });
        }
    }
    for (index, stage) in recipe.stages.iter().enumerate() {
        let StageSpec::IamD(s) = stage else { continue };
        let why = if s.source == IamDSource::Projection && s.distribution == IamDDistribution::Ntxent {
            "its NT-Xent distribution (distribution = \"ntxent\") spans the global batch while each peer holds a shard; \
             distribution = \"components\" is per image"
        } else if s.batch_fraction < 1.0 || s.ascent_fraction < 1.0 {
            "a sub-batch (batch_fraction or ascent_fraction below 1) is drawn from the global batch, and the peers' \
             shards would hold unequal parts of it"
        } else {
            continue;
        };
        return Err(DevicesError::Stage { index, kind: stage.kind(), why, devices });
    }
    Ok(())
}

/// Peer `rank`'s shard of `batch` for `count` peers: the rows `[rank·n/count, (rank+1)·n/count)` of every stream and
/// view, so the shards in rank order are the global batch.
pub fn shard_batch(batch: &Batch, count: usize, rank: usize) -> Batch {
    let streams = batch
        .streams
        .iter()
        .map(|s| {
            let per = s.indices.len() / count;
            let rows = rank * per..(rank + 1) * per;
            StreamBatch {
                stream: s.stream,
                indices: s.indices[rows.clone()].to_vec(),
                labels: s.labels.get(rows.clone()).map(<[i64]>::to_vec).unwrap_or_default(),
                views: s
                    .views
                    .iter()
                    .map(|v| {
                        let [_, c, h, w] = v.shape;
                        let size = c * h * w;
                        ViewBatch {
                            view: v.view,
                            shape: [per, c, h, w],
                            data: v.data[rows.start * size..rows.end * size].to_vec(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    Batch { step: batch.step, streams }
}

/// Runs `f` on `devices.len()` peers at once, peer r on its own thread marked as that peer and registered on
/// `devices[r]`, and returns their results in rank order: the collectives of [`super`] without a trainer, for
/// checking one gradient pass or reduction on several devices against its single-device definition (tests, tools).
pub fn run_peers<B, T, F>(devices: &[B::Device], ascent: Ascent, f: F) -> Result<Vec<T>, DevicesError>
where
    B: burn::tensor::backend::Backend,
    T: Send,
    F: Fn(Peer) -> T + Sync,
{
    let count = devices.len();
    let _turn = GROUP.lock().unwrap_or_else(|p| p.into_inner());
    reset_collective::<B>();
    let config = CollectiveConfig::default().with_num_devices(count);
    let results: Vec<Result<T, DevicesError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(rank, device)| {
                let (config, f) = (config.clone(), &f);
                scope.spawn(move || {
                    let peer = Peer { rank, count, ascent };
                    register::<B>(PeerId::from(rank), device.clone(), config)
                        .map_err(|e| DevicesError::Register { count, message: format!("{e:?}") })?;
                    let out = catch_unwind(AssertUnwindSafe(|| {
                        let _peer = enter(Some(peer));
                        f(peer)
                    }));
                    match out {
                        Ok(out) => {
                            let _ = finish_collective::<B>(PeerId::from(rank));
                            Ok(out)
                        }
                        Err(payload) => {
                            reset_collective::<B>();
                            let message =
                                if payload.is::<PeerGone>() { "lost the others".into() } else { panic_text(&payload) };
                            Err(DevicesError::PeerFailed { rank, count, step: 0, message })
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(rank, h)| {
                h.join().unwrap_or_else(|_| {
                    Err(DevicesError::PeerFailed { rank, count, step: 0, message: "its thread panicked".into() })
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// A panic payload: this peer's collective failed because another peer had already failed.
pub(super) struct PeerGone;

thread_local! {
    static COLLECTIVE_TIME: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Adds time spent waiting in a collective to the calling peer's count.
pub(super) fn add_collective_time(d: Duration) {
    COLLECTIVE_TIME.with(|t| t.set(t.get() + d));
}

/// burn-collective keeps one local group per backend type in the process: runs (and tests) take turns.
static GROUP: Mutex<()> = Mutex::new(());

enum Command {
    Step(Box<Batch>),
    Stop,
}

/// What a follower answers for a step: its report, or its failure's message.
type Answer = Result<StepReport, Failure>;

/// How a peer's step failed.
#[derive(Debug)]
enum Failure {
    /// It panicked, or its step returned an error: the cause.
    Own(String),
    /// Its collective failed because another peer had failed first.
    Gone,
}

struct Follower {
    commands: Sender<Command>,
    answers: Receiver<Answer>,
    handle: Option<JoinHandle<()>>,
}

/// N − 1 follower peers in lockstep with the lead's trainer (see the module documentation).
pub struct DataParallel<B: TrainBackend> {
    count: usize,
    ascent: Ascent,
    followers: Vec<Follower>,
    /// Set once a step failed: the group was reset and may not be finished.
    broken: bool,
    /// Time the lead spent in collectives during the last step.
    last_collective: Duration,
    _turn: MutexGuard<'static, ()>,
    /// The collectives and the teardown are on `B`'s inner backend.
    _backend: std::marker::PhantomData<B>,
}

impl<B: TrainBackend> DataParallel<B>
where
    Trainer<B>: Send + 'static,
{
    /// Forms a group of `replicas.len() + 1` peers: the lead (the caller, stepping `lead`'s trainer) and one follower
    /// thread per trainer in `replicas`, which must be in the lead's state (restored from its checkpoint). Peer r
    /// registers `devices[r]`, the device its trainer runs on.
    pub fn start(replicas: Vec<Trainer<B>>, ascent: Ascent, devices: Vec<B::Device>) -> Result<Self, DevicesError> {
        let count = replicas.len() + 1;
        assert_eq!(devices.len(), count, "one device per peer");
        let turn = GROUP.lock().unwrap_or_else(|p| p.into_inner());
        // A group that a failed run left behind would swallow this one's registrations.
        reset_collective::<Inner<B>>();
        let config = CollectiveConfig::default().with_num_devices(count);
        let mut followers = Vec::with_capacity(count - 1);
        for (i, trainer) in replicas.into_iter().enumerate() {
            let rank = i + 1;
            let (commands, inbox) = channel::<Command>();
            let (outbox, answers) = channel::<Answer>();
            let (config, device) = (config.clone(), devices[rank].clone());
            let handle = std::thread::Builder::new()
                .name(format!("burnish-peer-{rank}"))
                .spawn(move || follow(trainer, Peer { rank, count, ascent }, config, device, inbox, outbox))
                .map_err(|e| DevicesError::Register { count, message: e.to_string() })?;
            followers.push(Follower { commands, answers, handle: Some(handle) });
        }
        let lead = devices[0].clone();
        let mut group = Self {
            count,
            ascent,
            followers,
            broken: false,
            last_collective: Duration::ZERO,
            _turn: turn,
            _backend: std::marker::PhantomData,
        };
        if let Err(e) = register::<Inner<B>>(PeerId::from(0usize), lead, config) {
            group.broken = true;
            reset_collective::<Inner<B>>();
            return Err(DevicesError::Register { count, message: format!("{e:?}") });
        }
        // Followers report a failed registration as the answer to their first step.
        Ok(group)
    }

    /// Forms a group of `count` peers around `lead`: `make` builds each follower's trainer (same recipe, same
    /// device), which then takes `lead`'s state through a checkpoint image, so every peer starts from the same
    /// weights, optimiser state, EMA and step.
    pub fn around(
        lead: &Trainer<B>,
        count: usize,
        ascent: Ascent,
        mut make: impl FnMut(B::Device) -> anyhow::Result<Trainer<B>>,
    ) -> anyhow::Result<Self> {
        let state = lead.checkpoint("").map_err(anyhow::Error::msg)?;
        let devices = Self::devices(lead.device(), count);
        let mut replicas = Vec::with_capacity(count.saturating_sub(1));
        for device in &devices[1..] {
            let mut t = make(device.clone())?;
            t.restore(&state).map_err(anyhow::Error::msg)?;
            replicas.push(t);
        }
        Ok(Self::start(replicas, ascent, devices)?)
    }

    /// The device of each of `count` peers led from `lead`: devices `lead`, `lead` + 1, … of its kind when the
    /// backend has that many (CUDA GPUs), else `lead` for all (the CPU backends have one device, and a one-GPU
    /// machine can still check N peers for correctness).
    pub fn devices(lead: &B::Device, count: usize) -> Vec<B::Device> {
        use burn::tensor::backend::{DeviceId, DeviceOps};
        let id = lead.id();
        let first = usize::from(id.index_id);
        if <B as burn::tensor::backend::Backend>::device_count(id.type_id) < first + count {
            return vec![lead.clone(); count];
        }
        (0..count)
            .map(|r| {
                let index = u16::try_from(first + r).unwrap_or(u16::MAX);
                <B::Device as burn::tensor::backend::Device>::from_id(DeviceId::new(id.type_id, index))
            })
            .collect()
    }

    /// Number of peers N.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Seconds the lead spent in collectives (waiting for the others included) during the last step.
    pub fn last_collective_s(&self) -> f64 {
        self.last_collective.as_secs_f64()
    }

    /// Takes one step of the global `batch` on every peer; `lead` is the lead peer's trainer. The report is the
    /// lead's, whose metrics are already the peers' means.
    pub fn train_step(&mut self, lead: &mut Trainer<B>, batch: &Batch) -> Result<StepReport, anyhow::Error> {
        let step = lead.step();
        let failed = |rank: usize, message: String| DevicesError::PeerFailed { rank, count: self.count, step, message };
        if self.broken {
            return Err(failed(0, "an earlier step failed".into()).into());
        }
        for (i, f) in self.followers.iter().enumerate() {
            let shard = Box::new(shard_batch(batch, self.count, i + 1));
            if f.commands.send(Command::Step(shard)).is_err() {
                self.broken = true;
                reset_collective::<Inner<B>>();
                return Err(failed(i + 1, "its thread has ended".into()).into());
            }
        }
        let own_shard = shard_batch(batch, self.count, 0);
        COLLECTIVE_TIME.with(|t| t.set(Duration::ZERO));
        let own = {
            let _peer = enter(Some(Peer { rank: 0, count: self.count, ascent: self.ascent }));
            run_step(lead, &own_shard)
        };
        self.last_collective = COLLECTIVE_TIME.with(Cell::get);
        if own.is_err() {
            // Unblocks the followers still waiting in a collective for the lead.
            reset_collective::<Inner<B>>();
        }
        let mut first_own_failure: Option<(usize, String)> = None;
        if let Err(Failure::Own(m)) = &own {
            first_own_failure = Some((0, m.clone()));
        }
        let mut any_failed = own.is_err();
        for (i, f) in self.followers.iter().enumerate() {
            let answer = f.answers.recv().unwrap_or_else(|_| Err(Failure::Own("its thread ended mid-step".into())));
            match answer {
                Ok(_) => {}
                Err(Failure::Own(m)) => {
                    any_failed = true;
                    first_own_failure.get_or_insert((i + 1, m));
                }
                Err(Failure::Gone) => any_failed = true,
            }
        }
        if any_failed {
            self.broken = true;
            reset_collective::<Inner<B>>();
            let (rank, message) = first_own_failure.unwrap_or((0, "a collective failed".into()));
            return Err(failed(rank, message).into());
        }
        match own {
            Ok(report) => Ok(report),
            Err(_) => unreachable!("a failed lead step marks the step failed above"),
        }
    }
}

impl<B: TrainBackend> Drop for DataParallel<B> {
    fn drop(&mut self) {
        for f in &self.followers {
            let _ = f.commands.send(Command::Stop);
        }
        if !self.broken {
            let _ = finish_collective::<Inner<B>>(PeerId::from(0usize));
        }
        for f in &mut self.followers {
            if let Some(h) = f.handle.take() {
                let _ = h.join();
            }
        }
        if self.broken {
            reset_collective::<Inner<B>>();
        }
    }
}

/// Steps `trainer` on `shard`, turning a panic or a step error into a [`Failure`].
fn run_step<B: TrainBackend>(trainer: &mut Trainer<B>, shard: &Batch) -> Answer {
    match catch_unwind(AssertUnwindSafe(|| trainer.train_step(shard))) {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => Err(Failure::Own(e.to_string())),
        Err(payload) => Err(if payload.is::<PeerGone>() { Failure::Gone } else { Failure::Own(panic_text(&payload)) }),
    }
}

/// A panic payload's message.
fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A follower's life: register, then step on every shard the lead sends until told to stop.
fn follow<B: TrainBackend>(
    mut trainer: Trainer<B>,
    peer: Peer,
    config: CollectiveConfig,
    device: B::Device,
    inbox: Receiver<Command>,
    outbox: Sender<Answer>,
) {
    let _peer = enter(Some(peer));
    let registered = register::<Inner<B>>(PeerId::from(peer.rank), device, config).map_err(|e| format!("{e:?}"));
    let mut broken = registered.is_err();
    while let Ok(Command::Step(shard)) = inbox.recv() {
        let answer = match &registered {
            Err(e) => Err(Failure::Own(format!("registering with burn-collective failed: {e}"))),
            Ok(()) => run_step(&mut trainer, &shard),
        };
        if answer.is_err() {
            broken = true;
            // Unblocks the lead and the other followers if they wait in a collective for this peer.
            reset_collective::<Inner<B>>();
        }
        if outbox.send(answer).is_err() {
            return;
        }
    }
    if !broken {
        let _ = finish_collective::<Inner<B>>(PeerId::from(peer.rank));
    }
}

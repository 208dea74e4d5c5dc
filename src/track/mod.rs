//! Watching runs from outside burnish: TensorBoard event files written beside `metrics.jsonl`.
//!
//! [`tensorboard::EventWriter`] is what the training loop calls: open one per invocation in the run folder, hand it
//! every metrics row, and `tensorboard --logdir runs/` shows the run live and overlays several.

pub mod tensorboard;

pub use tensorboard::EventWriter;

//! TensorBoard event files: `events.out.tfevents.<secs>.<host>.<pid>.burnish` in a run folder, beside
//! `metrics.jsonl`, so that `tensorboard --logdir runs/` shows a live run and overlays several.
//!
//! An event file is a sequence of TFRecords, each `u64 length (LE) · u32 masked CRC-32C of the length bytes · the
//! payload · u32 masked CRC-32C of the payload`, where `masked(c) = rotate_right(c, 15) + 0xa282ead8` (wrapping);
//! each payload is one `tensorflow.Event` protobuf. The first record carries `file_version = "brain.Event:2"`, then:
//! - every metrics row is one event at the row's step holding one `simple_value` per scalar, under the same names as
//!   in `metrics.jsonl` (so `fixmatch/mask_rate` lands in TensorBoard's `fixmatch` group);
//! - the resolved recipe is a text summary (the `text` plugin: a rank-0 `DT_STRING` tensor holding Markdown);
//! - every session starts with a `SessionLog` `START` event at step `start + 1`. A resumed run repeats steps that
//!   the interrupted session may already have logged after its last checkpoint; on `START`, TensorBoard discards
//!   every event it has read for this run at that step or later (the Python loader's `_CheckForRestartAndMaybePurge`;
//!   the Rust data server evicts later steps when a step repeats), which is what `metrics.jsonl` does on resume too.
//!
//! Each session (each `burnish train` or `--resume`) writes its own file; TensorBoard reads a run folder's event files
//! in name order, and the name starts with the creation time. Rows are flushed as soon as they are written, so a
//! reader never waits for a buffer to fill, and a record is always written whole by one `write_all` of a buffer.
//!
//! The protobuf messages are the few fields of TensorFlow's `event.proto`, `summary.proto`, `tensor.proto` and
//! `tensor_shape.proto` that burnish writes, derived by hand with `prost` (field numbers as in those files).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use prost::Message;

/// The `file_version` of the first event: version 2 makes TensorBoard honour `SessionLog` `START` events.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Tag of the resolved recipe's text summary.
pub const RECIPE_TAG: &str = "recipe";

/// Every event file name starts with this (TensorBoard recognises event files by `tfevents` in the name).
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// Added (wrapping) to the rotated CRC-32C of every record field, as TFRecord specifies.
const MASK_DELTA: u32 = 0xa282_ead8;

/// The protobuf messages of an event file (the subset burnish writes, with TensorFlow's field numbers).
pub mod proto {
    /// `tensorflow.Event`: one record of an event file.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        /// Seconds since the Unix epoch.
        #[prost(double, tag = "1")]
        pub wall_time: f64,
        /// The training step the event belongs to.
        #[prost(int64, tag = "2")]
        pub step: i64,
        /// What the event holds.
        #[prost(oneof = "event::What", tags = "3, 5, 7")]
        pub what: Option<event::What>,
    }

    /// The `what` oneof of [`Event`].
    pub mod event {
        /// What an [`super::Event`] holds.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum What {
            /// The first event of a file: `brain.Event:2`.
            #[prost(string, tag = "3")]
            FileVersion(String),
            /// Scalars or text.
            #[prost(message, tag = "5")]
            Summary(super::Summary),
            /// A session start (used to discard events after a resume point).
            #[prost(message, tag = "7")]
            SessionLog(super::SessionLog),
        }
    }

    /// `tensorflow.SessionLog`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionLog {
        /// A [`SessionStatus`] value.
        #[prost(enumeration = "SessionStatus", tag = "1")]
        pub status: i32,
        /// The checkpoint the session started from, when any.
        #[prost(string, tag = "2")]
        pub checkpoint_path: String,
        /// Free text.
        #[prost(string, tag = "3")]
        pub msg: String,
    }

    /// `tensorflow.SessionLog.SessionStatus`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum SessionStatus {
        /// Not set.
        StatusUnspecified = 0,
        /// A session (re)started: TensorBoard drops what it read at this step and later.
        Start = 1,
        /// A session stopped.
        Stop = 2,
        /// A checkpoint was written.
        Checkpoint = 3,
    }

    /// `tensorflow.Summary`: the values of one event.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        /// The values.
        #[prost(message, repeated, tag = "1")]
        pub value: Vec<summary::Value>,
    }

    /// Nested messages of [`Summary`].
    pub mod summary {
        /// `tensorflow.Summary.Value`: one tagged value.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Value {
            /// The series name.
            #[prost(string, tag = "1")]
            pub tag: String,
            /// Which plugin shows the value (absent for plain scalars).
            #[prost(message, optional, tag = "9")]
            pub metadata: Option<super::SummaryMetadata>,
            /// The value itself.
            #[prost(oneof = "value::Value", tags = "2, 8")]
            pub value: Option<value::Value>,
        }

        /// The `value` oneof of [`Value`].
        pub mod value {
            /// A scalar or a tensor.
            #[derive(Clone, PartialEq, prost::Oneof)]
            pub enum Value {
                /// A scalar (TensorBoard's scalars dashboard).
                #[prost(float, tag = "2")]
                SimpleValue(f32),
                /// A tensor (here: the text plugin's string).
                #[prost(message, tag = "8")]
                Tensor(super::super::TensorProto),
            }
        }
    }

    /// `tensorflow.SummaryMetadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryMetadata {
        /// The plugin that shows the value.
        #[prost(message, optional, tag = "1")]
        pub plugin_data: Option<PluginData>,
    }

    /// `tensorflow.SummaryMetadata.PluginData`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        /// E.g. `text`.
        #[prost(string, tag = "1")]
        pub plugin_name: String,
    }

    /// `tensorflow.TensorProto` (only what a string tensor needs).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// `tensorflow.DataType`; [`DT_STRING`] here.
        #[prost(int32, tag = "1")]
        pub dtype: i32,
        /// The shape; no dimensions for a scalar.
        #[prost(message, optional, tag = "2")]
        pub tensor_shape: Option<TensorShapeProto>,
        /// The strings, one per element.
        #[prost(bytes = "vec", repeated, tag = "8")]
        pub string_val: Vec<Vec<u8>>,
    }

    /// `tensorflow.TensorShapeProto` of a scalar: no dimensions.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {}

    /// `tensorflow.DataType.DT_STRING`.
    pub const DT_STRING: i32 = 7;
}

use proto::{event::What, summary, Event, SessionLog, SessionStatus, Summary};

/// Writes one session's TensorBoard event file in a run folder.
#[derive(Debug)]
pub struct EventWriter {
    file: File,
    path: PathBuf,
    /// One record, reused.
    record: Vec<u8>,
}

impl EventWriter {
    /// Creates a new event file in `run_dir` (which must exist) and writes its `file_version` event.
    pub fn create(run_dir: &Path) -> Result<Self> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let host = hostname();
        let pid = std::process::id();
        // Two sessions in the same second of the same process (tests) get -1, -2, ...; `create_new` never reuses a
        // file another session is writing.
        let mut k = 0;
        let (file, path) = loop {
            let suffix = if k == 0 { String::new() } else { format!("-{k}") };
            let path = run_dir.join(format!("{FILE_PREFIX}{secs:010}.{host}.{pid}.burnish{suffix}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (file, path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => k += 1,
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
            }
        };
        let mut writer = EventWriter { file, path, record: Vec::new() };
        writer.write_event(&Event { wall_time: now(), step: 0, what: Some(What::FileVersion(FILE_VERSION.into())) })?;
        Ok(writer)
    }

    /// What a training session calls once: a new event file in `run_dir`, a `SessionLog` `START` at step
    /// `start + 1` (so TensorBoard forgets what an interrupted session logged after the checkpoint at `start`) and,
    /// for a new run (`start == 0`), the resolved recipe as text at step 0.
    pub fn for_session(run_dir: &Path, start: u64, resolved_recipe: &str) -> Result<Self> {
        let mut writer = Self::create(run_dir)?;
        writer.session_start(start + 1)?;
        if start == 0 {
            writer.recipe(0, resolved_recipe)?;
        }
        writer.flush()?;
        Ok(writer)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A `SessionLog` `START` event at `step`: TensorBoard discards what it read of this run at `step` and later.
    pub fn session_start(&mut self, step: u64) -> Result<()> {
        let log =
            SessionLog { status: SessionStatus::Start as i32, checkpoint_path: String::new(), msg: String::new() };
        self.write_event(&Event { wall_time: now(), step: to_step(step), what: Some(What::SessionLog(log)) })
    }

    /// One scalar at `step` (stored as f32, TensorBoard's scalar type).
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        self.scalars(step, [(tag, value)])
    }

    /// Several scalars at `step`, in one event.
    pub fn scalars<'a>(&mut self, step: u64, values: impl IntoIterator<Item = (&'a str, f64)>) -> Result<()> {
        let value = values
            .into_iter()
            .map(|(tag, v)| summary::Value {
                tag: tag.to_string(),
                metadata: None,
                // TensorBoard's scalars are f32; the f64 → f32 rounding is the only loss.
                value: Some(summary::value::Value::SimpleValue(v as f32)),
            })
            .collect::<Vec<_>>();
        if value.is_empty() {
            return Ok(());
        }
        self.write_event(&Event { wall_time: now(), step: to_step(step), what: Some(What::Summary(Summary { value })) })
    }

    /// A text summary (TensorBoard's text plugin renders it as Markdown) at `step`.
    pub fn text(&mut self, tag: &str, step: u64, text: &str) -> Result<()> {
        let tensor = proto::TensorProto {
            dtype: proto::DT_STRING,
            tensor_shape: Some(proto::TensorShapeProto {}),
            string_val: vec![text.as_bytes().to_vec()],
        };
        let metadata =
            proto::SummaryMetadata { plugin_data: Some(proto::PluginData { plugin_name: "text".to_string() }) };
        let value = vec![summary::Value {
            tag: tag.to_string(),
            metadata: Some(metadata),
            value: Some(summary::value::Value::Tensor(tensor)),
        }];
        self.write_event(&Event { wall_time: now(), step: to_step(step), what: Some(What::Summary(Summary { value })) })
    }

    /// The resolved recipe (TOML) as text under [`RECIPE_TAG`], as a Markdown code block so that it keeps its lines.
    pub fn recipe(&mut self, step: u64, toml: &str) -> Result<()> {
        self.text(RECIPE_TAG, step, &recipe_markdown(toml))
    }

    /// One metrics row, the `(name, value)` pairs and step that go into `metrics.jsonl`, as scalars under the same
    /// names; then a flush, so a live run shows in TensorBoard row by row.
    pub fn row<'a>(&mut self, step: u64, values: impl IntoIterator<Item = (&'a str, f64)>) -> Result<()> {
        self.scalars(step, values)?;
        self.flush()
    }

    /// [`EventWriter::row`] from the JSON object a `metrics.jsonl` line is made of: its `step` and every numeric
    /// field (null values, written for non-finite numbers, are left out, as `burnish plot` leaves them out).
    pub fn json_row(&mut self, row: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let step = row
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .context("a metrics row without a non-negative integer `step` cannot go to TensorBoard")?;
        let values =
            row.iter().filter(|(k, _)| k.as_str() != "step").filter_map(|(k, v)| v.as_f64().map(|v| (k.as_str(), v)));
        self.row(step, values)
    }

    /// Pushes what was written to the operating system, so that TensorBoard can read it.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Frames `event` as one TFRecord and writes it with a single `write_all`.
    fn write_event(&mut self, event: &Event) -> Result<()> {
        let payload = event.encode_to_vec();
        self.record.clear();
        encode_record(&payload, &mut self.record);
        self.file.write_all(&self.record).with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Appends the TFRecord framing of `payload` to `out`: length, masked CRC-32C of the length, payload, masked CRC-32C
/// of the payload (all little-endian).
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
}

/// TFRecord's masked CRC-32C: the checksum rotated right by 15 bits plus a constant, so that a record holding CRCs
/// of its own does not checksum to trivial values.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes).rotate_right(15).wrapping_add(MASK_DELTA)
}

/// The recipe as an indented Markdown code block: TensorBoard's text plugin renders Markdown, which would otherwise
/// reflow the lines and read `#` comments as headings.
pub fn recipe_markdown(toml: &str) -> String {
    toml.trim_end().lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// Steps beyond `i64::MAX` cannot occur in practice; saturate rather than wrap.
fn to_step(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The machine's name for the file name (as TensorFlow's writers put it there), reduced to characters that are safe
/// in a file name; `localhost` when it cannot be read.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let clean: String =
        raw.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if clean.is_empty() {
        "localhost".to_string()
    } else {
        clean
    }
}

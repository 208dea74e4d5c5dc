//! TensorBoard event files, read back by a decoder written here from the format description, independent of the
//! writer: TFRecord framing (little-endian u64 length, masked CRC-32C of the length bytes, payload, masked CRC-32C of
//! the payload; CRC-32C computed bit by bit below) and the `tensorflow.Event` protobuf decoded field by field.

use std::path::{Path, PathBuf};

use burnish::track::tensorboard::{recipe_markdown, EventWriter, FILE_PREFIX, FILE_VERSION, RECIPE_TAG};

// ---------------------------------------------------------------- an independent reader

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one bit at a time.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// TFRecord's mask: rotate right by 15 bits, add 0xa282ead8.
fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The payloads of the records of an event file; panics naming the record whose framing or checksum is wrong.
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = &bytes[at..at + 12];
        let len_bytes = &head[..8];
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let len_crc = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        assert_eq!(len_crc, masked(crc32c(len_bytes)), "record {}: length checksum", out.len());
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().expect("4 bytes"));
        assert_eq!(data_crc, masked(crc32c(data)), "record {}: data checksum", out.len());
        out.push(data.to_vec());
        at += 16 + len;
    }
    assert_eq!(at, bytes.len(), "no partial record at the end");
    out
}

/// A protobuf field value.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
    Fixed32(u32),
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
    }
    panic!("varint too long");
}

/// Every (field number, value) of a message, in order.
fn fields(bytes: &[u8]) -> Vec<(u64, Field)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let value = match key & 7 {
            0 => Field::Varint(varint(bytes, &mut at)),
            1 => {
                at += 8;
                Field::Fixed64(u64::from_le_bytes(bytes[at - 8..at].try_into().expect("8 bytes")))
            }
            2 => {
                let len = varint(bytes, &mut at) as usize;
                at += len;
                Field::Bytes(bytes[at - len..at].to_vec())
            }
            5 => {
                at += 4;
                Field::Fixed32(u32::from_le_bytes(bytes[at - 4..at].try_into().expect("4 bytes")))
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((key >> 3, value));
    }
    out
}

fn bytes_of(f: &Field) -> &[u8] {
    match f {
        Field::Bytes(b) => b,
        other => panic!("expected a length-delimited field, got {other:?}"),
    }
}

/// What one event holds, decoded by hand.
#[derive(Debug, Clone, PartialEq)]
enum What {
    FileVersion(String),
    Scalars(Vec<(String, f32)>),
    Text { tag: String, plugin: String, dtype: u64, dims: usize, text: String },
    SessionStart,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
struct Ev {
    wall_time: f64,
    step: i64,
    what: What,
}

fn decode_event(payload: &[u8]) -> Ev {
    let mut ev = Ev { wall_time: 0.0, step: 0, what: What::Other };
    for (num, f) in fields(payload) {
        match (num, &f) {
            (1, Field::Fixed64(bits)) => ev.wall_time = f64::from_bits(*bits),
            (2, Field::Varint(v)) => ev.step = *v as i64,
            (3, f) => ev.what = What::FileVersion(String::from_utf8(bytes_of(f).to_vec()).expect("utf-8")),
            (5, f) => ev.what = decode_summary(bytes_of(f)),
            (7, f) => {
                let status = fields(bytes_of(f)).into_iter().find(|(n, _)| *n == 1).map(|(_, v)| v);
                assert_eq!(status, Some(Field::Varint(1)), "the only session log burnish writes is START");
                ev.what = What::SessionStart;
            }
            other => panic!("unexpected event field {other:?}"),
        }
    }
    ev
}

fn decode_summary(bytes: &[u8]) -> What {
    let mut scalars = Vec::new();
    for (num, value) in fields(bytes) {
        assert_eq!(num, 1, "Summary has only `value` (1)");
        let (mut tag, mut simple, mut tensor, mut plugin) = (String::new(), None, None, String::new());
        for (n, f) in fields(bytes_of(&value)) {
            match (n, &f) {
                (1, f) => tag = String::from_utf8(bytes_of(f).to_vec()).expect("utf-8"),
                (2, Field::Fixed32(bits)) => simple = Some(f32::from_bits(*bits)),
                (8, f) => tensor = Some(bytes_of(f).to_vec()),
                (9, f) => {
                    let plugin_data = fields(bytes_of(f)).into_iter().find(|(n, _)| *n == 1).expect("plugin_data").1;
                    let name = fields(bytes_of(&plugin_data)).into_iter().find(|(n, _)| *n == 1).expect("name").1;
                    plugin = String::from_utf8(bytes_of(&name).to_vec()).expect("utf-8");
                }
                other => panic!("unexpected Summary.Value field {other:?}"),
            }
        }
        if let Some(t) = tensor {
            let (mut dtype, mut dims, mut strings) = (0, usize::MAX, Vec::new());
            for (n, f) in fields(&t) {
                match n {
                    1 => dtype = if let Field::Varint(v) = f { v } else { panic!("dtype") },
                    2 => dims = fields(bytes_of(&f)).iter().filter(|(n, _)| *n == 2).count(),
                    8 => strings.push(String::from_utf8(bytes_of(&f).to_vec()).expect("utf-8")),
                    other => panic!("unexpected TensorProto field {other}"),
                }
            }
            assert_eq!(strings.len(), 1);
            return What::Text { tag, plugin, dtype, dims, text: strings.remove(0) };
        }
        scalars.push((tag, simple.expect("a simple_value")));
    }
    What::Scalars(scalars)
}

fn read_events(path: &Path) -> Vec<Ev> {
    let bytes = std::fs::read(path).expect("event file");
    records(&bytes).iter().map(|r| decode_event(r)).collect()
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("tfevents")))
        .collect();
    files.sort();
    files
}

/// The scalars of a run folder as TensorBoard's loader keeps them: event files in name order, and a SessionLog START
/// at step s discards every event read so far at step s or later.
fn tensorboard_view(dir: &Path, tag: &str) -> Vec<(i64, f32)> {
    let mut kept: Vec<(i64, f32)> = Vec::new();
    for file in event_files(dir) {
        for ev in read_events(&file) {
            match ev.what {
                What::SessionStart => kept.retain(|(s, _)| *s < ev.step),
                What::Scalars(values) => {
                    kept.extend(values.iter().filter(|(t, _)| t == tag).map(|(_, v)| (ev.step, *v)));
                }
                _ => {}
            }
        }
    }
    kept
}

// ---------------------------------------------------------------- tests

#[test]
fn the_test_crc_is_crc32c() {
    // The check value of CRC-32C, from its specification (RFC 3720, iSCSI).
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(masked(0), 0xa282_ead8);
}

#[test]
fn scalars_and_text_decode_with_their_tags_steps_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = EventWriter::create(dir.path()).expect("writer");
    w.scalar("loss", 1, 2.5).expect("scalar");
    w.row(2, [("loss", 1.25), ("fixmatch/mask_rate", 0.375), ("lr", 0.03)]).expect("row");
    w.text("notes", 3, "**hello**\nworld").expect("text");
    let path = w.path().to_path_buf();
    let name = path.file_name().expect("name").to_string_lossy().to_string();
    assert!(name.starts_with(FILE_PREFIX) && name.ends_with(".burnish"), "{name}");
    assert_eq!(event_files(dir.path()), vec![path.clone()]);

    // Flushed by `row` and `text`'s own write: readable while the writer is still open (a live run).
    let events = read_events(&path);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0].what, What::FileVersion(FILE_VERSION.to_string()));
    assert_eq!(FILE_VERSION, "brain.Event:2");
    assert_eq!((events[1].step, &events[1].what), (1, &What::Scalars(vec![("loss".into(), 2.5)])));
    assert_eq!(events[2].step, 2);
    assert_eq!(
        events[2].what,
        What::Scalars(vec![("loss".into(), 1.25), ("fixmatch/mask_rate".into(), 0.375), ("lr".into(), 0.03f32)])
    );
    assert_eq!(
        events[3],
        Ev {
            wall_time: events[3].wall_time,
            step: 3,
            what: What::Text {
                tag: "notes".into(),
                plugin: "text".into(),
                dtype: 7,
                dims: 0,
                text: "**hello**\nworld".into()
            },
        }
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    for ev in &events {
        assert!((now - ev.wall_time).abs() < 600.0, "wall time {} is now", ev.wall_time);
    }
    drop(w);
}

#[test]
fn a_metrics_row_becomes_scalars_under_the_same_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = EventWriter::create(dir.path()).expect("writer");
    // A row as `metrics.jsonl` holds it: non-finite values are null there and are left out.
    let row: serde_json::Value = serde_json::from_str(
        r#"{"step": 7, "lr": 0.5, "loss": 2.0, "fixmatch/mask_rate": 0.25, "test_acc": null, "images_per_s": 300.0}"#,
    )
    .expect("json");
    w.json_row(row.as_object().expect("object")).expect("row");
    let bad: serde_json::Value = serde_json::from_str(r#"{"loss": 1.0}"#).expect("json");
    let err = w.json_row(bad.as_object().expect("object")).expect_err("no step");
    assert!(err.to_string().contains("step"), "{err}");
    let events = read_events(w.path());
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].step, 7);
    let What::Scalars(mut values) = events[1].what.clone() else { panic!("{:?}", events[1]) };
    values.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        values,
        vec![
            ("fixmatch/mask_rate".to_string(), 0.25),
            ("images_per_s".to_string(), 300.0),
            ("loss".to_string(), 2.0),
            ("lr".to_string(), 0.5),
        ]
    );
}

#[test]
fn a_resumed_run_writes_a_second_file_whose_start_event_discards_the_lost_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = "name = \"t\"\n# a comment\n[data]\ndataset = \"synthetic\"\n";
    // First session: steps 1..=5 logged, but the last checkpoint was at step 3 (then a crash).
    let mut first = EventWriter::for_session(dir.path(), 0, recipe).expect("writer");
    for step in 1..=5u64 {
        first.row(step, [("loss", step as f64)]).expect("row");
    }
    drop(first);
    // Second session resumes from the checkpoint at step 3 and logs steps 4..=6 with other values.
    let mut second = EventWriter::for_session(dir.path(), 3, recipe).expect("writer");
    for step in 4..=6u64 {
        second.row(step, [("loss", 10.0 * step as f64)]).expect("row");
    }
    drop(second);

    let files = event_files(dir.path());
    assert_eq!(files.len(), 2, "one file per session: {files:?}");
    let first_events = read_events(&files[0]);
    assert_eq!(first_events[0].what, What::FileVersion(FILE_VERSION.into()));
    assert_eq!((first_events[1].step, &first_events[1].what), (1, &What::SessionStart));
    match &first_events[2].what {
        What::Text { tag, plugin, text, .. } => {
            assert_eq!((tag.as_str(), plugin.as_str()), (RECIPE_TAG, "text"));
            assert_eq!(text, &recipe_markdown(recipe));
            assert_eq!(text, "    name = \"t\"\n    # a comment\n    [data]\n    dataset = \"synthetic\"");
        }
        other => panic!("expected the recipe, got {other:?}"),
    }
    assert_eq!(first_events[2].step, 0);
    let second_events = read_events(&files[1]);
    assert_eq!(second_events[0].what, What::FileVersion(FILE_VERSION.into()));
    assert_eq!((second_events[1].step, &second_events[1].what), (4, &What::SessionStart));
    assert!(!second_events.iter().any(|e| matches!(e.what, What::Text { .. })), "the recipe is written once");

    // What TensorBoard shows: steps 1..=3 of the first session, 4..=6 of the second.
    assert_eq!(
        tensorboard_view(dir.path(), "loss"),
        vec![(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0)]
    );
}

#[test]
fn the_reader_rejects_a_corrupted_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = EventWriter::create(dir.path()).expect("writer");
    w.row(1, [("loss", 1.0)]).expect("row");
    let path = w.path().to_path_buf();
    drop(w);
    let mut bytes = std::fs::read(&path).expect("read");
    assert_eq!(records(&bytes).len(), 2);
    let last = bytes.len() - 6;
    bytes[last] ^= 0x01;
    let caught = std::panic::catch_unwind(|| records(&bytes));
    assert!(caught.is_err(), "a flipped bit in the payload must fail the data checksum");
}

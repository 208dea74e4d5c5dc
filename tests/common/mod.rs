//! What several integration tests share.

/// A tiny FixMatch + IAM-D recipe on 200 synthetic images: seconds per run in the test profile.
pub const TINY_RECIPE: &str = r#"
name = "cli-test"
description = "a tiny FixMatch + IAM-D run for the CLI tests"
seed = 5

[data]
dataset = "synthetic"
labels_per_class = 2
batch_size = 8
mu = 2
workers = 2
synthetic_train_size = 200
synthetic_test_size = 50

[model]
arch = "cnn-small"

[[stage]]
kind = "supervised"

[[stage]]
kind = "fixmatch"
threshold = 0.5

[[stage]]
kind = "iam-d"
rho = 0.05

[schedule]
kind = "cosine"
steps = 20

[eval]
every = 10

[checkpoint]
every = 5
"#;

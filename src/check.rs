//! Range checks shared by the recipe sections' and stages' `validate` methods; each failure names the key and the
//! offending value.

use std::fmt::Display;

/// A value that parsed but is not allowed: the dotted key path (e.g. `stage.1.threshold`) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Problem {
    /// Dotted key path; stage indices are 0-based.
    pub key: String,
    /// What is wrong, e.g. `must be in (0, 1], got 1.5`.
    pub message: String,
}

impl Problem {
    /// A problem with the value at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { key: key.into(), message: message.into() }
    }
}

/// Shorthand for the result of a check.
pub type Check = Result<(), Problem>;

fn fail(key: &str, message: String) -> Check {
    Err(Problem::new(key, message))
}

/// `x > lo` (and finite).
pub fn above(key: &str, x: f64, lo: f64) -> Check {
    // Written so that NaN fails every comparison.
    if x.is_finite() && x > lo {
        Ok(())
    } else {
        fail(key, format!("must be > {lo}, got {x}"))
    }
}

/// `x >= lo` (and finite).
pub fn at_least(key: &str, x: f64, lo: f64) -> Check {
    if x.is_finite() && x >= lo {
        Ok(())
    } else {
        fail(key, format!("must be >= {lo}, got {x}"))
    }
}

/// `x` in `(lo, hi]`.
pub fn in_open_closed(key: &str, x: f64, lo: f64, hi: f64) -> Check {
    if x > lo && x <= hi {
        Ok(())
    } else {
        fail(key, format!("must be in ({lo}, {hi}], got {x}"))
    }
}

/// `x` in `[lo, hi)`.
pub fn in_closed_open(key: &str, x: f64, lo: f64, hi: f64) -> Check {
    if x >= lo && x < hi {
        Ok(())
    } else {
        fail(key, format!("must be in [{lo}, {hi}), got {x}"))
    }
}

/// `x` in `(lo, hi)`.
pub fn in_open(key: &str, x: f64, lo: f64, hi: f64) -> Check {
    if x > lo && x < hi {
        Ok(())
    } else {
        fail(key, format!("must be in ({lo}, {hi}), got {x}"))
    }
}

/// An integer count of at least `lo`.
pub fn count_at_least<T: PartialOrd + Display>(key: &str, n: T, lo: T) -> Check {
    if n >= lo {
        Ok(())
    } else {
        fail(key, format!("must be >= {lo}, got {n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_or_exclusive_as_named_and_nan_always_fails() {
        assert!(above("k", 0.0, 0.0).is_err());
        assert!(above("k", 1e-12, 0.0).is_ok());
        assert!(at_least("k", 0.0, 0.0).is_ok());
        assert!(in_open_closed("k", 1.0, 0.0, 1.0).is_ok());
        assert!(in_open_closed("k", 0.0, 0.0, 1.0).is_err());
        assert!(in_closed_open("k", 0.0, 0.0, 1.0).is_ok());
        assert!(in_closed_open("k", 1.0, 0.0, 1.0).is_err());
        assert!(in_open("k", 0.5, 0.0, 1.0).is_ok());
        assert!(in_open("k", 1.0, 0.0, 1.0).is_err());
        for check in [above, at_least] {
            assert!(check("k", f64::NAN, 0.0).is_err());
            assert!(check("k", f64::INFINITY, 0.0).is_err());
        }
        assert!(in_open_closed("k", f64::NAN, 0.0, 1.0).is_err());
        assert_eq!(
            in_open_closed("stage.1.threshold", 1.5, 0.0, 1.0),
            Err(Problem::new("stage.1.threshold", "must be in (0, 1], got 1.5"))
        );
        assert_eq!(count_at_least("k", 0usize, 1), Err(Problem::new("k", "must be >= 1, got 0")));
    }
}

//! Named views ("none", "weak", "strong", "simclr") that configuration files select, and their RNG seeding.

use crate::simclr::SimClr;
use crate::strong::Strong;
use crate::transform::{Identity, Transform};
use crate::weak::Weak;
use std::fmt;
use std::str::FromStr;

/// Which augmentation produces a view of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// The image as it is (evaluation, or the labelled view of a recipe without augmentation).
    Original,
    /// FixMatch's weak flip-and-shift.
    Weak,
    /// FixMatch's strong RandAugment + Cutout.
    Strong,
    /// SimCLR's crop, flip, colour jitter and grayscale.
    SimClr,
}

impl View {
    /// Every view, in the order of their names in error messages.
    pub const ALL: [View; 4] = [View::Original, View::Weak, View::Strong, View::SimClr];

    /// The name used in recipes: "none", "weak", "strong" or "simclr".
    pub fn name(self) -> &'static str {
        match self {
            View::Original => "none",
            View::Weak => "weak",
            View::Strong => "strong",
            View::SimClr => "simclr",
        }
    }

    /// The view's transform with its default parameters.
    pub fn transform(self) -> Box<dyn Transform> {
        match self {
            View::Original => Box::new(Identity),
            View::Weak => Box::new(Weak::default()),
            View::Strong => Box::new(Strong::default()),
            View::SimClr => Box::new(SimClr::default()),
        }
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A view name that is not one of "none", "weak", "strong", "simclr".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseViewError {
    /// The name that was given.
    pub given: String,
}

impl fmt::Display for ParseViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = View::ALL.iter().map(|v| v.name()).collect();
        write!(f, "unknown augmentation view {:?}; valid views are: {}", self.given, names.join(", "))
    }
}

impl std::error::Error for ParseViewError {}

impl FromStr for View {
    type Err = ParseViewError;

    fn from_str(s: &str) -> Result<View, ParseViewError> {
        View::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| ParseViewError { given: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_valid_names() {
        for v in View::ALL {
            assert_eq!(v.name().parse::<View>(), Ok(v));
            assert_eq!(v.to_string(), v.name());
        }
        let err = "strongest".parse::<View>().expect_err("not a view");
        let msg = err.to_string();
        assert!(msg.contains("\"strongest\""), "{msg}");
        assert!(msg.contains("none, weak, strong, simclr"), "{msg}");
    }
}

//! `--set KEY=VALUE` overrides, applied to the parsed TOML tree before it is read into a [`Recipe`](super::Recipe).

use toml::{Table, Value};

use super::error::RecipeError;

/// One override as applied: the key path it wrote and the argument as given (errors about that key cite it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Applied {
    /// Key path, e.g. `["stage", "1", "beta"]`.
    pub path: Vec<String>,
    /// The `KEY=VALUE` argument.
    pub arg: String,
}

/// Applies `args` in order (a later one wins) and returns what each wrote.
pub(crate) fn apply(root: &mut Table, args: &[String]) -> Result<Vec<Applied>, RecipeError> {
    let mut applied = Vec::with_capacity(args.len());
    for arg in args {
        let error = |message: String| RecipeError::Override { arg: arg.clone(), message };
        let (path, value) = parse(arg).map_err(error)?;
        set(root, &path, value).map_err(error)?;
        applied.push(Applied { path, arg: arg.clone() });
    }
    Ok(applied)
}

/// Most dotted parts a `--set` key may have. Recipe keys have at most three (`stage.1.beta`); an override creates the
/// tables on its path, and a table nested tens of thousands deep overflows the stack when it is read or dropped.
const MAX_KEY_PARTS: usize = 16;

/// Splits `KEY=VALUE`; VALUE is read as a TOML value (number, bool, string, array, inline table) and otherwise taken
/// as a plain string, so `--set model.arch=wrn-28-2` needs no quotes.
fn parse(arg: &str) -> Result<(Vec<String>, Value), String> {
    let (key, value) =
        arg.split_once('=').ok_or("expected KEY=VALUE, e.g. --set data.labels_per_class=25 (no '=' found)")?;
    let key = key.trim();
    let parts = key.split('.').count();
    if parts > MAX_KEY_PARTS {
        return Err(format!(
            "bad key: {parts} dotted parts, at most {MAX_KEY_PARTS} are allowed (recipe keys have at most 3, e.g. stage.1.beta)"
        ));
    }
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    let bare = |s: &String| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !path.iter().all(bare) {
        return Err(format!(
            "bad key {key:?}: expected dotted names of letters, digits, '_' and '-', e.g. stage.1.beta"
        ));
    }
    Ok((path, parse_value(value.trim())))
}

fn parse_value(text: &str) -> Value {
    // Parsing `v = TEXT` as a document must yield exactly the one key, or TEXT was not a single TOML value
    // (e.g. it contained a newline and another assignment).
    match toml::from_str::<Table>(&format!("v = {text}")) {
        Ok(mut doc) if doc.len() == 1 => doc.remove("v").unwrap_or_else(|| Value::String(text.to_string())),
        _ => Value::String(text.to_string()),
    }
}

/// Writes `value` at `path`, creating tables on the way; array elements (e.g. `stage.1`) must already exist.
fn set(root: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    if path.len() > 1 && path[0] == "stage" && !root.contains_key("stage") {
        return Err(format!("{}: no such stage: the recipe has no [[stage]] tables", path[..2].join(".")));
    }
    let mut node = Value::Table(std::mem::take(root));
    let result = set_at(&mut node, path, 0, value);
    if let Value::Table(table) = node {
        *root = table;
    }
    result
}

/// Writes `value` at `path[depth..]` below `node`, which sits at `path[..depth]`.
fn set_at(node: &mut Value, path: &[String], depth: usize, value: Value) -> Result<(), String> {
    let key = &path[depth];
    let last = depth + 1 == path.len();
    match node {
        Value::Table(table) => {
            if last {
                table.insert(key.clone(), value);
                return Ok(());
            }
            let next = table.entry(key.clone()).or_insert_with(|| Value::Table(Table::new()));
            set_at(next, path, depth + 1, value)
        }
        Value::Array(items) => {
            let i = index(&path[..depth], key, items.len())?;
            if last {
                items[i] = value;
                return Ok(());
            }
            set_at(&mut items[i], path, depth + 1, value)
        }
        other => Err(format!("{}: {} is a {}, not a table", path.join("."), path[..depth].join("."), other.type_str())),
    }
}

/// Reads an array index, checking it addresses an existing element.
fn index(array_path: &[String], key: &str, len: usize) -> Result<usize, String> {
    let at = format!("{}.{key}", array_path.join("."));
    let i: usize = key.parse().map_err(|_| format!("{at}: {key:?} is not an index (a 0-based number)"))?;
    if i < len {
        return Ok(i);
    }
    let range = match len {
        0 => "none".to_string(),
        _ => format!("indices 0 to {}", len - 1),
    };
    if array_path == ["stage"] {
        Err(format!("{at}: no such stage: the recipe has {len} [[stage]] tables ({range})"))
    } else {
        Err(format!("{at}: index out of range: {} has {len} elements ({range})", array_path.join(".")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        toml::from_str(text).expect("test document is valid TOML")
    }

    #[test]
    fn values_are_toml_or_else_plain_strings() {
        assert_eq!(parse_value("25"), Value::Integer(25));
        assert_eq!(parse_value("1e-3"), Value::Float(1e-3));
        assert_eq!(parse_value("true"), Value::Boolean(true));
        assert_eq!(parse_value("\"a b\""), Value::String("a b".into()));
        assert_eq!(parse_value("wrn-28-2"), Value::String("wrn-28-2".into()));
        assert_eq!(parse_value("[\"weak\", \"strong\"]"), Value::Array(vec!["weak".into(), "strong".into()]));
        // Text that would smuggle in a second key stays one string.
        assert_eq!(parse_value("1\nw = 2"), Value::String("1\nw = 2".into()));
    }

    #[test]
    fn keys_are_bounded_in_depth() {
        assert!(parse(&format!("{}b=1", "a.".repeat(MAX_KEY_PARTS - 1))).is_ok());
        let err = parse(&format!("{}b=1", "a.".repeat(MAX_KEY_PARTS))).expect_err("too deep");
        assert!(err.starts_with("bad key: 17 dotted parts, at most 16"), "{err}");
    }

    #[test]
    fn set_creates_tables_but_not_stages() {
        let mut t = table("[[stage]]\nkind = \"supervised\"\n");
        set(&mut t, &["update".into(), "rule".into()], "sam".into()).expect("new table");
        assert_eq!(t["update"]["rule"].as_str(), Some("sam"));
        set(&mut t, &["stage".into(), "0".into(), "weight".into()], Value::Float(2.0)).expect("stage 0");
        assert_eq!(t["stage"][0]["weight"].as_float(), Some(2.0));
        let err =
            set(&mut t, &["stage".into(), "1".into(), "weight".into()], Value::Float(2.0)).expect_err("no stage 1");
        assert_eq!(err, "stage.1: no such stage: the recipe has 1 [[stage]] tables (indices 0 to 0)");
        let err = set(&mut t, &["update".into(), "rule".into(), "x".into()], Value::Float(2.0)).expect_err("scalar");
        assert_eq!(err, "update.rule.x: update.rule is a string, not a table");
    }
}

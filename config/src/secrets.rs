//! `{ env: NAME }` and `{ file: path }` secret references inside source options.

use std::path::Path;

use serde_json::Value;

/// Returns `v` with every secret reference replaced by its value, or every reference that
/// could not be resolved. A secret reference is a mapping with exactly one key, `env` or
/// `file`, whose value is a string. File secrets lose one trailing newline.
pub fn resolve_secrets(v: &Value, base_dir: &Path) -> Result<Value, Vec<String>> {
    let mut problems = Vec::new();
    let out = walk(v, base_dir, &mut problems);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn walk(v: &Value, base_dir: &Path, problems: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 => {
            if let Some(Value::String(name)) = m.get("env") {
                return match std::env::var(name) {
                    Ok(val) => Value::String(val),
                    Err(_) => {
                        problems.push(format!(
                            "secret `{{env: {name}}}`: environment variable {name} is not set"
                        ));
                        Value::Null
                    }
                };
            }
            if let Some(Value::String(file)) = m.get("file") {
                let path = base_dir.join(file);
                return match std::fs::read_to_string(&path) {
                    Ok(s) => Value::String(s.strip_suffix('\n').unwrap_or(&s).to_string()),
                    Err(e) => {
                        problems.push(format!(
                            "secret `{{file: {file}}}`: cannot read {}: {e}",
                            path.display()
                        ));
                        Value::Null
                    }
                };
            }
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), walk(v, base_dir, problems)))
                    .collect(),
            )
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), walk(v, base_dir, problems)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| walk(v, base_dir, problems)).collect()),
        other => other.clone(),
    }
}

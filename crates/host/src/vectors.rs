use postkey_secrets::vectors::{self, Value};
use postkey_wire::WireError;

/// The published token test vectors as the JSON document of `docs/test-vectors.json`:
/// `{"vectors": [...]}`, one vector per line, fields in their documented order.
pub fn test_vectors_json() -> Result<String, WireError> {
    let mut out = String::from("{\"vectors\": [\n");
    let all = vectors::all()?;
    for (i, v) in all.iter().enumerate() {
        out.push_str("  {");
        for (j, (name, value)) in v.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            out.push_str(&json_string(name));
            out.push_str(": ");
            match value {
                Value::Str(s) => out.push_str(&json_string(s)),
                Value::Int(n) => out.push_str(&n.to_string()),
            }
        }
        out.push('}');
        if i + 1 < all.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str("]}\n");
    Ok(out)
}

fn json_string(s: &str) -> String {
    // Serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

/// The largest published-vectors file compared (the document is a few kilobytes).
const MAX_VECTORS_FILE: u64 = 1024 * 1024;

/// Whether the file at `path` holds exactly the vectors [`test_vectors_json`] computes. The file
/// is read bounded, and only if it is a regular file (a FIFO or a device never blocks).
pub fn vectors_file_is_current(path: &std::path::Path) -> Result<bool, crate::HostError> {
    let json = test_vectors_json()?;
    let on_disk = crate::home::read_argument_file(path, MAX_VECTORS_FILE)?;
    Ok(on_disk == json.as_bytes())
}

/// Writes the vectors [`test_vectors_json`] computes to `path` (its directory must exist).
/// The write is atomic (a reader sees the old file or the new one), and it replaces only a
/// regular file: a FIFO, a device or a symbolic link at `path` is refused, never opened or
/// followed.
pub fn write_vectors_file(path: &std::path::Path) -> Result<(), crate::HostError> {
    let json = test_vectors_json()?;
    crate::home::write_argument_file(path, json.as_bytes())
}

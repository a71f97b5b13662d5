//! How values print (SQL literals for plans, display text for the REPL) and convert from Rust
//! types for parameters.

use crate::{ImageSource, Value};

/// The value as SQL source text: `'it''s'`, `X'00ff'`, `[0.5, 1]`, `NULL`.
pub fn sql_literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Blob(b) => format!("X'{}'", hex(b)),
        Value::Image(ImageSource::Path(p)) => format!("image('{}')", p.replace('\'', "''")),
        Value::Image(ImageSource::Bytes(b)) => format!("image(X'{}')", hex(b)),
        other => display_value(other, usize::MAX),
    }
}

/// As the shell shows it: text unquoted, reals always with a decimal point or exponent, images as
/// their path, blobs as `X'..'` hex, vectors in full.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&display_value(self, usize::MAX))
    }
}

/// The value as shown in results; vectors show at most `max_items` components.
pub fn display_value(v: &Value, max_items: usize) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => format_real(*r),
        Value::Text(s) => s.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::Blob(b) => format!("X'{}'", hex(b)),
        Value::Image(ImageSource::Path(p)) => p.clone(),
        Value::Image(ImageSource::Bytes(b)) => format!("<image {} bytes>", b.len()),
        Value::Vector(v) => {
            let shown: Vec<String> = v.iter().take(max_items).map(|x| format!("{x}")).collect();
            if v.len() > max_items {
                format!("[{}, ... ({} dims)]", shown.join(", "), v.len())
            } else {
                format!("[{}]", shown.join(", "))
            }
        }
    }
}

/// Reals print with a decimal point or exponent so they read back as REAL.
/// Very large and very small magnitudes use an exponent (1e20, 2.5e-10), as Rust's plain `{}`
/// would print all 21 digits of 1e20 or ten zeros before 2.5e-10.
fn format_real(r: f64) -> String {
    if !r.is_finite() {
        format!("{r}")
    } else if r != 0.0 && (r.abs() >= 1e15 || r.abs() < 1e-5) {
        format!("{r:e}")
    } else if r == r.trunc() {
        format!("{r:.1}")
    } else {
        format!("{r}")
    }
}

/// An f32 (a score, a vector component) as the f64 whose shortest decimal form is the f32's own (0.10353075 rather than
/// 0.10353074967861176): `as f64` keeps the binary value, whose extra digits are noise. The map
/// is monotonic, so ordering by the widened value matches ordering by the f32.
pub fn widen_f32(x: f32) -> f64 {
    if !x.is_finite() {
        return x as f64;
    }
    x.to_string().parse().unwrap_or(x as f64)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decodes the digits of an `X'..'` literal.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

macro_rules! value_from {
    ($($t:ty => $v:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value {
                let f: fn($t) -> Value = $v;
                f(x)
            }
        }
    )*};
}

value_from! {
    i64 => Value::Integer,
    i32 => |x| Value::Integer(x.into()),
    u32 => |x| Value::Integer(x.into()),
    f64 => Value::Real,
    f32 => |x| Value::Real(x.into()),
    bool => Value::Boolean,
    String => Value::Text,
    &str => |x| Value::Text(x.to_string()),
    Vec<u8> => Value::Blob,
    &[u8] => |x| Value::Blob(x.to_vec()),
    Vec<f32> => Value::Vector,
    &[f32] => |x| Value::Vector(x.to_vec()),
    ImageSource => Value::Image,
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Value {
        x.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_round_trip_in_spirit() {
        assert_eq!(sql_literal(&Value::Text("it's".into())), "'it''s'");
        assert_eq!(sql_literal(&Value::Blob(vec![0, 255])), "X'00ff'");
        assert_eq!(sql_literal(&Value::Real(2.0)), "2.0");
        assert_eq!(
            display_value(&Value::Vector(vec![1.0, 0.5, 2.0]), 2),
            "[1, 0.5, ... (3 dims)]"
        );
        assert_eq!(unhex("00ff"), Some(vec![0, 255]));
        for (r, shown) in [
            (1e20, "1e20"),
            (-2.5e-10, "-2.5e-10"),
            (0.0, "0.0"),
            (14.0, "14.0"),
            (0.5, "0.5"),
            (123456.789, "123456.789"),
            (0.00001, "0.00001"),
        ] {
            assert_eq!(display_value(&Value::Real(r), 4), shown);
            assert_eq!(shown.parse::<f64>().unwrap(), r);
        }
        assert_eq!(unhex("0"), None);
    }

    #[test]
    fn widened_scores_print_like_the_f32() {
        let x = 0.103_530_75_f32;
        assert_eq!((x as f64).to_string(), "0.10353074967861176");
        assert_eq!(widen_f32(x).to_string(), "0.10353075");
        assert_eq!(widen_f32(1.0), 1.0);
        assert!(widen_f32(f32::NAN).is_nan());
        // monotonic over neighbouring f32s
        let mut y = 0.3_f32;
        for _ in 0..1000 {
            let z = f32::from_bits(y.to_bits() + 1);
            assert!(widen_f32(y) < widen_f32(z));
            y = z;
        }
    }
}

//! Arbitrary bytes as a notification payload, through oban-core's notifier codec.
//!
//! Three ways in, all of which must return a value or an error and never panic:
//! the bytes as the payload text (plain JSON, or base64 of gzip with or without Elixir's
//! `Z:`); the bytes gzipped and base64-encoded, so that whatever the decompressor yields
//! reaches the JSON parser; and the bytes read as a structured JSON value, which must survive
//! `encode_payload` then `decode_payload` unchanged, floats bit for bit (plain up to 512 bytes,
//! compressed above).
//! Every decoded value also goes through the signal reader, as the node routes it.
#![no_main]

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use oban_core::notifier::{decode_payload, encode_payload};
use oban_core::signal::Signal;
use serde_json::{Map, Number, Value};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        decode(text);
    }

    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    gzip.write_all(data).unwrap();
    let compressed = BASE64.encode(gzip.finish().unwrap());
    let bare = decode(&compressed);
    let prefixed = decode(&format!("Z:{compressed}"));
    assert_eq!(bare, prefixed, "the Z: prefix changes nothing");
    if let Ok(json) = serde_json::from_slice::<Value>(data) {
        assert_eq!(bare, Some(json), "compression changes nothing");
    }

    if let Ok(value) = json(&mut Unstructured::new(data), 0) {
        let encoded = encode_payload(&value);
        let compact = value.to_string();
        if compact.len() <= 512 {
            assert_eq!(encoded, compact, "short payloads go plain");
        } else {
            assert!(
                encoded.starts_with("H4sI"),
                "long payloads go as bare base64 gzip"
            );
        }
        let decoded = decode_payload(&encoded).expect("our own encoding decodes");
        assert_eq!(decoded, value, "floats included, bit for bit");
    }
});

/// Decodes `payload` and reads it as a signal, as the node's router does.
fn decode(payload: &str) -> Option<Value> {
    let value = decode_payload(payload).ok()?;
    if let Some(signal) = Signal::parse(&value, "Oban.fuzz") {
        // Whatever the node obeys, it can also send: the payload reads back the same.
        assert_eq!(
            Signal::parse(&signal.to_payload("Oban.fuzz"), "Oban.fuzz"),
            Some(signal)
        );
    }
    Some(value)
}

/// A JSON value drawn from `u`: objects and arrays nest at most 8 deep.
fn json(u: &mut Unstructured<'_>, depth: usize) -> Result<Value> {
    let kinds = if depth >= 8 { 5 } else { 7 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(Number::from(u.arbitrary::<i64>()?)),
        3 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::String(u.arbitrary()?),
        5 => Value::Array(
            (0..u.arbitrary_len::<u8>()?)
                .map(|_| json(u, depth + 1))
                .collect::<Result<_>>()?,
        ),
        _ => {
            let mut object = Map::new();
            for _ in 0..u.arbitrary_len::<u8>()? {
                object.insert(u.arbitrary()?, json(u, depth + 1)?);
            }
            Value::Object(object)
        }
    })
}

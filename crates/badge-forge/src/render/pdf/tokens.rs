//! Numbers and hex digits in PDF syntax, appended to bytes without the formatting
//! machinery: a badge's file has a few hundred integers (widths, offsets, references) and a
//! hex string per glyph run, a sheet thousands.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `value` in decimal, as `write!("{value}")` would.
pub(super) fn push_int(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; 20];
    let mut rest = value.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `byte` as two upper-case hex digits (`{byte:02X}`).
pub(super) fn push_hex2(out: &mut Vec<u8>, byte: u8) {
    out.extend_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xF)]]);
}

/// Appends `value` as four upper-case hex digits (`{value:04X}`).
pub(super) fn push_hex4(out: &mut Vec<u8>, value: u16) {
    for byte in value.to_be_bytes() {
        push_hex2(out, byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_as_format_writes_them() {
        let mut out = Vec::new();
        for value in [0, 7, -7, 1_000_000, i64::MIN, i64::MAX] {
            push_int(&mut out, value);
            out.push(b' ');
        }
        push_hex2(&mut out, 0xA5);
        push_hex4(&mut out, 0x0F3C);
        let expected = format!("0 7 -7 1000000 {} {} A50F3C", i64::MIN, i64::MAX);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}

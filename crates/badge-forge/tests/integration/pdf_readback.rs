//! Reading the XML that PDF readers write back (poppler's `pdftotext -bbox`, MuPDF's stext),
//! one element per line: an attribute's value and an element's text, entities resolved.

/// The value of attribute `name` in the element on `line`, entities resolved; `None` when the
/// element has no such attribute.
pub fn attribute(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + line[start..].find('"')?;
    Some(unescape(&line[start..end]))
}

/// The number in attribute `name` of the element on `line`; panics naming it when missing or
/// not a number.
pub fn number(line: &str, name: &str) -> f64 {
    attribute(line, name)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no number in {name:?} of {line}"))
}

/// XML text with its entities resolved: the five named ones (`&amp;`...) and character
/// references (`&#xb7;`, `&#183;`). Panics on any other, which these readers never write.
pub fn unescape(text: &str) -> String {
    let mut resolved = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        resolved.push_str(&rest[..at]);
        let end = at + rest[at..].find(';').expect("an entity ends with ';'");
        let entity = &rest[at + 1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        resolved.push(c.unwrap_or_else(|| panic!("unknown XML entity &{entity}; in {text:?}")));
        rest = &rest[end + 1..];
    }
    resolved.push_str(rest);
    resolved
}

#[test]
fn entities_resolve_once_each() {
    assert_eq!(
        unescape("&lt;b&gt; &amp;amp; &#x3C;&#183;&quot;&apos; Zoë"),
        "<b> &amp; <·\"' Zoë"
    );
    let line = r#"<word xMin="12.5" yMin="3" c="&#xb7;">x</word>"#;
    assert_eq!(number(line, "xMin"), 12.5);
    assert_eq!(attribute(line, "Min"), None, "a whole name, not its tail");
    assert_eq!(attribute(line, "c").as_deref(), Some("·"));
}

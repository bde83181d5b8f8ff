//! Right-to-left names with ligatures read back in logical order (poppler's `pdftotext`).

use badge_forge::render::{Badge, BadgeType, EventInfo, Renderer};

#[test]
fn arabic_ligatures_read_back_as_typed() {
    let renderer = Renderer::new(EventInfo::default()).unwrap();
    // لى and لا are single ligature glyphs in Noto Sans Arabic.
    for name in ["ليلى العلي", "علاء الدين", "لانا"] {
        let badge = Badge {
            id: "rtl".into(),
            name: name.into(),
            company: String::new(),
            badge_type: BadgeType::SPEAKER,
            fields: Default::default(),
        };
        let path = std::env::temp_dir().join(format!("bf-rtl-{}.pdf", rand::random::<u32>()));
        std::fs::write(&path, renderer.render(&badge).unwrap()).unwrap();
        let out = std::process::Command::new("pdftotext")
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils) must be installed: run scripts/ensure-deps");
        let text: String = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .collect();
        let expected: String = name.split_whitespace().collect();
        assert!(text.contains(&expected), "{name:?} read back as {text:?}");
        std::fs::remove_file(path).unwrap();
    }
}

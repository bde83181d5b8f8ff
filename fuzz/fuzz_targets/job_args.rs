//! Arbitrary bytes as a job's args, decoded as the GenerateBadge worker decodes them.
//!
//! The bytes are what a `jsonb` args column can hold once parsed; any JSON value reaches the
//! worker. Decoding must never panic; a rejected job is fine. An accepted id must name a file
//! directly inside the output directory.
#![no_main]

use std::path::Component;
use std::sync::LazyLock;

use badge_forge::badge_args::badge_from_args;
use badge_forge::output::OutputDir;
use badge_forge::render::Badge;
use libfuzzer_sys::fuzz_target;
use oban_core::job::Job;
use serde_json::Value;

static OUTPUT: LazyLock<OutputDir> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("badge-forge-fuzz-{}", std::process::id()));
    OutputDir::create(dir, false).expect("a temporary output directory")
});

fuzz_target!(|data: &[u8]| {
    let Ok(args) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // The generic way a worker reads its args from a claimed row.
    let _ = job(args.clone()).args_as::<Badge>();

    match badge_from_args(&args, &["pronouns".to_string()]) {
        Ok(badge) => {
            let path = OUTPUT.badge_path(&badge.id);
            assert_eq!(path.parent(), Some(OUTPUT.path()), "{:?}", badge.id);
            let relative = path.strip_prefix(OUTPUT.path()).unwrap();
            assert!(
                relative
                    .components()
                    .all(|part| matches!(part, Component::Normal(_))),
                "{:?} escapes the output directory",
                badge.id
            );
        }
        // The worker records the message in the job's errors: it must format.
        Err(invalid) => assert!(!invalid.to_string().is_empty()),
    }
});

/// A claimed job carrying `args`, the other columns as a fresh row has them.
fn job(args: Value) -> Job {
    Job {
        id: 1,
        queue: "badges".into(),
        worker: "badge_forge.generator.GenerateBadge".into(),
        args,
        errors: Vec::new(),
        attempt: 1,
        max_attempts: 5,
        priority: 0,
        tags: Vec::new(),
        meta: Value::Object(Default::default()),
        inserted_at: Default::default(),
        scheduled_at: Default::default(),
        attempted_at: Default::default(),
        attempted_by: vec!["node".into(), "uuid".into()],
    }
}

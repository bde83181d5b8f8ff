//! Checking that credentials stay out of what a program shows: logs, errors, debug forms,
//! a command's output.

/// Fails the test if any of `secrets` appears in `text`, naming `what` the text is and showing
/// about 200 characters either side of the first one found, so the leak can be traced.
///
/// ```
/// use oban_core::testing::assert_no_secret;
///
/// let error = "password authentication failed for user \"app\"";
/// assert_no_secret(error, &["Tr0ub4dor-Zq9vX7wPk"], "the connection error");
/// ```
///
/// # Panics
///
/// When a secret is in `text`: "a secret leaked into {what}: …{context}…".
pub fn assert_no_secret(text: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        if let Some(at) = text.find(secret) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(199)
                .map_or(0, |(i, _)| i);
            let context: String = text[start..].chars().take(400 + secret.len()).collect();
            panic!("a secret leaked into {what}: …{context}…");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "a secret leaked into the log: …ab pass-word cd…")]
    fn a_secret_in_the_text_fails_with_its_context() {
        assert_no_secret("ab pass-word cd", &["other", "pass-word"], "the log");
    }

    #[test]
    fn context_is_cut_on_character_boundaries() {
        let text = format!("{}secret{}", "é".repeat(300), "ü".repeat(300));
        let failure =
            std::panic::catch_unwind(|| assert_no_secret(&text, &["secret"], "it")).unwrap_err();
        let message = failure.downcast_ref::<String>().unwrap();
        let context = format!("…{}secret{}…", "é".repeat(200), "ü".repeat(200));
        assert!(message.ends_with(&context), "{message}");
    }
}

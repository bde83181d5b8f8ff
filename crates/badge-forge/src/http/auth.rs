//! Who may see the `--http` server: HTTP Basic authentication (`--http-auth USER:PASSWORD`)
//! on every route but `/healthz`, and the headers that keep browsers from caching, leaking or
//! re-interpreting what it serves. The live page and previews show attendees' names.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

/// What the page may load: its own script, stylesheet, previews and `/live` fragment, nothing
/// inline and nothing from elsewhere (but `data:` images: a preview carries its layout's logo
/// and background as such); it may not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The user and password the server asks for. Its debug form hides the password.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    /// `user:password`, as a Basic `Authorization` header carries it once decoded.
    expected: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why `--http-auth` was refused; never repeats the value (it holds a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--http-auth must be USER:PASSWORD, {0}")]
pub struct InvalidCredentials(&'static str);

impl Credentials {
    /// Reads `USER:PASSWORD`: the user is everything before the first colon (Basic auth
    /// allows none in it), the password the rest; neither may be empty.
    pub fn parse(text: &str) -> Result<Self, InvalidCredentials> {
        let (user, password) = text
            .split_once(':')
            .ok_or(InvalidCredentials("with a colon between them"))?;
        if user.is_empty() || password.is_empty() {
            return Err(InvalidCredentials("neither of them empty"));
        }
        if text.chars().any(char::is_control) {
            return Err(InvalidCredentials("without control characters"));
        }
        Ok(Self {
            user: user.to_owned(),
            expected: text.as_bytes().to_vec(),
        })
    }

    /// Whether `headers` carry these credentials. The comparison takes the same time wherever
    /// the first wrong byte is, so timing tells an attacker nothing about the password.
    fn admit(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
            })
        else {
            return false;
        };
        presented.ct_eq(&self.expected).into()
    }
}

/// Answers 401 with a Basic challenge (browsers then prompt) unless the request carries the
/// credentials.
pub(super) async fn require(
    State(credentials): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    if credentials.admit(request.headers()) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            r#"Basic realm="badge-forge", charset="UTF-8""#,
        )],
        "credentials required\n",
    )
        .into_response()
}

/// Adds to every response: not stored by any cache, no referrer sent onwards, the declared
/// content type only, and the [`CONTENT_SECURITY_POLICY`].
pub(super) async fn private_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(text: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn admits_exactly_the_configured_user_and_password() {
        let credentials = Credentials::parse("ops:pa:ss word").unwrap();
        assert!(credentials.admit(&basic("ops:pa:ss word")));
        for wrong in [
            "ops:pa:ss wore",
            "ops:pa:ss",
            "ops:pa:ss word!",
            "Ops:pa:ss word",
            "",
        ] {
            assert!(!credentials.admit(&basic(wrong)), "{wrong:?}");
        }
        assert!(!credentials.admit(&HeaderMap::new()));
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            "Bearer b3BzOnBhOnNzIHdvcmQ=".parse().unwrap(),
        );
        assert!(!credentials.admit(&bearer), "only the Basic scheme");
    }

    #[test]
    fn refuses_malformed_values_without_repeating_them() {
        for bad in ["no-colon-Xy7pw", ":Xy7pw", "user:", "user:Xy\n7pw"] {
            let error = Credentials::parse(bad).unwrap_err().to_string();
            assert!(!error.contains("Xy") && !error.contains("7pw"), "{error}");
        }
        let debug = format!("{:?}", Credentials::parse("ops:secret").unwrap());
        assert!(
            debug.contains("ops") && !debug.contains("secret"),
            "{debug}"
        );
    }
}

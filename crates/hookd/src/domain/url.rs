//! Endpoint URLs, checked once when an endpoint is created or changed.

use std::fmt;

/// The longest endpoint URL accepted.
pub(crate) const MAX_URL_LENGTH: usize = 2048;

/// Why an endpoint URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("must be an absolute http or https URL")]
    Invalid,
    #[error("must use the http or https scheme")]
    Scheme,
    #[error("must not contain a user name or password")]
    UserInfo,
    #[error("must have a host")]
    NoHost,
    #[error("must be at most {MAX_URL_LENGTH} characters long")]
    TooLong,
    #[error("must not contain a fragment")]
    Fragment,
}

/// An absolute http(s) URL without credentials or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        if text.len() > MAX_URL_LENGTH {
            return Err(UrlError::TooLong);
        }
        let url = url::Url::parse(text).map_err(|_| UrlError::Invalid)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        if url.host().is_none() {
            return Err(UrlError::NoHost);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        Ok(Self(url))
    }

    pub(crate) fn as_url(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https() {
        assert!(EndpointUrl::parse("https://merchant.example/webhooks?x=1").is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:3000/hook").is_ok());
    }

    #[test]
    fn refuses_what_a_webhook_must_not_be() {
        assert_eq!(
            EndpointUrl::parse("ftp://a.example/"),
            Err(UrlError::Scheme)
        );
        assert_eq!(
            EndpointUrl::parse("https://u:p@a.example/"),
            Err(UrlError::UserInfo)
        );
        assert_eq!(EndpointUrl::parse("not a url"), Err(UrlError::Invalid));
        assert_eq!(
            EndpointUrl::parse("https://a.example/#x"),
            Err(UrlError::Fragment)
        );
        let long = format!("https://a.example/{}", "a".repeat(MAX_URL_LENGTH));
        assert_eq!(EndpointUrl::parse(&long), Err(UrlError::TooLong));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Whatever the input, parsing answers (never panics), and what it accepts is an
            /// http(s) URL without credentials, within the length limit.
            #[test]
            fn accepted_urls_keep_their_promises(text in "(https?|ftp|file|javascript)?:?/{0,2}\\PC{0,60}") {
                if let Ok(url) = EndpointUrl::parse(&text) {
                    let url = url.as_url();
                    prop_assert!(matches!(url.scheme(), "http" | "https"));
                    prop_assert!(url.username().is_empty() && url.password().is_none());
                    prop_assert!(url.host().is_some());
                    prop_assert!(url.as_str().len() <= MAX_URL_LENGTH + 16);
                }
            }

            /// User info is refused wherever it hides.
            #[test]
            fn credentials_are_always_refused(user in "[a-z]{1,8}", pass in "[a-z0-9]{0,8}", host in "[a-z]{1,10}\\.example") {
                let text = format!("https://{user}:{pass}@{host}/hook");
                prop_assert_eq!(EndpointUrl::parse(&text), Err(UrlError::UserInfo));
            }
        }
    }
}

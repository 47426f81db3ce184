//! Reading request headers from whatever type the merchant's framework hands over.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// Request headers, as the verifier reads them.
///
/// Implemented for `http::HeaderMap` (feature `http`, on with `axum`), for lists of name and
/// value pairs and for `HashMap`s of them; names are matched without regard to case, as HTTP
/// requires. Any other framework needs only this one method.
pub trait Headers {
    /// The raw value of the header `name` (given in lower case), if the request has it.
    fn header(&self, name: &str) -> Option<&[u8]>;
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref().as_bytes())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, S: BuildHasher> Headers for HashMap<K, V, S> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref().as_bytes())
    }
}

#[cfg(feature = "http")]
impl Headers for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(http::HeaderValue::as_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_without_regard_to_case() {
        let pairs = [("Webhook-ID", "msg_1")];
        assert_eq!(pairs.header("webhook-id"), Some(&b"msg_1"[..]));
        assert_eq!(pairs.header("webhook-timestamp"), None);

        let map: HashMap<String, String> = [("SVIX-ID".to_owned(), "msg_2".to_owned())].into();
        assert_eq!(map.header("svix-id"), Some(&b"msg_2"[..]));
    }
}

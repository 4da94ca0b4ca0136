//! The filters of ListPodSandbox and ListContainers: id (full or unique prefix), state,
//! sandbox, and a label selector in which every pair must match.

use std::collections::HashMap;

pub(crate) fn id_matches(filter: &str, id: &str) -> bool {
    filter.is_empty() || id.starts_with(filter)
}

pub(crate) fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_needs_every_pair() {
        let labels: HashMap<_, _> = [("a".to_string(), "1".to_string()), ("b".into(), "2".into())].into();
        let sel = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(labels_match(&sel(&[]), &labels));
        assert!(labels_match(&sel(&[("a", "1")]), &labels));
        assert!(labels_match(&sel(&[("a", "1"), ("b", "2")]), &labels));
        assert!(!labels_match(&sel(&[("a", "1"), ("b", "3")]), &labels));
        assert!(!labels_match(&sel(&[("c", "")]), &labels));
    }

    #[test]
    fn id_prefix() {
        assert!(id_matches("", "abc"));
        assert!(id_matches("ab", "abc"));
        assert!(!id_matches("b", "abc"));
    }
}

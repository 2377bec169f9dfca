//! "Did you mean" for misspelt field names and values.

/// The candidate the user most likely meant, if any is close enough to be worth saying.
///
/// Spelling variants (`pullPolicy`, `pull-policy`, `Pull_Policy` for `pull_policy`) always
/// match; otherwise the closest candidate within a third of the word's length in edits.
pub fn closest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let folded = fold(input);
    if let Some(exact) = candidates.iter().find(|c| fold(c) == folded) {
        return Some(exact);
    }
    let limit = (folded.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&folded, &fold(c)), *c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

fn fold(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::closest;

    const FIELDS: &[&str] = &["image", "resources", "read_only", "pull_policy", "hostname"];

    #[test]
    fn suggests_spelling_variants_and_typos() {
        assert_eq!(closest("resouces", FIELDS), Some("resources"));
        assert_eq!(closest("readonly", FIELDS), Some("read_only"));
        assert_eq!(closest("pullPolicy", FIELDS), Some("pull_policy"));
        assert_eq!(closest("imgae", FIELDS), Some("image"));
        assert_eq!(closest("host_name", FIELDS), Some("hostname"));
    }

    #[test]
    fn stays_quiet_when_nothing_is_close() {
        assert_eq!(closest("replicas", FIELDS), None);
        assert_eq!(closest("x", FIELDS), None);
        assert_eq!(closest("", FIELDS), None);
    }
}

/// Cleans a name into a NetBIOS computer name, which is what Windows will accept as the
/// container's host name: letters, digits and `-`; `_`, `.` and spaces become `-`; other
/// characters are dropped; it starts with a letter (`c` is prefixed if not); at most 15
/// characters; never empty.
pub fn netbios_name(name: &str) -> String {
    const MAX: usize = 15;
    let mut cleaned: String = name
        .chars()
        .filter_map(|c| match c {
            c if c.is_ascii_alphanumeric() || c == '-' => Some(c),
            '_' | '.' | ' ' => Some('-'),
            _ => None,
        })
        .collect();
    if !cleaned.starts_with(|c: char| c.is_ascii_alphabetic()) {
        cleaned.insert(0, 'c');
    }
    cleaned.truncate(MAX);
    cleaned
}

#[cfg(test)]
mod tests {
    use super::netbios_name;

    #[test]
    fn cleans_to_a_netbios_name() {
        for (input, expected) in [
            ("web", "web"),
            ("web-frontend-production", "web-frontend-pr"),
            ("my_app.v2 x", "my-app-v2-x"),
            ("1web", "c1web"),
            ("-x", "c-x"),
            ("", "c"),
            ("☃snow", "snow"),
            ("☃", "c"),
            ("storefront-web-1", "storefront-web-"),
        ] {
            let name = netbios_name(input);
            assert_eq!(name, expected, "{input:?}");
            assert!(name.len() <= 15 && name.starts_with(|c: char| c.is_ascii_alphabetic()));
        }
    }
}

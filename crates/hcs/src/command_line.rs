//! Windows command lines. Windows passes a process one string; programs split it with the
//! `CommandLineToArgvW` / MSVC runtime rules. pane joins argument lists so that those rules
//! give the same list back.

/// Joins arguments into one command line that splits back into exactly these arguments.
///
/// An argument is quoted when it is empty or holds a space, tab or quote. Inside quotes,
/// backslashes are doubled only where they precede a quote (or the closing quote), because
/// only there do the rules read them as escapes.
pub fn join<S: AsRef<str>>(args: &[S]) -> String {
    let mut line = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        append_quoted(&mut line, arg.as_ref());
    }
    line
}

fn append_quoted(line: &mut String, arg: &str) {
    let needs_quotes = arg.is_empty() || arg.contains([' ', '\t', '"', '\n', '\x0b']);
    if !needs_quotes {
        line.push_str(arg);
        return;
    }
    line.push('"');
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                // Escape the run of backslashes and the quote itself.
                line.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                line.push('"');
                backslashes = 0;
            }
            other => {
                line.extend(std::iter::repeat_n('\\', backslashes));
                line.push(other);
                backslashes = 0;
            }
        }
    }
    // Backslashes before the closing quote would escape it; double them.
    line.extend(std::iter::repeat_n('\\', backslashes * 2));
    line.push('"');
}

/// Splits a command line the way the MSVC runtime (2008 and later) builds `argv`.
///
/// The program name is special: it ends at the first space or tab outside quotes, and
/// backslashes in it are never escapes (`C:\dir\` is a valid program path).
pub fn split(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();

    // argv[0]
    let mut program = String::new();
    let mut in_quotes = false;
    while let Some(&c) = chars.peek() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && (c == ' ' || c == '\t') {
            break;
        } else {
            program.push(c);
        }
        chars.next();
    }
    if line.is_empty() {
        return args;
    }
    args.push(program);

    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut arg = String::new();
        let mut in_quotes = false;
        let mut backslashes = 0usize;
        while let Some(&c) = chars.peek() {
            match c {
                '\\' => {
                    backslashes += 1;
                    chars.next();
                }
                '"' => {
                    arg.extend(std::iter::repeat_n('\\', backslashes / 2));
                    chars.next();
                    if backslashes % 2 == 1 {
                        arg.push('"');
                    } else if in_quotes && chars.peek() == Some(&'"') {
                        // `""` inside quotes is a literal quote.
                        arg.push('"');
                        chars.next();
                    } else {
                        in_quotes = !in_quotes;
                    }
                    backslashes = 0;
                }
                ' ' | '\t' if !in_quotes => break,
                other => {
                    arg.extend(std::iter::repeat_n('\\', backslashes));
                    backslashes = 0;
                    arg.push(other);
                    chars.next();
                }
            }
        }
        arg.extend(std::iter::repeat_n('\\', backslashes));
        args.push(arg);
    }
    args
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        let cases: &[(&[&str], &str)] = &[
            (&["cmd", "/c", "echo", "hi"], "cmd /c echo hi"),
            (
                &[r"C:\Program Files\app.exe", "x"],
                r#""C:\Program Files\app.exe" x"#,
            ),
            (&["a", ""], r#"a """#),
            (&["a", r#"say "hi""#], r#"a "say \"hi\"""#),
            (&["a", r"C:\dir\"], r"a C:\dir\"),
            (&["a", r"C:\my dir\"], r#"a "C:\my dir\\""#),
            (&["a", r#"x\"y"#], r#"a "x\\\"y""#),
            (&["a", r"\\server\share"], r"a \\server\share"),
        ];
        for (args, line) in cases {
            assert_eq!(join(args), *line, "{args:?}");
            assert_eq!(split(line), *args, "{line}");
        }
    }

    #[test]
    fn splits_like_the_msvc_runtime() {
        let cases: &[(&str, &[&str])] = &[
            (r#""a b" c d"#, &["a b", "c", "d"]),
            (r#"p "ab\"c" "\\" d"#, &["p", r#"ab"c"#, r"\", "d"]),
            (r#"p a\\\b d"e f"g h"#, &["p", r"a\\\b", "de fg", "h"]),
            (r#"p a\\\"b c d"#, &["p", r#"a\"b"#, "c", "d"]),
            (r#"p a\\\\"b c" d e"#, &["p", r"a\\b c", "d", "e"]),
            (r#"p "a""b" c"#, &["p", r#"a"b"#, "c"]),
            ("p\t a  \t b", &["p", "a", "b"]),
            (
                r#""C:\Program Files\x.exe" -v"#,
                &[r"C:\Program Files\x.exe", "-v"],
            ),
            ("", &[]),
        ];
        for (line, args) in cases {
            assert_eq!(split(line), *args, "{line}");
        }
    }

    proptest! {
        #[test]
        fn join_then_split_is_identity(
            program in "[A-Za-z0-9:\\\\._ -]{1,20}",
            args in proptest::collection::vec("[ -~\t\\\\\"é]{0,12}", 0..6),
        ) {
            // The program name cannot hold a quote, and its backslashes are literal; keep it
            // to characters a real path can contain.
            let program = program.trim().to_owned();
            prop_assume!(!program.is_empty() && !program.ends_with('\\'));
            let mut all = vec![program];
            all.extend(args);
            prop_assert_eq!(split(&join(&all)), all);
        }
    }
}

//! The `#[circuit_breaker(..)]` argument parser (`breaker-macros/src/args.rs`,
//! compiled here as it is in the attribute) on arbitrary token streams: it
//! must answer with arguments or with a compile error, never panic (a panic
//! in a proc macro is an unhelpful error for the user).
//!
//! Half of the inputs are source text (tokenized by `proc-macro2`, as the
//! compiler would); the other half build token trees directly from the bytes,
//! mostly keys, `=`, `,`, literals and groups, so that most inputs get past
//! the tokenizer and deep into the parser.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

#[allow(dead_code, unreachable_pub)]
#[path = "../../breaker-macros/src/args.rs"]
mod args;

/// Words besides the attribute's keys (`args::KEYS`) that the built token
/// trees use.
const OTHER_WORDS: &[&str] = &[
    "r#name",
    "true",
    "false",
    "e",
    "T",
    "DbError",
    "Validation",
    "io",
    "Error",
    "move",
    "self",
    "_",
];
const PUNCTS: &[char] = &[
    '=', ',', ':', '|', '&', '<', '>', '.', '!', '#', '-', '*', '\'', ';',
];
const STRINGS: &[&str] = &[
    "db",
    "",
    "60s",
    "1m30s",
    "500ms",
    "2h",
    "0s",
    "::breaker",
    "x y",
    "99999999999999999999s",
];

/// Token trees from bytes: each byte picks what comes next.
fn build(data: &mut &[u8], depth: u32) -> TokenStream {
    let mut out = TokenStream::new();
    while let Some((&b, rest)) = data.split_first() {
        *data = rest;
        let pick = |n: usize| usize::from(b >> 3) % n;
        let tree = match b & 7 {
            0 | 1 => {
                let n = pick(args::KEYS.len() + OTHER_WORDS.len());
                let word = args::KEYS
                    .get(n)
                    .unwrap_or_else(|| &OTHER_WORDS[n - args::KEYS.len()]);
                TokenTree::Ident(ident(word))
            }
            2 => {
                let spacing = if b & 0x80 != 0 {
                    Spacing::Joint
                } else {
                    Spacing::Alone
                };
                TokenTree::Punct(Punct::new(PUNCTS[pick(PUNCTS.len())], spacing))
            }
            3 => TokenTree::Literal(Literal::string(STRINGS[pick(STRINGS.len())])),
            4 => TokenTree::Literal(match b >> 3 {
                0 => Literal::u64_unsuffixed(u64::MAX),
                1 => Literal::u32_suffixed(5),
                2 => Literal::i64_unsuffixed(-1),
                3 => Literal::f64_unsuffixed(1.5),
                4 => Literal::character('x'),
                5 => Literal::byte_string(b"60s"),
                n => Literal::u64_unsuffixed(u64::from(n) * 0x9_1000),
            }),
            5 if depth < 8 => {
                let delimiter = [
                    Delimiter::Bracket,
                    Delimiter::Parenthesis,
                    Delimiter::Brace,
                    Delimiter::None,
                ][pick(4)];
                TokenTree::Group(Group::new(delimiter, build(data, depth + 1)))
            }
            6 if depth > 0 => return out,
            _ => TokenTree::Punct(Punct::new(',', Spacing::Alone)),
        };
        out.extend([tree]);
    }
    out
}

fn ident(word: &str) -> Ident {
    match word.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(word, Span::call_site()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let tokens = if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let Ok(tokens) = TokenStream::from_str(text) else {
            return;
        };
        tokens
    } else {
        build(&mut rest, 0)
    };
    match args::Args::parse(tokens) {
        Ok(parsed) => {
            // What it accepted is in range.
            if let Some(n) = parsed.fail_max {
                assert!((1..=breaker_core::storage::MAX_FAIL_MAX).contains(&n));
            }
            if let Some(n) = parsed.success_threshold {
                assert!((1..=breaker_core::storage::MAX_SUCCESS_THRESHOLD).contains(&n));
            }
            if let Some(name) = &parsed.name {
                assert!(!name.value().is_empty());
            }
        }
        Err(e) => {
            // A compile error with something to say.
            assert!(!e.to_string().is_empty());
            let _ = e.to_compile_error();
        }
    }
});

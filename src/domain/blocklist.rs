//! Blocklists: words and phrases (whole words, case-insensitive), regular expressions
//! (validated, size-capped; the `regex` crate matches in linear time) and an allow list of
//! link domains. A room's list adds to its organization's; [`Matcher`] checks a message
//! against both.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use regex::{Regex, RegexBuilder};

pub const MAX_WORDS: usize = 1_000;
pub const MAX_WORD_CHARS: usize = 100;
pub const MAX_PATTERNS: usize = 100;
pub const MAX_PATTERN_CHARS: usize = 500;
pub const MAX_DOMAINS: usize = 500;
/// Compiled size one expression may take; bigger ones are refused, not slowed down.
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

/// A list as stored: every entry checked, words lowercased, domains lowercased.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    pub words: Vec<String>,
    pub patterns: Vec<String>,
    pub allowed_link_domains: Vec<String>,
}

impl Blocklist {
    pub fn parse(words: Vec<String>, patterns: Vec<String>, domains: Vec<String>) -> Result<Self, String> {
        if words.len() > MAX_WORDS || patterns.len() > MAX_PATTERNS || domains.len() > MAX_DOMAINS {
            return Err(format!(
                "a blocklist holds at most {MAX_WORDS} words, {MAX_PATTERNS} patterns and {MAX_DOMAINS} link domains"
            ));
        }
        let mut clean_words = Vec::new();
        for word in words {
            let word = word.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            let chars = word.chars().count();
            if chars == 0 || chars > MAX_WORD_CHARS {
                return Err(format!("words must be 1 to {MAX_WORD_CHARS} characters; {word:?} is not"));
            }
            clean_words.push(word);
        }
        for pattern in &patterns {
            compile(pattern)?;
        }
        let mut clean_domains = Vec::new();
        for domain in domains {
            let domain = domain.trim().trim_end_matches('.').to_lowercase();
            let valid = !domain.is_empty()
                && domain.len() <= 253
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            if !valid {
                return Err(format!("{domain:?} is not a domain name (like example.com)"));
            }
            clean_domains.push(domain);
        }
        for list in [&mut clean_words, &mut clean_domains] {
            list.sort();
            list.dedup();
        }
        let mut patterns = patterns;
        patterns.dedup();
        Ok(Self { words: clean_words, patterns, allowed_link_domains: clean_domains })
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.patterns.is_empty() && self.allowed_link_domains.is_empty()
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    let chars = pattern.chars().count();
    if chars == 0 || chars > MAX_PATTERN_CHARS {
        return Err(format!("patterns must be 1 to {MAX_PATTERN_CHARS} characters"));
    }
    RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("pattern {pattern:?} is not a valid regular expression: {e}"))
}

/// Which rule a message broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Word(String),
    Pattern(String),
    /// A link to a domain outside the allow list.
    Link(String),
}

impl Rule {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Word(_) => "word",
            Self::Pattern(_) => "pattern",
            Self::Link(_) => "link",
        }
    }
    pub fn value(&self) -> &str {
        match self {
            Self::Word(value) | Self::Pattern(value) | Self::Link(value) => value,
        }
    }
    /// The redaction's reason, as Matrix clients show it.
    pub fn reason(&self) -> String {
        match self {
            Self::Word(word) => format!("blocked word or phrase \"{word}\""),
            Self::Pattern(pattern) => format!("matches blocked pattern {pattern}"),
            Self::Link(domain) => format!("link to {domain}, which is not an allowed domain"),
        }
    }
}

/// The lists of a room and its organization, compiled.
pub struct Matcher {
    words: Option<Regex>,
    patterns: Vec<(String, Regex)>,
    allowed: Vec<String>,
    links: Regex,
}

impl Matcher {
    pub fn new(lists: &[&Blocklist]) -> Result<Self, String> {
        let mut words: Vec<&str> =
            lists.iter().flat_map(|list| list.words.iter().map(String::as_str)).collect();
        // Longest first, so a phrase wins over a word it starts with.
        words.sort_by_key(|word| std::cmp::Reverse(word.len()));
        words.dedup();
        let words = (!words.is_empty())
            .then(|| {
                let alternatives: Vec<String> =
                    words.iter().map(|word| regex::escape(word).replace(' ', r"\s+")).collect();
                // Whole words: not preceded or followed by a letter, digit or underscore.
                let pattern = format!(r"(?i)(?:^|[^\w])({})(?:[^\w]|$)", alternatives.join("|"));
                RegexBuilder::new(&pattern).size_limit(64 * 1024 * 1024).build()
            })
            .transpose()
            .map_err(|e| format!("the word list does not compile: {e}"))?;
        let patterns = lists
            .iter()
            .flat_map(|list| list.patterns.iter())
            .map(|pattern| Ok((pattern.clone(), compile(pattern)?)))
            .collect::<Result<_, String>>()?;
        let mut allowed: Vec<String> =
            lists.iter().flat_map(|list| list.allowed_link_domains.iter().cloned()).collect();
        allowed.sort();
        allowed.dedup();
        let links =
            Regex::new(r"(?i)(?:https?://|\bwww\.)([^\s/?#:<>()\[\]{}'`]+)").expect("a valid link pattern");
        Ok(Self { words, patterns, allowed, links })
    }

    /// The first rule the text breaks.
    pub fn check(&self, text: &str) -> Option<Rule> {
        if let Some(found) = self.words.as_ref().and_then(|words| words.captures(text)) {
            let word = found[1].split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            return Some(Rule::Word(word));
        }
        if let Some((pattern, _)) = self.patterns.iter().find(|(_, regex)| regex.is_match(text)) {
            return Some(Rule::Pattern(pattern.clone()));
        }
        if self.allowed.is_empty() {
            return None;
        }
        self.links.captures_iter(text).find_map(|link| {
            let host = link[1].trim_end_matches(['.', ',', ';', '!', '"']).to_lowercase();
            let host = host.strip_prefix("www.").unwrap_or(&host);
            let allowed = self.allowed.iter().any(|domain| {
                host == domain || host.strip_suffix(domain.as_str()).is_some_and(|sub| sub.ends_with('.'))
            });
            (!allowed).then(|| Rule::Link(host.to_owned()))
        })
    }
}

/// Compiled matchers by room, each kept while neither of its lists changes (their `updated_at`
/// times are the version).
#[derive(Default)]
pub struct MatcherCache {
    rooms: Mutex<HashMap<i64, (Versions, Arc<Matcher>)>>,
}

/// When the organization's and the room's lists last changed.
type Versions = (i64, i64);

impl MatcherCache {
    pub fn get(&self, room: i64, version: Versions) -> Option<Arc<Matcher>> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(&room).filter(|(cached, _)| *cached == version).map(|(_, matcher)| matcher.clone())
    }

    pub fn put(&self, room: i64, version: Versions, matcher: Arc<Matcher>) {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).insert(room, (version, matcher));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(words: &[&str], patterns: &[&str], domains: &[&str]) -> Blocklist {
        let owned = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Blocklist::parse(owned(words), owned(patterns), owned(domains)).unwrap()
    }

    #[test]
    fn words_match_whole_and_in_any_case() {
        let org = list(&["spam", "buy  now", "c++"], &[], &[]);
        let matcher = Matcher::new(&[&org]).unwrap();
        assert_eq!(matcher.check("this is SPAM!"), Some(Rule::Word("spam".into())));
        assert_eq!(matcher.check("Buy\nNow, friends"), Some(Rule::Word("buy now".into())));
        assert_eq!(matcher.check("I like c++ a lot"), Some(Rule::Word("c++".into())));
        assert_eq!(matcher.check("spammer and antispam"), None, "whole words only");
        assert_eq!(matcher.check("Spätzle"), None);
        assert_eq!(matcher.check(""), None);
    }

    #[test]
    fn a_rooms_list_adds_to_its_organizations() {
        let (org, room) = (list(&["alpha"], &[], &[]), list(&["beta"], &[r"\d{4}-\d{4}"], &[]));
        let matcher = Matcher::new(&[&org, &room]).unwrap();
        assert_eq!(matcher.check("alpha"), Some(Rule::Word("alpha".into())));
        assert_eq!(matcher.check("beta"), Some(Rule::Word("beta".into())));
        assert_eq!(matcher.check("call 5555-1234"), Some(Rule::Pattern(r"\d{4}-\d{4}".into())));
        assert_eq!(Matcher::new(&[&org]).unwrap().check("beta"), None);
    }

    #[test]
    fn links_outside_the_allow_list_are_caught_and_an_empty_list_allows_all() {
        let none = Matcher::new(&[&list(&[], &[], &[])]).unwrap();
        assert_eq!(none.check("see https://evil.example/x"), None);
        let allow = Matcher::new(&[&list(&[], &[], &["example.com"])]).unwrap();
        assert_eq!(allow.check("see https://example.com/x and http://docs.example.com."), None);
        assert_eq!(allow.check("go to www.example.com now"), None);
        assert_eq!(allow.check("see HTTPS://Evil.org/path"), Some(Rule::Link("evil.org".into())));
        assert_eq!(allow.check("see https://notexample.com"), Some(Rule::Link("notexample.com".into())));
        assert_eq!(allow.check(r#"<a href="https://phish.net">x</a>"#), Some(Rule::Link("phish.net".into())));
        assert_eq!(allow.check("plain words, no link"), None);
    }

    #[test]
    fn bad_lists_are_refused() {
        let owned = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Blocklist::parse(owned(&[""]), vec![], vec![]).is_err());
        assert!(Blocklist::parse(owned(&[&"x".repeat(101)]), vec![], vec![]).is_err());
        assert!(Blocklist::parse(vec![], owned(&["(unclosed"]), vec![]).is_err());
        assert!(Blocklist::parse(vec![], owned(&[r"(?:a|b)*c\1"]), vec![]).is_err(), "no backreferences");
        assert!(
            Blocklist::parse(vec![], owned(&[r"\w{1000}\w{1000}\w{1000}"]), vec![]).is_err(),
            "size-capped"
        );
        assert!(Blocklist::parse(vec![], vec![], owned(&["not a domain"])).is_err());
        assert!(Blocklist::parse(vec!["w".into(); MAX_WORDS + 1], vec![], vec![]).is_err());
        let ok = Blocklist::parse(owned(&["Spam", "spam"]), vec![], owned(&["Example.COM."])).unwrap();
        assert_eq!(
            (ok.words, ok.allowed_link_domains),
            (vec!["spam".to_owned()], vec!["example.com".to_owned()])
        );
    }

    #[test]
    fn matching_stays_linear_on_hostile_input() {
        // The pattern that backtracking engines take exponential time on.
        let matcher = Matcher::new(&[&list(&[], &["(a+)+$"], &[])]).unwrap();
        assert_eq!(matcher.check(&format!("{}!", "a".repeat(50_000))), None);
        assert_eq!(matcher.check(&"a".repeat(50_000)), Some(Rule::Pattern("(a+)+$".into())));
    }
}

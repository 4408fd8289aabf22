//! Chat-like payloads (`wsload --payload chat`): the line the demo's chat class broadcasts
//! (examples/src/chat.rs, keys in the order serde_json writes them), with wsload's tag as one
//! more field, `Seq`. Every line is made from a generator seeded by its source (sender or
//! connection) and sequence number, so any receiver can make the line it should have got, and
//! no two lines are alike, as in a real chat: the words are common English ones, the users,
//! rooms and socket ids few, the timestamps close together. That repetition is what
//! permessage-deflate finds in real traffic; a constant message would flatter it.

use crate::options::BROADCAST_TAG;

/// The default size of a chat line with `--payload chat` (bytes, roughly).
pub const CHAT_SIZE: usize = 300;

/// Where the tag sits, as a JSON member.
const SEQ_KEY: &str = "\"Seq\":\"";

const USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "Guest-3fa2c1", "mallory"];
const ROOMS: [&str; 4] = ["default", "lobby", "support", "random"];
/// Common English words, as chat lines are mostly made of.
const WORDS: [&str; 128] = [
    "the", "be", "to", "of", "and", "a", "in", "that", "have", "I", "it", "for", "not", "on", "with", "he",
    "as", "you", "do", "at", "this", "but", "his", "by", "from", "they", "we", "say", "her", "she", "or",
    "an", "will", "my", "one", "all", "would", "there", "their", "what", "so", "up", "out", "if", "about",
    "who", "get", "which", "go", "me", "when", "make", "can", "like", "time", "no", "just", "him", "know",
    "take", "people", "into", "year", "your", "good", "some", "could", "them", "see", "other", "than",
    "then", "now", "look", "only", "come", "its", "over", "think", "also", "back", "after", "use", "two",
    "how", "our", "work", "first", "well", "way", "even", "new", "want", "because", "any", "these", "give",
    "day", "most", "us", "is", "are", "was", "were", "been", "has", "had", "did", "does", "doing", "meeting",
    "today", "tomorrow", "deploy", "build", "server", "thanks", "sure", "ok", "yes", "maybe", "later",
    "lunch", "coffee", "please", "sorry", "great", "done",
];

/// A small fast generator (splitmix64): the same seed gives the same line everywhere.
struct Rng(u64);

impl Rng {
    fn new(source: usize, seq: u32) -> Rng {
        let mut rng = Rng(((source as u64) << 32 | u64::from(seq)) ^ 0x5eed_c4a7_0000_0000);
        rng.next(); // spread the seed's bits before the first draw
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The chat line number `seq` from `source` (a broadcast sender, or an echo connection), about
/// `size` bytes long (within about ±15 %, never less than the fields around the message), as
/// compact JSON:
/// `{"Message":…,"Room":…,"Sent":"YYYY-MM-DD HH:MM:SS","Seq":"SSSSRRRRRRRR","Type":"Chat","User":…,"WSID":…}`.
/// `Seq` holds the source (4 hex digits, of its low 16 bits) and `seq` (8), as a broadcast tag.
///
/// ```
/// let line = benches::chat_payload(300, 7, 42);
/// let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
/// assert_eq!(json["Type"], "Chat");
/// assert_eq!(benches::chat_tag(&line), Some((7, 42)));
/// ```
pub fn chat_payload(size: usize, source: usize, seq: u32) -> Vec<u8> {
    // The user, room and socket id belong to the source: the same on each of its lines.
    let mut who = Rng::new(source, u32::MAX);
    let user = USERS[who.below(USERS.len())];
    let room = ROOMS[who.below(ROOMS.len())];
    let wsid = format!("{:016x}{:016x}", who.next(), who.next());
    // Lines a few seconds apart, from some morning on.
    let at = 9 * 3600 + (source as u64 * 97 + u64::from(seq) * 3) % (12 * 3600);
    let sent = format!("2026-12-03 {:02}:{:02}:{:02}", at / 3600, at / 60 % 60, at % 60);

    let mut line = String::with_capacity(size + 64);
    line.push_str("{\"Message\":\"");
    let message_at = line.len();
    let rest = format!(
        "\",\"Room\":\"{room}\",\"Sent\":\"{sent}\",{SEQ_KEY}{:04x}{seq:08x}\",\"Type\":\"Chat\",\"User\":\"{user}\",\"WSID\":\"{wsid}\"}}",
        source as u16
    );
    let mut rng = Rng::new(source, seq);
    let spread = size * 15 / 100;
    let jitter = rng.below(2 * spread + 1);
    let target = (size + jitter).saturating_sub(spread + message_at + rest.len());
    let mut capital = true;
    loop {
        let word = WORDS[rng.below(WORDS.len())];
        if capital {
            let mut chars = word.chars();
            line.extend(chars.next().map(|c| c.to_ascii_uppercase()));
            line.push_str(chars.as_str());
        } else {
            line.push_str(word);
        }
        let written = line.len() - message_at;
        if written + 1 >= target {
            line.push(['.', '!', '?'][rng.below(3)]);
            break;
        }
        capital = false;
        match rng.below(16) {
            0 => {
                line.push_str(". ");
                capital = true;
            }
            1 => line.push_str(", "),
            _ => line.push(' '),
        }
    }
    line.push_str(&rest);
    line.into_bytes()
}

/// Reads the `(source, seq)` of a chat line (its `Seq` member).
pub fn chat_tag(line: &[u8]) -> Option<(usize, u32)> {
    let at = line.windows(SEQ_KEY.len()).position(|w| w == SEQ_KEY.as_bytes())? + SEQ_KEY.len();
    let tag: &[u8; BROADCAST_TAG] = line.get(at..at + BROADCAST_TAG)?.try_into().ok()?;
    crate::payload::broadcast_tag(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(line: &[u8]) -> String {
        format!("{} B: {}", line.len(), String::from_utf8_lossy(line))
    }

    #[test]
    fn lines_are_json_of_the_chat_format() {
        let line = chat_payload(CHAT_SIZE, 3, 9);
        let json: serde_json::Value =
            serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}: {}", describe(&line)));
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["Message", "Room", "Sent", "Seq", "Type", "User", "WSID"]);
        assert_eq!(json["Type"], "Chat");
        assert_eq!(json["WSID"].as_str().unwrap().len(), 32);
        assert_eq!(json["Sent"].as_str().unwrap().len(), "2026-12-03 09:00:00".len());
        // serde_json writes it back byte for byte: the same compact form the demo sends.
        assert_eq!(json.to_string().into_bytes(), line);
    }

    #[test]
    fn lines_are_about_the_size_asked_and_all_different() {
        let mut lines = std::collections::HashSet::new();
        let mut total = 0;
        for source in 0..20 {
            for seq in 0..50 {
                let line = chat_payload(CHAT_SIZE, source, seq);
                assert!((240..=360).contains(&line.len()), "{}", describe(&line));
                total += line.len();
                assert!(lines.insert(line));
            }
        }
        let mean = total / lines.len();
        assert!((285..=315).contains(&mean), "mean {mean} B");
        // Other sizes follow the target; a tiny one still makes a whole line.
        let big = chat_payload(2000, 1, 1);
        assert!((1700..=2300).contains(&big.len()), "{}", big.len());
        let tiny = chat_payload(20, 1, 1);
        assert!(serde_json::from_slice::<serde_json::Value>(&tiny).is_ok());
    }

    /// Server frame bytes for `lines` under permessage-deflate at `level`, each line compressed
    /// on its own (`alone`) or with the context kept from line to line.
    fn deflated_wire(lines: &[Vec<u8>], level: u8, alone: bool) -> usize {
        use ws_proto::{Config, Connection, DeflateConfig, Role, negotiate_deflate};
        let config = DeflateConfig::default().level(level).min_size(0).server_no_context_takeover(alone);
        let agreed = negotiate_deflate(&config, [b"permessage-deflate".as_slice()]).unwrap();
        assert_eq!(agreed.params.server_no_context_takeover, alone);
        let mut server = Connection::new(Role::Server, Config::default());
        server.set_deflate(agreed.params, &config);
        lines
            .iter()
            .map(|line| {
                server.send_binary(line).unwrap();
                server.take_output().len()
            })
            .sum()
    }

    /// What any permessage-deflate server can do with these lines (the floor of the deflate
    /// benchmark's wire bytes): compressed on its own, a ~300 B line does not shrink to half
    /// even at zlib's best level (its words and ids repeat too little within one line); with
    /// the context kept from line to line, the lines before it supply the repetition.
    #[test]
    fn chat_lines_halve_only_with_context_takeover() {
        let lines: Vec<Vec<u8>> = (0..400).map(|i| chat_payload(CHAT_SIZE, i % 20, i as u32)).collect();
        // Uncompressed server frames: a 4-byte header for 126..=65535 B.
        let plain: usize = lines.iter().map(|l| l.len() + 4).sum();
        for level in [1, 6, 9] {
            let alone = deflated_wire(&lines, level, true) as f64 / plain as f64;
            let kept = deflated_wire(&lines, level, false) as f64 / plain as f64;
            eprintln!("chat lines, level {level}: {alone:.3}x plain alone, {kept:.3}x with context takeover");
            assert!((0.6..0.95).contains(&alone), "level {level}: alone {alone:.3}");
            assert!(kept < 0.45, "level {level}: with context {kept:.3}");
        }
    }

    #[test]
    fn lines_are_deterministic_and_tags_round_trip() {
        assert_eq!(chat_payload(CHAT_SIZE, 5, 77), chat_payload(CHAT_SIZE, 5, 77));
        for (source, seq) in [(0, 0), (9, 1), (513, 99), (0xffff, u32::MAX)] {
            assert_eq!(chat_tag(&chat_payload(CHAT_SIZE, source, seq)), Some((source, seq)));
        }
        assert_eq!(chat_tag(b"{\"Message\":\"hi\"}"), None);
    }
}

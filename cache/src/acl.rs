//! The least-privilege ACL the stores need, and which command a `NOPERM` refusal was about.
//!
//! An operator who gives the OAuth server its own Redis user wants the smallest rule that works,
//! and wants a refusal to name what is missing. Both live here because only this crate knows what
//! the stores send:
//! - commands sent directly ([`DIRECT`]: `GETEX`, `SET`, `EVALSHA`, the `SCRIPT LOAD` redis-rs
//!   sends after `NOSCRIPT`, the connection's `PING`...), plus what each topology's handle sends
//!   (`ROLE` to confirm a Sentinel-named primary, `CLUSTER SLOTS` and `ASKING` on a Cluster,
//!   `SELECT` for a database other than 0);
//! - commands the Lua scripts call: Redis checks each `redis.call` against the caller's ACL, so the
//!   rule must allow them too. They are read from the scripts' own source ([`SCRIPTS`]), so the rule
//!   cannot drift from the scripts.
//!
//! Keys: every store key starts with `<prefix>:` ([`crate::keys`]), so `~<prefix>:*` is the only
//! key pattern needed; no pub/sub channel is used.
//!
//! Redis names the refused command in a direct refusal (`NOPERM ... to run the 'set' command`), but
//! not inside a script (`The user executing the script can't run this command ... script: <sha>`):
//! [`denied`] then names the script, by its SHA-1, and the commands it calls.

use redis::Script;

use crate::error::{Error, ErrorKind};
use crate::url::Topology;

/// Every Lua script the stores load: file name and source.
const SCRIPTS: [(&str, &str); 7] = [
    ("session_create", include_str!("lua/session_create.lua")),
    ("session_destroy", include_str!("lua/session_destroy.lua")),
    (
        "session_destroy_all",
        include_str!("lua/session_destroy_all.lua"),
    ),
    ("token_revoke", include_str!("lua/token_revoke.lua")),
    ("ratelimit_fixed", include_str!("lua/ratelimit_fixed.lua")),
    (
        "ratelimit_sliding",
        include_str!("lua/ratelimit_sliding.lua"),
    ),
    ("ratelimit_gcra", include_str!("lua/ratelimit_gcra.lua")),
];

/// Commands the stores and the connection send outside scripts (ACL spelling: `parent|sub`).
const DIRECT: [&str; 8] = [
    "ping",        // the connection proves itself
    "evalsha",     // every script call
    "script|load", // redis-rs loads a script after NOSCRIPT (a new or restarted primary)
    "getex",       // SessionStore::get
    "pexpireat",   // SessionStore::get (absolute deadline)
    "time",        // SessionStore::get, HostClock
    "set",         // SessionStore::update, TokenCache::put
    "get",         // TokenCache::get
];

/// The commands a Lua source calls (`redis.call('X'` / `redis.pcall('X'`), lower-case.
fn called_by(source: &str) -> Vec<String> {
    let mut out: Vec<String> = source
        .split("redis.")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest
                .strip_prefix("call(")
                .or_else(|| rest.strip_prefix("pcall("))?;
            let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            let name = rest[1..].split(quote).next()?;
            Some(name.to_ascii_lowercase())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every command the stores may send over `topology`, lower-case, sorted, without repeats.
pub fn store_commands(topology: &Topology) -> Vec<String> {
    let mut all: Vec<String> = DIRECT.iter().map(|c| c.to_string()).collect();
    for (_, source) in SCRIPTS {
        all.extend(called_by(source));
    }
    match topology {
        Topology::Sentinel { db, .. } | Topology::Standalone { db, .. } => {
            if matches!(topology, Topology::Sentinel { .. }) {
                all.push("role".into());
            }
            if *db != 0 {
                all.push("select".into());
            }
        }
        Topology::Cluster { .. } => all.extend(["cluster|slots".into(), "asking".into()]),
    }
    all.sort();
    all.dedup();
    all
}

/// An `ACL SETUSER` rule allowing exactly `commands` on keys under `prefix` and nothing else:
/// `resetkeys ~<prefix>:* resetchannels -@all +cmd ...`. Prepend `on >password`.
pub fn rule<'a>(prefix: &str, commands: impl IntoIterator<Item = &'a str>) -> String {
    let mut commands: Vec<&str> = commands.into_iter().collect();
    commands.sort_unstable();
    commands.dedup();
    let allowed: Vec<String> = commands.iter().map(|c| format!("+{c}")).collect();
    format!(
        "resetkeys ~{prefix}:* resetchannels -@all {}",
        allowed.join(" ")
    )
}

/// The rule the stores alone need (see [`rule`]).
pub fn store_rule(prefix: &str, topology: &Topology) -> String {
    let commands = store_commands(topology);
    rule(prefix, commands.iter().map(String::as_str))
}

/// What a `NOPERM` refusal was about, in the words of an ACL rule: `` `EVALSHA` ``, a key outside
/// the allowed patterns, or one of the commands a named script calls. `None` when `e` is not a
/// permission refusal.
pub fn denied(e: &Error) -> Option<String> {
    if e.kind() != ErrorKind::NoPermission {
        return None;
    }
    Some(denied_in(
        e.redis_error().and_then(|r| r.detail()).unwrap_or(""),
    ))
}

/// [`denied`] for a refusal's message text (what a load run keeps of an error).
pub fn denied_in(message: &str) -> String {
    if let Some(command) = message
        .split("to run the '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
    {
        return format!("`{}`", command.to_ascii_uppercase());
    }
    if message.contains("access one of the keys") {
        return "access to a key outside its key patterns".into();
    }
    if let Some(sha) = message
        .split("script: ")
        .nth(1)
        .map(|rest| rest.chars().take(40).collect::<String>())
        && let Some((name, source)) = SCRIPTS
            .iter()
            .find(|(_, source)| Script::new(source).get_hash() == sha)
    {
        let calls: Vec<String> = called_by(source)
            .iter()
            .map(|c| format!("`{}`", c.to_ascii_uppercase()))
            .collect();
        return format!(
            "one of the commands the {name} script calls ({})",
            calls.join(", ")
        );
    }
    UNNAMED.into()
}

/// What [`denied`] says when Redis named neither the command, the key nor the script.
pub const UNNAMED: &str = "a command it sent (Redis did not say which)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_file_is_listed_and_its_calls_are_read_from_its_source() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lua");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.trim_end_matches(".lua").to_string()
            })
            .collect();
        files.sort();
        let mut listed: Vec<&str> = SCRIPTS.iter().map(|(n, _)| *n).collect();
        listed.sort();
        assert_eq!(files, listed);
        let create = called_by(SCRIPTS[0].1);
        for c in [
            "time",
            "zadd",
            "set",
            "zrem",
            "zremrangebyscore",
            "pexpireat",
        ] {
            assert!(create.contains(&c.to_string()), "{create:?}");
        }
    }

    #[test]
    fn the_rule_names_the_prefix_and_every_command_once() {
        let url = crate::RedisUrl::parse("redis://127.0.0.1:6379").unwrap();
        let r = store_rule("authority", &url.topology);
        assert!(
            r.starts_with("resetkeys ~authority:* resetchannels -@all +"),
            "{r}"
        );
        for c in ["+evalsha", "+script|load", "+getex", "+zadd", "+incr"] {
            assert_eq!(
                r.matches(&format!("{c} ")).count() + r.ends_with(c) as usize,
                1,
                "{c}: {r}"
            );
        }
        assert!(!r.contains("+role"), "standalone needs no ROLE: {r}");
    }

    #[test]
    fn a_refusal_names_the_command_the_key_or_the_script() {
        assert_eq!(
            denied_in("this user has no permissions to run the 'evalsha' command"),
            "`EVALSHA`"
        );
        assert_eq!(
            denied_in("this user has no permissions to run the 'config|get' command"),
            "`CONFIG|GET`"
        );
        let sha = Script::new(SCRIPTS[0].1).get_hash().to_string();
        let inside = denied_in(&format!(
            "The user executing the script can't run this command or subcommand script: {sha}, on @user_script:9."
        ));
        assert!(
            inside.contains("session_create") && inside.contains("`ZADD`"),
            "{inside}"
        );
    }
}

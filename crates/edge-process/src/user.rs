//! Which user a module process runs as (`settings.user`).

/// The user and group a process is switched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// The user name, when `/etc/passwd` knows the user.
    pub name: Option<String>,
    /// The home directory, when `/etc/passwd` knows the user.
    pub home: Option<String>,
}

/// Why `settings.user` names no usable user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("no user named {0:?} in /etc/passwd")]
    UnknownUser(String),
    #[error("{0:?} is not a user name, a uid or uid:gid")]
    InvalidSpec(String),
}

/// Resolves `spec` (a user name, a numeric uid, or `uid:gid`) against the text of
/// `/etc/passwd`, pure. A numeric uid without a passwd entry runs with gid = uid.
pub fn resolve_user(spec: &str, passwd: &str) -> Result<RunAs, UserError> {
    let entries: Vec<PasswdEntry<'_>> = passwd.lines().filter_map(parse_passwd_line).collect();
    if let Some((uid_text, gid_text)) = spec.split_once(':') {
        let (Ok(uid), Ok(gid)) = (uid_text.parse::<u32>(), gid_text.parse::<u32>()) else {
            return Err(UserError::InvalidSpec(spec.to_owned()));
        };
        let entry = entries.iter().find(|entry| entry.uid == uid);
        return Ok(RunAs {
            uid,
            gid,
            name: entry.map(|entry| entry.name.to_owned()),
            home: entry.map(|entry| entry.home.to_owned()),
        });
    }
    if let Ok(uid) = spec.parse::<u32>() {
        let entry = entries.iter().find(|entry| entry.uid == uid);
        return Ok(RunAs {
            uid,
            gid: entry.map_or(uid, |entry| entry.gid),
            name: entry.map(|entry| entry.name.to_owned()),
            home: entry.map(|entry| entry.home.to_owned()),
        });
    }
    let entry = entries
        .iter()
        .find(|entry| entry.name == spec)
        .ok_or_else(|| UserError::UnknownUser(spec.to_owned()))?;
    Ok(RunAs {
        uid: entry.uid,
        gid: entry.gid,
        name: Some(entry.name.to_owned()),
        home: Some(entry.home.to_owned()),
    })
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn parse_passwd_line(line: &str) -> Option<PasswdEntry<'_>> {
    if line.starts_with('#') {
        return None;
    }
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 7 {
        return None;
    }
    Some(PasswdEntry {
        name: fields[0],
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: fields[5],
    })
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        broken line\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        sensor:x:1001:1002:Sensor:/home/sensor:/bin/sh\n";

    fn check(spec: &str, expect: Expect) {
        let rendered = match resolve_user(spec, PASSWD) {
            Ok(run_as) => format!(
                "uid={} gid={} name={:?} home={:?}",
                run_as.uid, run_as.gid, run_as.name, run_as.home
            ),
            Err(error) => format!("error: {error}"),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn users() {
        check(
            "sensor",
            expect![[r#"uid=1001 gid=1002 name=Some("sensor") home=Some("/home/sensor")"#]],
        );
        check(
            "65534",
            expect![[r#"uid=65534 gid=65534 name=Some("nobody") home=Some("/nonexistent")"#]],
        );
        check("4000", expect!["uid=4000 gid=4000 name=None home=None"]);
        check(
            "1001:7",
            expect![[r#"uid=1001 gid=7 name=Some("sensor") home=Some("/home/sensor")"#]],
        );
        check(
            "ghost",
            expect![[r#"error: no user named "ghost" in /etc/passwd"#]],
        );
        check(
            "sensor:staff",
            expect![[r#"error: "sensor:staff" is not a user name, a uid or uid:gid"#]],
        );
    }
}

//! The few facts about processes this runtime reads from `/proc`.

/// The fields of `/proc/<pid>/stat` this runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessStat {
    /// `R`, `S`, `D`, `Z` (zombie: already dead, waiting to be reaped), …
    pub state: char,
    pub process_group: i32,
    /// When the process started, in clock ticks since boot: with the pid, it names one process
    /// for the whole uptime of the host.
    pub start_ticks: u64,
}

impl ProcessStat {
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// itself contain spaces and parentheses, so the fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcessStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
    // `fields[0]` is field 3 (state); field 5 is the process group and field 22 the start time.
    let state = fields.first()?.chars().next()?;
    let process_group = fields.get(2)?.parse().ok()?;
    let start_ticks = fields.get(19)?.parse().ok()?;
    Some(ProcessStat {
        state,
        process_group,
        start_ticks,
    })
}

/// Reads `/proc/<pid>/stat`; `None` when no such process exists.
pub(crate) fn read_stat(pid: u32) -> Option<ProcessStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The id of the current boot of the host, which changes at every reboot.
pub(crate) fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|text| text.trim().to_owned())
}

/// What a run recorded by an earlier runtime instance is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordedRunFate {
    /// The very process that was recorded is still alive.
    StillRunning,
    /// It is gone: no such pid, a zombie, another process with the same pid, or another boot.
    Gone,
}

/// Decides whether a recorded run is still alive, pure.
pub(crate) fn recorded_run_fate(
    recorded_start_ticks: u64,
    recorded_boot_id: Option<&str>,
    current_stat: Option<ProcessStat>,
    current_boot_id: Option<&str>,
) -> RecordedRunFate {
    let same_boot = match (recorded_boot_id, current_boot_id) {
        (Some(recorded), Some(current)) => recorded == current,
        // Without a boot id (no /proc/sys), the start time alone has to do.
        _ => true,
    };
    match current_stat {
        Some(stat)
            if same_boot && !stat.is_zombie() && stat.start_ticks == recorded_start_ticks =>
        {
            RecordedRunFate::StillRunning
        }
        _ => RecordedRunFate::Gone,
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn parses_stat_lines() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 1 0 987654 3000000 200 18446744073709551615";
        expect![[r#"
            Some(
                ProcessStat {
                    state: 'S',
                    process_group: 4242,
                    start_ticks: 987654,
                },
            )
        "#]]
        .assert_debug_eq(&parse_stat(line));
        expect![[r#"
            None
        "#]]
        .assert_debug_eq(&parse_stat("4242 (truncated) S 1"));
        expect![[r#"
            None
        "#]]
        .assert_debug_eq(&parse_stat("garbage"));
    }

    #[test]
    fn own_process_is_readable() {
        let stat = read_stat(std::process::id()).expect("our own stat");
        assert!(!stat.is_zombie());
        assert!(stat.start_ticks > 0);
    }

    #[test]
    fn fates_of_recorded_runs() {
        let alive = ProcessStat {
            state: 'S',
            process_group: 10,
            start_ticks: 500,
        };
        let zombie = ProcessStat {
            state: 'Z',
            ..alive
        };
        let rendered: Vec<String> = [
            (500, Some("boot-a"), Some(alive), Some("boot-a")),
            (500, Some("boot-a"), Some(alive), Some("boot-b")),
            (501, Some("boot-a"), Some(alive), Some("boot-a")),
            (500, Some("boot-a"), Some(zombie), Some("boot-a")),
            (500, Some("boot-a"), None, Some("boot-a")),
            (500, None, Some(alive), Some("boot-a")),
        ]
        .into_iter()
        .map(|(ticks, recorded_boot, stat, current_boot)| {
            format!(
                "{:?}",
                recorded_run_fate(ticks, recorded_boot, stat, current_boot)
            )
        })
        .collect();
        expect![[r#"["StillRunning", "Gone", "Gone", "Gone", "Gone", "StillRunning"]"#]]
            .assert_eq(&format!("{rendered:?}"));
    }
}

//! Background processes: start detached with a log and a pid file, check,
//! stop. No unsafe code: detaching uses `process_group(0)`, signals go through
//! `kill(1)`.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{io_err, StackError};

/// Starts `cmd` in its own process group with stdout and stderr appended to
/// `log`, and writes its pid to `pid_file`.
pub(crate) fn spawn_detached(mut cmd: Command, log: &Path, pid_file: &Path) -> Result<u32, StackError> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(format!("opening {}", log.display())))?;
    let err = out.try_clone().map_err(io_err(format!("opening {}", log.display())))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(io_err(format!("starting {:?}", cmd.get_program())))?;
    let pid = child.id();
    std::fs::write(pid_file, format!("{pid}\n")).map_err(io_err(format!("writing {}", pid_file.display())))?;
    Ok(pid)
}

/// The pid recorded in `pid_file`, if that process is still running.
pub(crate) fn running_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    is_alive(pid).then_some(pid)
}

pub(crate) fn is_alive(pid: u32) -> bool {
    // A zombie (state Z) has exited; only its parent has not reaped it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z'),
        Err(_) => false,
    }
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL.
pub(crate) fn stop(pid: u32, grace: Duration) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let deadline = Instant::now() + grace;
    while is_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if is_alive(pid) {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
}

/// Polls `check` until it succeeds, the process dies, or `timeout` passes.
/// Returns the last failure reason on timeout.
pub(crate) fn wait_until(
    timeout: Duration,
    pid: Option<u32>,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let Some(pid) = pid {
            if !is_alive(pid) {
                return Err(format!("the process exited ({last})"));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("not healthy after {}s: {last}", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `n` lines of a log file.
pub(crate) fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a command to completion; a non-zero exit is an error carrying its output.
pub(crate) fn run(what: &str, cmd: &mut Command) -> Result<String, StackError> {
    let out = cmd.output().map_err(io_err(format!("running {what}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(StackError::Command {
            what: what.to_string(),
            detail: format!("{}\n{}", out.status, text.trim_end()),
        })
    }
}

/// True when the current user is root (uid 0).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

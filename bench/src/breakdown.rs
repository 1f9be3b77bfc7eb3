//! Where a pass's time goes: the CPU each side's server spends serving driftwatch, the
//! CPU of driftwatch itself, and how long it spent in chunk digests and in localization.
//!
//! The servers' CPU is read from /proc while the pass runs: every [`SAMPLE_EVERY`] the
//! engine names the OS processes (PostgreSQL backends) or threads (MariaDB connection
//! threads) serving the two bench databases, and the CPU each has used since it was
//! first seen is added to its side. A task's last [`SAMPLE_EVERY`] before it ends can be
//! missed, and /proc counts in clock ticks (10 ms), so each side's figure is low by at
//! most about that much per connection. A server on another machine has no /proc here:
//! its CPU is then not given. The digest and localization times come from driftwatch's
//! own debug log (`digest_ms` per chunk, `localize_ms` per chunk that had differences);
//! localization runs alongside the next chunk's digests, so the two can add up to more
//! than the wall time. The pass's time outside chunk digests comes from the same log's
//! timestamps, in three parts: before the first chunk's digests (schemas, key bounds),
//! between chunks (a chunk's localization that outlasted the next chunk's digests, the
//! next chunk's plan), and after the last (its localization, the pass's end).
//! Between chunks is what is left, so it carries the rounding of every `digest_ms` (a
//! millisecond per chunk at most).
//!
//! Must not: read anything of the servers but which tasks serve the bench databases.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use crate::{Engine, Side};

/// How often the servers' tasks are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// One run's breakdown.
#[derive(Debug, Clone, Default)]
pub struct Breakdown {
    /// Publisher and subscriber; None where the server's tasks are not on this machine.
    pub server_cpu: [Option<Duration>; 2],
    pub client_cpu: Duration,
    pub digests: Duration,
    pub localization: Duration,
    /// Before the first chunk's digests, between chunks, after the last (see the module's
    /// documentation); None where the log does not tell.
    pub outside: Option<[Duration; 3]>,
}

impl Breakdown {
    /// The debug log's digest and localization times, added up.
    pub fn read_log(&mut self, stderr: &str) {
        let sum = |key: &str| -> Duration {
            let ms: u64 = stderr.lines().filter_map(|l| field::<u64>(l, key)).sum();
            Duration::from_millis(ms)
        };
        self.digests = sum("digest_ms=");
        self.localization = sum("localize_ms=");
        self.outside = outside(stderr, self.digests);
    }

    pub fn line(&self) -> String {
        let side = |cpu: Option<Duration>| match cpu {
            Some(d) => format!("{:.2} s", d.as_secs_f64()),
            None => "not measured (not on this machine)".to_string(),
        };
        let outside = match self.outside {
            Some([before, between, after]) => format!(
                "; outside digests: before the first chunk {:.3} s, between chunks {:.3} s, after the last {:.3} s",
                before.as_secs_f64(),
                between.as_secs_f64(),
                after.as_secs_f64()
            ),
            None => String::new(),
        };
        format!(
            "server CPU publisher {}, subscriber {}; driftwatch CPU {:.2} s; in chunk digests {:.2} s, localizing {:.2} s (alongside the next chunk's digests){outside}",
            side(self.server_cpu[0]),
            side(self.server_cpu[1]),
            self.client_cpu.as_secs_f64(),
            self.digests.as_secs_f64(),
            self.localization.as_secs_f64(),
        )
    }

    pub fn json(&self) -> Value {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        json!({
            "server_cpu_publisher_s": secs(self.server_cpu[0]),
            "server_cpu_subscriber_s": secs(self.server_cpu[1]),
            "driftwatch_cpu_s": self.client_cpu.as_secs_f64(),
            "digests_s": self.digests.as_secs_f64(),
            "localization_s": self.localization.as_secs_f64(),
            "before_first_chunk_s": self.outside.map(|o| o[0].as_secs_f64()),
            "between_chunks_s": self.outside.map(|o| o[1].as_secs_f64()),
            "after_last_chunk_s": self.outside.map(|o| o[2].as_secs_f64()),
        })
    }
}

/// The pass's time outside chunk digests, from the log's timestamps: the pass began
/// `seconds` (of its closing line) before that line; the first chunk's digests began
/// `digest_ms` before its line, the last ended at its line. Between chunks is the rest.
fn outside(log: &str, digests: Duration) -> Option<[Duration; 3]> {
    let mut chunks = log.lines().filter(|l| l.contains(" digest_ms="));
    let end_line = log.lines().find(|l| l.contains("pass complete"))?;
    let end = time_of_day(end_line)?;
    let start = end - field::<f64>(end_line, " seconds=")?;
    let first_line = chunks.next()?;
    let first = time_of_day(first_line)? - field::<f64>(first_line, " digest_ms=")? / 1e3;
    let last = time_of_day(chunks.next_back().unwrap_or(first_line))?;
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let (before, after) = (first - start, end - last);
    let between = end - start - before - after - digests.as_secs_f64();
    Some([secs(before), secs(between), secs(after)])
}

/// The value after `key` in a log line (`digest_ms=37 ...` → 37).
fn field<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    line.split_once(key)?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Seconds since midnight of a log line's timestamp (`2026-12-01T15:56:47.006735Z ...`);
/// a pass timed here runs for seconds, and one across midnight is not broken down.
fn time_of_day(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split_once('T')?.1;
    let mut parts = time.strip_suffix('Z')?.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Samples the servers' CPU until `until` completes, and returns its output with the CPU
/// per side.
pub async fn sample_during<T>(
    engine: &impl Engine,
    until: impl std::future::Future<Output = T>,
) -> Result<(T, [Option<Duration>; 2])> {
    // Per task: its side, the CPU when first seen, the CPU when last seen.
    let mut tasks: HashMap<u32, (Side, Option<Duration>, Option<Duration>)> = HashMap::new();
    tokio::pin!(until);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let out = loop {
        tokio::select! {
            out = &mut until => break out,
            _ = tick.tick() => {
                for (side, id) in engine.server_tasks().await? {
                    let now = task_cpu(id);
                    let entry = tasks.entry(id).or_insert((side, now, now));
                    entry.2 = now.or(entry.2);
                }
            }
        }
    };
    let mut per_side: [Option<Duration>; 2] = [None, None];
    for (side, first, last) in tasks.into_values() {
        let i = match side {
            Side::Publisher => 0,
            Side::Subscriber => 1,
        };
        if let (Some(first), Some(last)) = (first, last) {
            *per_side[i].get_or_insert(Duration::ZERO) += last.saturating_sub(first);
        }
    }
    Ok((out, per_side))
}

/// The CPU (user and system) an OS process or thread has used, from
/// /proc/<process>/task/<thread>/stat; None where there is no such task here.
fn task_cpu(id: u32) -> Option<Duration> {
    let status = std::fs::read_to_string(format!("/proc/{id}/status")).ok()?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .to_string();
    let stat = std::fs::read_to_string(format!("/proc/{tgid}/task/{id}/stat")).ok()?;
    // The fields after the command's closing parenthesis: utime and stime are the 12th
    // and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_s_digest_and_localization_times_add_up() {
        let log = "\
2026-12-01T15:56:47.006735Z DEBUG pass{group=bench table=orders}: driftwatch::compare: chunk range=k1 >= 1 and k1 < 20480 rows=20479 digest_ms=37
2026-12-01T15:56:47.010000Z DEBUG pass{group=bench table=orders}: driftwatch::compare: localized localize_ms=12
2026-12-01T15:56:47.067212Z DEBUG pass{group=bench table=orders}: driftwatch::compare: chunk range=k1 >= 20480 and k1 < 60928 rows=40447 digest_ms=60
2026-12-01T15:56:48.427378Z  INFO pass{group=bench table=orders}: driftwatch::runtime: pass complete group=bench table=orders seconds=1.46
";
        let mut b = Breakdown::default();
        b.read_log(log);
        assert_eq!(b.digests, Duration::from_millis(97));
        assert_eq!(b.localization, Duration::from_millis(12));
        // Began at 46.967378 (1.46 s before the end); the first digests at 46.969735,
        // the last ended at 47.067212, the pass at 48.427378.
        let [before, between, after] = b.outside.unwrap();
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        assert_eq!(ms(before), 2.357);
        assert_eq!(ms(after), 1360.166);
        assert_eq!(ms(between), 0.477);
    }

    #[test]
    fn this_process_has_cpu_and_no_such_task_has_none() {
        assert!(task_cpu(std::process::id()).is_some());
        assert_eq!(task_cpu(u32::MAX), None);
    }
}

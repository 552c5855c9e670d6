//! Process metrics under the Collector's names, and the build-info series, set each
//! time `/metrics` is scraped so that stock Collector dashboards find them.
//!
//! | Name | Meaning |
//! |---|---|
//! | `otelcol_process_uptime` | Seconds since the telemetry started (with the process) |
//! | `otelcol_process_cpu_seconds` | User plus system CPU time of the process, in seconds |
//! | `otelcol_process_memory_rss` | Resident set size in bytes (Linux; absent elsewhere) |
//! | `vellum_build_info{version}` | Always 1 |
//! | `target_info{service_name, service_version}` | Always 1, as the Collector's Prometheus output has it |
//!
//! The Collector declares uptime and CPU time as counters; they are gauges here because
//! they are read, not counted, and carry fractions. `rate()` reads them the same.

use std::sync::OnceLock;
use std::time::Instant;

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Marks the start of the process's uptime; later calls change nothing.
pub fn mark_start() {
    STARTED.get_or_init(Instant::now);
}

/// Sets every process gauge from what the operating system says now.
pub fn publish() {
    let started = *STARTED.get_or_init(Instant::now);
    metrics::gauge!("otelcol_process_uptime").set(started.elapsed().as_secs_f64());
    if let Some(cpu) = cpu_seconds() {
        metrics::gauge!("otelcol_process_cpu_seconds").set(cpu);
    }
    if let Some(rss) = rss_bytes() {
        metrics::gauge!("otelcol_process_memory_rss").set(rss as f64);
    }
    let version = env!("CARGO_PKG_VERSION");
    metrics::gauge!("vellum_build_info", "version" => version).set(1.0);
    metrics::gauge!("target_info", "service_name" => "vellum", "service_version" => version)
        .set(1.0);
}

fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// Resident pages from `/proc/self/statm` (its second field) times the page size.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page_size).ok().map(|size| pages * size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work_and_rss_is_at_least_what_was_touched() {
        let before = cpu_seconds().unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 200 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_seconds().unwrap() >= before + 0.1, "{x}");
        let touched = vec![1u8; 64 << 20];
        let rss = rss_bytes().unwrap();
        assert!(rss >= 64 << 20, "rss {rss} with 64 MiB touched");
        drop(std::hint::black_box(touched));
    }
}

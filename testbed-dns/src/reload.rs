//! Side effects: atomic zone-file writes and `unbound-control auth_zone_reload`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::process::Command;
use tracing::{debug, info, warn};

use crate::records::{Record, RecordConfig};
use crate::zone::{self, SerialClock, ZoneDef};

/// How long one `unbound-control` call may take before it counts as failed.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors from writing or reloading a zone.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Writing the zone file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// `unbound-control` could not be started or timed out.
    #[error("running unbound-control for {zone}: {reason}")]
    Spawn {
        /// Zone being reloaded.
        zone: String,
        /// What went wrong.
        reason: String,
    },
    /// `unbound-control` ran but reported failure.
    #[error("unbound-control auth_zone_reload {zone} failed ({status}): {output}")]
    Failed {
        /// Zone being reloaded.
        zone: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// Combined stdout and stderr.
        output: String,
    },
}

/// Writes `contents` to `path` so readers see either the old or the new file, never a
/// partial one: unbound may read the file at any moment (e.g. on its own restart).
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), ReloadError> {
    let err = |source| ReloadError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Same directory so rename stays within one file system; pid avoids clashes with a
    // second instance pointed at the same directory.
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Runs `unbound-control -c <conf> auth_zone_reload <zone>`.
pub async fn unbound_reload(conf: &Path, zone: &str) -> Result<(), ReloadError> {
    let spawn_err = |reason: String| ReloadError::Spawn { zone: zone.to_string(), reason };
    let child = Command::new("unbound-control")
        .arg("-c")
        .arg(conf)
        .arg("auth_zone_reload")
        .arg(zone)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RELOAD_TIMEOUT, child)
        .await
        .map_err(|_| spawn_err(format!("timed out after {RELOAD_TIMEOUT:?}")))?
        .map_err(|e| spawn_err(e.to_string()))?;
    let output =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_string();
    // unbound-control exits non-zero when the server answers "error ...".
    if out.status.success() && !output.starts_with("error") {
        debug!(zone, %output, "auth_zone_reload ok");
        Ok(())
    } else {
        Err(ReloadError::Failed { zone: zone.to_string(), status: out.status, output })
    }
}

/// Per-zone state kept between rebuilds.
#[derive(Debug)]
struct Slot {
    def: ZoneDef,
    path: PathBuf,
    /// Body last written (or found on disk); `None` forces a write.
    body: Option<String>,
    /// unbound has not yet confirmed loading the current file.
    reload_pending: bool,
}

/// What one [`ZonePublisher::publish`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Zones whose file was rewritten.
    pub written: Vec<String>,
    /// Zones reloaded successfully.
    pub reloaded: Vec<String>,
    /// Zones whose reload failed; they are retried on the next publish.
    pub failed: Vec<String>,
}

/// Owns both zone files: renders, writes when the body changed and asks unbound to reload.
#[derive(Debug)]
pub struct ZonePublisher {
    cfg: RecordConfig,
    ttl: u32,
    unbound_conf: Option<PathBuf>,
    clock: SerialClock,
    slots: Vec<Slot>,
}

impl ZonePublisher {
    /// Creates a publisher for `<zone_dir>/<domain>.zone` and `<zone_dir>/in-addr.arpa.zone`.
    ///
    /// Existing files written by an earlier run are read so an unchanged cluster does not
    /// rewrite them and new serials stay above theirs. With `unbound_conf` set, every zone
    /// starts with a reload pending because what unbound currently serves is unknown.
    pub fn new(cfg: RecordConfig, ttl: u32, zone_dir: &Path, unbound_conf: Option<PathBuf>) -> Self {
        let mut clock = SerialClock::default();
        let slots = [ZoneDef::cluster(&cfg), ZoneDef::reverse()]
            .into_iter()
            .map(|def| {
                let path = zone_dir.join(def.file_name());
                let body = std::fs::read_to_string(&path).ok().and_then(|text| {
                    let (serial, body) = zone::split(&text)?;
                    clock.observe(serial);
                    Some(body.to_string())
                });
                Slot { def, path, body, reload_pending: unbound_conf.is_some() }
            })
            .collect();
        ZonePublisher { cfg, ttl, unbound_conf, clock, slots }
    }

    /// Whether some zone still waits for a successful reload.
    pub fn reload_pending(&self) -> bool {
        self.slots.iter().any(|s| s.reload_pending)
    }

    /// Publishes `records` (sorted, as from [`crate::records::build`]).
    ///
    /// Write errors abort (the zone directory is broken; retrying blindly will not help);
    /// reload errors are logged and reported so the caller can retry later.
    pub async fn publish(&mut self, records: &[Record]) -> Result<PublishReport, ReloadError> {
        let mut report = PublishReport::default();
        let bodies: Vec<String> = self.slots.iter().map(|s| s.def.body(records, self.ttl)).collect();
        let changed = self.slots.iter().zip(&bodies).any(|(s, b)| s.body.as_deref() != Some(b.as_str()));
        // One serial per rebuild keeps serials strictly increasing across all writes.
        let serial = changed.then(|| self.clock.next(unix_now()));

        for (slot, body) in self.slots.iter_mut().zip(bodies) {
            if slot.body.as_deref() == Some(body.as_str()) {
                continue;
            }
            let serial = serial.expect("a changed body implies a serial");
            let text = slot.def.render(&self.cfg, self.ttl, serial, &body);
            write_atomic(&slot.path, &text)?;
            info!(zone = slot.def.name(), serial, path = %slot.path.display(), "zone written");
            report.written.push(slot.def.name().to_string());
            slot.body = Some(body);
            slot.reload_pending = self.unbound_conf.is_some();
        }

        if let Some(conf) = &self.unbound_conf {
            for slot in self.slots.iter_mut().filter(|s| s.reload_pending) {
                let name = slot.def.name().to_string();
                match unbound_reload(conf, &name).await {
                    Ok(()) => {
                        slot.reload_pending = false;
                        report.reloaded.push(name);
                    }
                    Err(e) => {
                        warn!(error = %e, "zone reload failed; will retry");
                        report.failed.push(name);
                    }
                }
            }
        }
        Ok(report)
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RData;
    use std::net::Ipv4Addr;

    fn cfg() -> RecordConfig {
        RecordConfig { domain: "cluster.local".into(), ns_address: Ipv4Addr::new(10, 250, 0, 1) }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("testbed-dns-{tag}-{}-{}", std::process::id(), unix_now()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn recs(ip: [u8; 4]) -> Vec<Record> {
        crate::records::build(
            &cfg(),
            &[] as &[k8s_openapi::api::core::v1::Service],
            &[] as &[k8s_openapi::api::core::v1::Endpoints],
            &[] as &[k8s_openapi::api::core::v1::Pod],
        )
        .records
        .into_iter()
        .chain([Record { name: "x.default.svc.cluster.local.".into(), data: RData::A(Ipv4Addr::from(ip)) }])
        .collect()
    }

    fn serial_of(path: &Path) -> u32 {
        zone::split(&std::fs::read_to_string(path).unwrap()).unwrap().0
    }

    #[tokio::test]
    async fn writes_once_and_skips_unchanged_then_bumps_serial() {
        let dir = tmpdir("publish");
        let mut p = ZonePublisher::new(cfg(), 5, &dir, None);
        let r1 = p.publish(&recs([10, 96, 0, 9])).await.unwrap();
        assert_eq!(r1.written, vec!["cluster.local", "in-addr.arpa"]);
        let cz = dir.join("cluster.local.zone");
        let text1 = std::fs::read_to_string(&cz).unwrap();
        assert!(text1.contains("x.default.svc.cluster.local.\t5\tIN\tA\t10.96.0.9\n"));
        assert!(dir.join("in-addr.arpa.zone").exists());
        let s1 = serial_of(&cz);

        // Identical records: nothing written, file byte-identical.
        let r2 = p.publish(&recs([10, 96, 0, 9])).await.unwrap();
        assert!(r2.written.is_empty());
        assert_eq!(std::fs::read_to_string(&cz).unwrap(), text1);

        // Changed cluster zone only: reverse zone untouched, serial strictly higher.
        let r3 = p.publish(&recs([10, 96, 0, 10])).await.unwrap();
        assert_eq!(r3.written, vec!["cluster.local"]);
        assert!(serial_of(&cz) > s1);

        // A new process over the same directory keeps the file and exceeds its serial.
        let s3 = serial_of(&cz);
        let mut p2 = ZonePublisher::new(cfg(), 5, &dir, None);
        assert!(!p2.reload_pending());
        let r4 = p2.publish(&recs([10, 96, 0, 10])).await.unwrap();
        assert!(r4.written.is_empty());
        let r5 = p2.publish(&recs([10, 96, 0, 11])).await.unwrap();
        assert_eq!(r5.written, vec!["cluster.local"]);
        assert!(serial_of(&cz) > s3);

        // No temp files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn failed_reload_stays_pending() {
        let dir = tmpdir("reload");
        // A config path that cannot work: unbound-control fails (or is absent).
        let conf = dir.join("missing-unbound.conf");
        let mut p = ZonePublisher::new(cfg(), 5, &dir, Some(conf));
        assert!(p.reload_pending());
        let r = p.publish(&recs([10, 96, 0, 9])).await.unwrap();
        assert_eq!(r.written.len(), 2);
        assert!(r.reloaded.is_empty());
        assert_eq!(r.failed, vec!["cluster.local", "in-addr.arpa"]);
        assert!(p.reload_pending());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_atomic_replaces_content() {
        let dir = tmpdir("atomic");
        let f = dir.join("z.zone");
        write_atomic(&f, "one\n").unwrap();
        write_atomic(&f, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "two\n");
        assert!(write_atomic(&dir.join("no/such/dir/z"), "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

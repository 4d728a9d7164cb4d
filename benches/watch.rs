//! `env watch` on a generated 50,000-file tree (issue #18): idle CPU over 10 s (goal: under 1%
//! of a core) and edit → sync-started latency beyond the debounce (goal: under 100 ms), with
//! file events; the same idle figure with `--poll`, for comparison.
//! Run with `scripts/bench-watch.sh` (`cargo bench --bench watch`). Linux only: CPU time is
//! read from /proc/self/stat. `cargo test --all-targets` runs it small (see `size`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kindling::env::{WatchMode, WatchedTree, watch_tree};

const FILES_PER_DIR: usize = 100;
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The full benchmark under `cargo bench`; under `cargo test --all-targets` (which runs this
/// target without `--bench`), a quick check of the same loop on a small tree, so the tests
/// stay fast and the benchmark still cannot rot.
struct Size {
    dirs: usize,
    idle: Duration,
    edits: usize,
}

fn size() -> Size {
    if std::env::args().any(|a| a == "--bench") {
        Size {
            dirs: 500,
            idle: Duration::from_secs(10),
            edits: 10,
        }
    } else {
        Size {
            dirs: 5,
            idle: Duration::from_millis(500),
            edits: 2,
        }
    }
}

/// 50,000 small manifests under `stamps/big/`, and a `docs/` outside the selective-sync
/// patterns.
fn generate(root: &Path, dirs: usize) {
    for d in 0..dirs {
        let dir = root.join(format!("stamps/big/e{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            std::fs::write(
                dir.join(format!("m{f:03}.yaml")),
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m{d}-{f}}}\n"),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join(".gitignore"), "*.tmp\n").unwrap();
}

/// CPU time this process and its waited-for children (git) have used, user + system, from
/// /proc/self/stat.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime: fields 14 to 17.
    let ticks = (11..15)
        .map(|i| fields.get(i)?.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    // USER_HZ is 100 on every Linux ABI.
    Some(Duration::from_millis(ticks * 10))
}

/// Starts a watch in the background; the returned channel receives the instant of each sync.
fn start(
    runtime: &tokio::runtime::Runtime,
    root: &Path,
    mode: WatchMode,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::sync::mpsc::Receiver<Instant> {
    let (synced, syncs) = std::sync::mpsc::channel();
    let synced = Arc::new(Mutex::new(synced));
    let tree = WatchedTree {
        root: root.to_path_buf(),
        ignore: vec!["/*".into(), "!/stamps/big/".into()],
    };
    runtime.spawn(async move {
        let progress = kindling::ui::Progress::with_mode(false, 0);
        let _ = watch_tree(
            &tree,
            DEBOUNCE,
            mode,
            None,
            &progress,
            || stop.load(std::sync::atomic::Ordering::SeqCst),
            || {
                let _ = synced.lock().unwrap().send(Instant::now());
                async { Ok("0000000".to_string()) }
            },
        )
        .await;
    });
    syncs
}

fn idle_cpu(label: &str, idle: Duration) {
    let before = cpu_time().expect("/proc/self/stat");
    std::thread::sleep(idle);
    let used = cpu_time().unwrap() - before;
    println!(
        "watch {label}: idle CPU over {:.1}s: {:.2}% of a core",
        idle.as_secs_f64(),
        used.as_secs_f64() / idle.as_secs_f64() * 100.0
    );
}

fn main() {
    let Size { dirs, idle, edits } = size();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let t = Instant::now();
    generate(root, dirs);
    println!(
        "generated {} files in {:.1}s",
        dirs * FILES_PER_DIR,
        t.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let syncs = start(&runtime, root, WatchMode::Events, stop.clone());
    // Setting up the watches (one per directory) is done before the idle window starts.
    std::thread::sleep(Duration::from_secs(2));
    idle_cpu("events", idle);
    let mut latencies = Vec::new();
    for i in 0..edits {
        let edited = Instant::now();
        std::fs::write(
            root.join(format!("stamps/big/e{:03}/m000.yaml", i * 37 % dirs)),
            format!("edit {i}\n"),
        )
        .unwrap();
        let synced = syncs
            .recv_timeout(Duration::from_secs(30))
            .expect("watch did not sync an edit within 30 s");
        latencies.push(synced.duration_since(edited).saturating_sub(DEBOUNCE));
        // An edit outside the patterns must not sync.
        std::fs::write(root.join("docs/note.md"), format!("outside {i}\n")).unwrap();
        assert!(
            syncs.recv_timeout(DEBOUNCE * 3).is_err(),
            "an edit outside the selective-sync patterns was synced"
        );
    }
    latencies.sort();
    println!(
        "watch events: edit to sync started, beyond the {} ms debounce: median {} ms, max {} ms ({edits} edits)",
        DEBOUNCE.as_millis(),
        latencies[edits / 2].as_millis(),
        latencies[edits - 1].as_millis()
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _syncs = start(&runtime, root, WatchMode::Poll, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    idle_cpu("--poll", idle);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
}

//! Starting Drover's binaries from tests, and stopping them by pid.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The directory cargo puts this profile's binaries in (`target/debug`).
#[must_use]
pub fn bin_dir() -> PathBuf {
    // The test executable lives in target/<profile>/deps.
    let exe = std::env::current_exe().expect("current test executable");
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_path_buf()
}

/// The path of a workspace binary, built if it is missing or older than the sources.
///
/// `cargo test --workspace` builds every binary before any test runs (each binary's
/// package has an integration test that runs it), so they are found fresh next to the
/// test executable. Run alone (`cargo test -p drover-tests`), cargo builds none of them:
/// then the workspace's binaries are built once per test process, so a test never runs
/// a stale binary.
///
/// # Panics
/// If the build fails.
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = bin_dir().join(name);
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|built| newest_source().is_none_or(|src| src <= built));
    if fresh {
        return path;
    }
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--bins",
                "-p",
                "drover-api",
                "-p",
                "drover-worker",
                "-p",
                "drover-scheduler",
                "-p",
                "drover-ops",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the binaries");
        assert!(status.success(), "building the binaries failed");
    });
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// When the newest source file of the workspace's crates was changed.
fn newest_source() -> Option<std::time::SystemTime> {
    fn walk(dir: &std::path::Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target" && n != "tests") {
                    walk(&p, newest);
                }
            } else if p
                .extension()
                .is_some_and(|x| x == "rs" || x == "lua" || x == "toml")
                && let Ok(t) = e.metadata().and_then(|m| m.modified())
                && newest.is_none_or(|n| t > n)
            {
                *newest = Some(t);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let mut newest = None;
    for krate in [
        "queue",
        "jobs",
        "entities",
        "migration",
        "api",
        "worker",
        "scheduler",
        "ops",
    ] {
        walk(&root.join(krate), &mut newest);
    }
    newest
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts binary `name` with these environment variables (and a clean environment
    /// for Drover's own variables), its output going to the test's output.
    #[must_use]
    pub fn start(name: &str, envs: &[(&str, String)]) -> Self {
        Self::start_path(&binary(name).to_string_lossy(), &[], envs)
    }

    /// Like [`Proc::start`], for an executable given by path: a package's own tests
    /// have theirs as `env!("CARGO_BIN_EXE_<name>")`, already built by cargo.
    #[must_use]
    pub fn start_exe(exe: impl AsRef<std::path::Path>, envs: &[(&str, String)]) -> Self {
        Self::start_path(&exe.as_ref().to_string_lossy(), &[], envs)
    }

    /// Like [`Proc::start`], with its standard output and error appended to `log`, for
    /// tests that read what a process logged.
    ///
    /// # Panics
    /// If the log file cannot be opened or the process cannot start.
    #[must_use]
    pub fn start_logged(name: &str, envs: &[(&str, String)], log: &std::path::Path) -> Self {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|e| panic!("open {}: {e}", log.display()))
        };
        Self::spawn(&binary(name).to_string_lossy(), &[], envs, || {
            (Stdio::from(open()), Stdio::from(open()))
        })
    }

    /// Starts the program at `path` with these arguments and environment variables
    /// (and a clean environment for Drover's own variables).
    #[must_use]
    pub fn start_path(path: &str, args: &[&str], envs: &[(&str, String)]) -> Self {
        Self::spawn(path, args, envs, || (Stdio::inherit(), Stdio::inherit()))
    }

    fn spawn(
        path: &str,
        args: &[&str],
        envs: &[(&str, String)],
        output: impl FnOnce() -> (Stdio, Stdio),
    ) -> Self {
        let name = std::path::Path::new(path)
            .file_name()
            .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned());
        let mut cmd = Command::new(path);
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("DROVER_")
                || k.starts_with("OTEL_")
                || k == "REDIS_URL"
                || k == "DATABASE_URL"
            {
                cmd.env_remove(k);
            }
        }
        let (stdout, stderr) = output();
        cmd.envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self {
            name,
            child: Some(child),
        }
    }

    /// Its process id.
    ///
    /// # Panics
    /// If it was already stopped.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("process is running")
    }

    /// Sends SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and returns at once (see [`Proc::terminate`] to wait for the exit).
    pub fn sigterm(&self) {
        if let Some(c) = self.child.as_ref()
            && let Ok(pid) = i32::try_from(c.id())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for it to exit; returns its exit code.
    ///
    /// # Panics
    /// If it does not exit in time (it is then killed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let pid = Pid::from_raw(i32::try_from(c.id()).expect("pid fits i32"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                if status.code().is_none() {
                    use std::os::unix::process::ExitStatusExt as _;
                    eprintln!("{} was ended by signal {:?}", self.name, status.signal());
                }
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("{} did not stop within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether it has exited; its exit code if so.
    pub fn try_exit(&mut self) -> Option<Option<i32>> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => Some(status.code()),
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

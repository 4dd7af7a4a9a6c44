//! A Redis Cluster of a test's own: three masters, each with one replica.
//!
//! Six `redis-server --cluster-enabled yes` on free loopback ports, each with its
//! own directory, joined with `redis-cli --cluster create`, and stopped (SIGKILL, by
//! pid) when dropped. Tests read the cluster's state through `redis-cli`, as an
//! operator would, so nothing here depends on the client under test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a master may be unreachable before its replica takes over. Short, so a
/// failover test is quick; long enough that a loaded CI machine does not fail a
/// master over by mistake.
const NODE_TIMEOUT_MS: u32 = 2000;

/// One node of the cluster.
#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A running cluster of three masters and three replicas.
#[derive(Debug)]
pub struct TestCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
    /// Kills the nodes if this process dies before dropping the cluster (see
    /// [`TestCluster::start`]).
    reaper: Option<Child>,
}

/// What `CLUSTER NODES` says of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub master: bool,
    /// The id of the master a replica follows.
    pub master_id: Option<String>,
    /// Whether the node is marked failed (`fail` or `fail?`).
    pub failed: bool,
    /// The slot ranges it serves (masters only), inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl TestCluster {
    /// Starts a cluster and waits until every slot is served and every replica has
    /// caught up.
    ///
    /// A reaper (`sh`, reading a pipe from this process) kills the nodes and deletes
    /// their files when this process exits, however it exits: a test killed by its
    /// runner leaves no server behind.
    ///
    /// # Panics
    /// If `redis-server` or `redis-cli` is missing or the cluster does not form.
    #[must_use]
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("drover-cluster-")
            .tempdir()
            .expect("create a temporary directory for the cluster");
        for _attempt in 0..5 {
            let mut nodes: Vec<Node> = (0..6)
                .map(|i| Node {
                    port: 0,
                    dir: dir.path().join(format!("n{i}")),
                    child: None,
                })
                .collect();
            let mut ok = true;
            for n in &mut nodes {
                let _ = std::fs::remove_dir_all(&n.dir);
                std::fs::create_dir_all(&n.dir).expect("create a node directory");
                n.port = free_cluster_port();
                n.child = Some(spawn_node(n.port, &n.dir));
            }
            for n in &mut nodes {
                if !wait_ping(n) {
                    ok = false;
                }
            }
            if !ok {
                // A port was taken between the check and the bind: try other ports.
                for n in &mut nodes {
                    n.kill();
                }
                continue;
            }
            let reaper = spawn_reaper(&nodes, dir.path());
            let mut cluster = Self {
                nodes,
                dir,
                reaper: Some(reaper),
            };
            cluster.create();
            return cluster;
        }
        panic!("could not start six redis-server nodes on free ports");
    }

    fn create(&mut self) {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for n in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        cmd.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); install redis-tools"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        self.wait_healthy(Duration::from_secs(30));
    }

    /// Waits until every slot is served by a live master and every live replica is
    /// in sync with its master.
    ///
    /// # Panics
    /// If that does not happen within `timeout`.
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.healthy() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster is not healthy after {timeout:?}: {:?}",
                self.nodes_view()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.child.is_some()).collect();
        let all_ok = live.iter().all(|n| {
            cli(n.port, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"))
        });
        if !all_ok {
            return false;
        }
        let Some(view) = self.nodes_view() else {
            return false;
        };
        let covered: u32 = view
            .iter()
            .filter(|n| n.master && !n.failed)
            .flat_map(|n| &n.slots)
            .map(|(a, b)| u32::from(b - a) + 1)
            .sum();
        // Every live node is a master with slots, or a replica whose initial sync is
        // done. (A node `--cluster create` is about to make a replica is a master
        // without slots for a moment; one that has not finished its first sync holds
        // nothing of its master's data. Either would fail a failover over nothing.)
        covered == 16384
            && live.iter().all(|n| {
                let Some(me) = view.iter().find(|v| v.port == n.port) else {
                    return false;
                };
                if me.master {
                    return !me.slots.is_empty();
                }
                cli(n.port, &["INFO", "replication"]).is_some_and(|i| {
                    i.contains("role:slave")
                        && i.contains("master_link_status:up")
                        && i.contains("master_sync_in_progress:0")
                })
            })
    }

    /// A cluster shared by every test of this process that only needs a namespace of
    /// its own on a cluster (the suites that run on both targets). Started on first
    /// use and never dropped: its reaper stops it when this process exits.
    ///
    /// # Panics
    /// As [`TestCluster::start`].
    pub fn shared() -> &'static TestCluster {
        static SHARED: OnceLock<TestCluster> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// `redis+cluster://` naming every node, for Drover's `REDIS_URL`.
    #[must_use]
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The ports of every node, started or not.
    #[must_use]
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The cluster as a live node sees it (`CLUSTER NODES`).
    #[must_use]
    pub fn nodes_view(&self) -> Option<Vec<ClusterNode>> {
        let text = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .find_map(|n| cli(n.port, &["CLUSTER", "NODES"]))?;
        Some(text.lines().filter_map(parse_node_line).collect())
    }

    /// The port of the master serving `slot` now.
    #[must_use]
    pub fn master_of(&self, slot: u16) -> Option<u16> {
        self.nodes_view()?
            .into_iter()
            .find(|n| {
                n.master && !n.failed && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
            .map(|n| n.port)
    }

    /// The port of a live replica of the master on `master`.
    #[must_use]
    pub fn replica_of(&self, master: u16) -> Option<u16> {
        let view = self.nodes_view()?;
        let id = view
            .iter()
            .find(|n| n.port == master && n.master)?
            .id
            .clone();
        view.into_iter()
            .find(|n| !n.master && !n.failed && n.master_id.as_deref() == Some(id.as_str()))
            .map(|n| n.port)
    }

    /// Freezes the node on `port` (SIGSTOP): it neither answers nor replicates until
    /// [`TestCluster::resume`].
    pub fn pause(&self, port: u16) {
        self.signal(port, nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a paused node run again (SIGCONT).
    pub fn resume(&self, port: u16) {
        self.signal(port, nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, port: u16, signal: nix::sys::signal::Signal) {
        let pid = self.pid_of(port).expect("a running node");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid"));
        nix::sys::signal::kill(pid, signal).expect("signal the node");
    }

    /// The slot of `key`, as the cluster computes it (`CLUSTER KEYSLOT`).
    ///
    /// # Panics
    /// If no node answers.
    #[must_use]
    pub fn keyslot(&self, key: &str) -> u16 {
        let port = self.nodes[0].port;
        cli(port, &["CLUSTER", "KEYSLOT", key])
            .and_then(|s| s.trim().parse().ok())
            .expect("CLUSTER KEYSLOT answers")
    }

    /// The process id of the node on `port`, while it runs.
    #[must_use]
    pub fn pid_of(&self, port: u16) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .and_then(|n| n.child.as_ref().map(Child::id))
    }

    /// Kills the node on `port` with SIGKILL.
    pub fn kill(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.kill();
        }
    }

    /// Adds a new, empty node as a replica of the master on `master`, as an operator
    /// replaces a failed node, and waits until it is in sync. Returns its port.
    ///
    /// (Restarting a failed master without persistence would be worse: until it
    /// learns it was replaced, it answers as the master of its old slots, empty.)
    ///
    /// # Panics
    /// If `master` is not a master or the node does not join.
    pub fn add_replica(&mut self, master: u16) -> u16 {
        let id = self
            .nodes_view()
            .and_then(|v| v.into_iter().find(|n| n.port == master && n.master))
            .map(|n| n.id)
            .unwrap_or_else(|| panic!("127.0.0.1:{master} is not a master"));
        let mut node = Node {
            port: free_cluster_port(),
            dir: self.dir.path().join(format!("n{}", self.nodes.len())),
            child: None,
        };
        std::fs::create_dir_all(&node.dir).expect("create a node directory");
        node.child = Some(spawn_node(node.port, &node.dir));
        assert!(wait_ping(&mut node), "the new node did not start");
        let port = node.port;
        self.nodes.push(node);
        if let Some(r) = self.reaper.as_mut() {
            // The reaper kills by the ports it was given: replace it. Killed, not
            // let go: let go, it would kill the cluster.
            let _ = r.kill();
            let _ = r.wait();
        }
        self.reaper = Some(spawn_reaper(&self.nodes, self.dir.path()));
        let out = Command::new("redis-cli")
            .args(["--cluster", "add-node", &format!("127.0.0.1:{port}")])
            .arg(format!("127.0.0.1:{master}"))
            .args(["--cluster-slave", "--cluster-master-id", &id])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster add-node");
        assert!(
            out.status.success(),
            "add-node failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        port
    }

    /// The `redis-cli --cluster reshard` that moves `count` slots from the master on
    /// `from` to the master on `to`, keys and all, while the cluster serves.
    /// `redis-cli` moves the lowest slots of `from` first. Run it where it may block.
    ///
    /// # Panics
    /// If either is not a master.
    #[must_use]
    pub fn reshard_command(&self, from: u16, to: u16, count: u16) -> Command {
        let view = self.nodes_view().expect("the cluster answers");
        let id = |port: u16| {
            view.iter()
                .find(|n| n.port == port && n.master)
                .map(|n| n.id.clone())
                .unwrap_or_else(|| panic!("127.0.0.1:{port} is not a master"))
        };
        let mut cmd = Command::new("redis-cli");
        cmd.args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &id(from), "--cluster-to", &id(to)])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes"])
            .stdin(Stdio::null());
        cmd
    }

    /// The CPU seconds (user + system) the node on `port` has used (`INFO cpu`).
    #[must_use]
    pub fn cpu_seconds(&self, port: u16) -> Option<f64> {
        let info = cli(port, &["INFO", "cpu"])?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        };
        Some(field("used_cpu_sys:")? + field("used_cpu_user:")?)
    }
}

impl Node {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        if let Some(mut r) = self.reaper.take() {
            // Closing its stdin lets it finish; it has nothing left to kill.
            drop(r.stdin.take());
            let _ = r.wait();
        }
    }
}

/// The reaper of a cluster: waits for its stdin to close (this process ended or
/// dropped the cluster), then kills every node by port (a restarted node has a new
/// pid) and deletes the cluster's directory.
fn spawn_reaper(nodes: &[Node], dir: &Path) -> Child {
    let kills: Vec<String> = nodes
        .iter()
        // `[r]edis` matches the server's title but not this script's own command
        // line, which holds the pattern: a plain `redis` would kill the reaper first.
        .map(|n| format!("pkill -9 -f '[r]edis-server 127.0.0.1:{} '", n.port))
        .collect();
    let script = format!(
        "cat >/dev/null; {}; rm -rf '{}'",
        kills.join("; "),
        dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cluster's reaper")
}

fn spawn_node(port: u16, dir: &Path) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        // A replica whose link broke a while ago may still take over: a test cluster
        // has no older data to protect.
        .args(["--cluster-replica-validity-factor", "0"])
        // The other queues keep running while one master fails over.
        .args(["--cluster-require-full-coverage", "no"])
        // A replica's first sync starts at once, not after the default 5 s wait for
        // more replicas.
        .args(["--repl-diskless-sync-delay", "0"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run redis-server ({e}); install it"))
}

fn wait_ping(n: &mut Node) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(c) = n.child.as_mut()
            && let Ok(Some(_)) = c.try_wait()
        {
            n.child = None;
            return false;
        }
        if cli(n.port, &["PING"]).is_some_and(|s| s.trim() == "PONG") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port");
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

/// One `redis-cli` command's output, or `None` if the node does not answer.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
}

/// `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`
fn parse_node_line(line: &str) -> Option<ClusterNode> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        return None;
    }
    let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
    let flags = f[2];
    let slots = f[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|x| (x, x)),
        })
        .collect();
    Some(ClusterNode {
        id: f[0].to_owned(),
        port,
        master: flags.contains("master"),
        master_id: (f[3] != "-").then(|| f[3].to_owned()),
        failed: flags.contains("fail"),
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_node_line;

    #[test]
    fn reads_a_line_of_cluster_nodes() {
        let n = parse_node_line(
            "07c3 127.0.0.1:30004@40004 myself,master - 0 0 1 connected 0-5460 7000 [93->-e7d1]",
        )
        .unwrap();
        assert_eq!(n.port, 30004);
        assert!(n.master && !n.failed && n.master_id.is_none());
        assert_eq!(n.slots, vec![(0, 5460), (7000, 7000)]);
        let r = parse_node_line("e7d1 127.0.0.1:30005@40005 slave,fail 07c3 0 0 1 disconnected")
            .unwrap();
        assert!(!r.master && r.failed && r.slots.is_empty());
        assert_eq!(r.master_id.as_deref(), Some("07c3"));
    }
}

//! Test support: `noteflow` as real processes (the service on a port it picks and prints), waits on
//! their output and their exit, and the client the tests check the service with.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use noteflow_client::proto as pb;
use noteflow_client::{Client, ClientConfig, JobEvent, SpeakerRequest};

/// A 150 s meeting: long enough that a run on one thread is still going when the test kills it.
pub const MEETING: &str = "synth/synth-5spk-hard.wav";

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_noteflow"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    command
}

/// Runs `noteflow ARGS` to completion.
pub fn noteflow(args: &[&str]) -> std::process::Output {
    command(args).output().unwrap()
}

/// Runs `noteflow ARGS`, which must exit with `code`; its error output.
pub fn stderr_of(code: i32, args: &[&str]) -> String {
    let out = noteflow(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    stderr
}

/// A `noteflow` process whose output lines arrive, as they come, on channels.
pub struct Running {
    pub child: Child,
    pub stdout: Receiver<String>,
    /// Also echoed to this test's stderr.
    pub stderr: Receiver<String>,
}

/// Starts `noteflow ARGS`.
pub fn spawn_noteflow(args: &[&str]) -> Running {
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("noteflow starts");
    let stdout = lines_of(child.stdout.take().unwrap(), false);
    let stderr = lines_of(child.stderr.take().unwrap(), true);
    Running {
        child,
        stdout,
        stderr,
    }
}

/// The lines of a child's output on a channel, which disconnects once the child closes it.
fn lines_of(output: impl std::io::Read + Send + 'static, echo: bool) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if echo {
                eprintln!("  | {line}");
            }
            let _ = tx.send(line);
        }
    });
    rx
}

/// Reads lines until one satisfies `wanted`; returns the lines read. Panics at `limit`, or when
/// the output ends first.
pub fn read_until(
    lines: &Receiver<String>,
    limit: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let done = wanted(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no wanted line ({e:?}) within {limit:?}; read: {seen:?}"),
        }
    }
}

/// Every line still to come, once the output has been closed (its process ended).
pub fn read_to_end(lines: &Receiver<String>, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(RecvTimeoutError::Disconnected) => return seen,
            Err(RecvTimeoutError::Timeout) => panic!("output still open after {limit:?}: {seen:?}"),
        }
    }
}

/// Waits for the child to exit, woken by the kernel when it does (a pidfd); `None` if it is still
/// running after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    if exited_within(child.id(), limit) {
        Some(child.wait().unwrap())
    } else {
        None
    }
}

/// Whether the process `pid` (a child of this one, not yet reaped) ends within `limit`.
fn exited_within(pid: u32, limit: Duration) -> bool {
    // SAFETY: plain system calls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) as libc::c_int;
        assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + limit;
        let exited = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ready = libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32);
            if ready >= 0 {
                break ready > 0;
            }
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::Interrupted,
                "poll: {error}"
            );
        };
        libc::close(fd);
        exited
    }
}

/// RTTM of the bundled sample: every line names the file, and there are two speakers.
pub fn assert_two_speaker_sample_rttm(rttm: &str) {
    let speakers: std::collections::BTreeSet<&str> = rttm
        .lines()
        .map(|l| l.split_whitespace().nth(7).unwrap())
        .collect();
    assert_eq!(speakers.len(), 2, "{rttm}");
    assert!(rttm
        .lines()
        .all(|l| l.starts_with("SPEAKER pyannote-sample 1 ")));
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `noteflow serve` as a real process.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Its log (stderr), line by line.
    pub log: Receiver<String>,
}

impl Server {
    /// Starts `noteflow serve` on a port it picks, keeping its jobs in `data_dir`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_on("127.0.0.1:0", data_dir, extra)
    }

    /// Starts `noteflow serve --listen ADDR` again (after `kill` or `terminate`), so its clients
    /// find it where it was. Another process may hold the port for a moment: the start is tried
    /// again while the port is taken, for up to a minute.
    pub fn start_on(listen: &str, data_dir: &Path, extra: &[&str]) -> Server {
        let data_dir = data_dir.to_str().unwrap();
        let mut args = vec!["--data-dir", data_dir];
        args.extend_from_slice(extra);
        Self::spawn(listen, &args)
    }

    /// Starts `noteflow serve --listen LISTEN ARGS` (metrics on a port it picks, one engine thread)
    /// and waits for the line saying where it serves.
    pub fn spawn(listen: &str, args: &[&str]) -> Server {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut all = vec![
                "serve",
                "--listen",
                listen,
                "--metrics-listen",
                "127.0.0.1:0",
                "--threads",
                "1",
            ];
            all.extend_from_slice(args);
            let Running {
                mut child,
                stdout,
                stderr,
            } = spawn_noteflow(&all);
            match stdout.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    return Server {
                        addr: serving_address(&line),
                        child,
                        log: stderr,
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("noteflow serve said nothing for 60 s"),
                // It exited without serving.
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_exit(&mut child, Duration::from_secs(10));
                    let log = read_to_end(&stderr, Duration::from_secs(10));
                    let port_taken = log.iter().any(|l| l.contains("cannot listen on"));
                    assert!(
                        port_taken && Instant::now() < deadline,
                        "noteflow serve did not start ({status:?}): {log:?}"
                    );
                }
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of this server with the default settings. Needs a Tokio runtime.
    pub fn client(&self) -> Client {
        Client::new(&self.url(), ClientConfig::default()).unwrap()
    }

    /// SIGKILL: no chance to clean up, exactly like a crash or an OOM kill.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// SIGKILL, then every log line it wrote that was not read yet (its end closes the log).
    pub fn kill_and_read_log(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        read_to_end(&self.log, Duration::from_secs(10))
    }

    /// SIGTERM: the graceful path; the process must exit cleanly and promptly. (Async, so this
    /// test's own connections keep being served while the server closes them.)
    pub async fn terminate(mut self) {
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let pid = self.child.id();
        let limit = Duration::from_secs(20);
        let exited = tokio::task::spawn_blocking(move || exited_within(pid, limit))
            .await
            .unwrap();
        assert!(exited, "no exit within {limit:?} of SIGTERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit after SIGTERM: {status:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gRPC address in `noteflow serve`'s first stdout line ("noteflow serving gRPC on ADDR ...").
pub fn serving_address(line: &str) -> String {
    line.strip_prefix("noteflow serving gRPC on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string()
}

/// An address where nothing listens, held for as long as this lives (bound, not listening: a
/// connection is refused, and no other process can take the port meanwhile).
pub struct NothingListens {
    socket: tokio::net::TcpSocket,
}

impl NothingListens {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        Self { socket }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.socket.local_addr().unwrap())
    }
}

/// Uploads the 150 s meeting and starts a job on it; returns the job id.
pub async fn start_job(server: &Server) -> String {
    let client = server.client();
    let (meeting, _) = client.upload_file(&testdata(MEETING)).await.unwrap();
    client
        .start_job(&meeting, SpeakerRequest::default())
        .await
        .unwrap()
        .job_id
}

/// Follows the job (watch stream, polling if it breaks) until `done` holds for its state.
pub async fn wait_for(
    server: &Server,
    job: &str,
    limit: Duration,
    done: impl Fn(&pb::DiarizationJob) -> bool,
) -> pb::DiarizationJob {
    // Kept while the follow runs: dropping the last client stops its follows.
    let client = server.client();
    let mut handle = client.follow(job);
    let mut seen = Vec::new();
    let waiting = async {
        while let Some(event) = handle.next_event().await {
            if let JobEvent::Progress { job, .. } = &event {
                if done(job) {
                    return Some(job.clone());
                }
            }
            seen.push(event);
        }
        None
    };
    match tokio::time::timeout(limit, waiting).await {
        Ok(Some(job)) => job,
        Ok(None) => panic!("the follow ended before the job reached the expected state: {seen:?}"),
        Err(_) => panic!("the job did not reach the expected state within {limit:?}: {seen:?}"),
    }
}

pub async fn wait_running(server: &Server, job: &str, attempt: u32) -> pb::DiarizationJob {
    wait_for(server, job, Duration::from_secs(60), |job| {
        job.status == pb::JobStatus::Running as i32
            && job.attempt == attempt
            && job.progress_percent > 0.0
    })
    .await
}

pub async fn running_jobs(server: &Server) -> usize {
    server
        .client()
        .list(pb::ListDiarizationJobsRequest {
            status: pb::JobStatus::Running as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs
        .len()
}

/// `noteflow jobs start FILE --server URL --json`, which must succeed; its JSON answer.
pub fn jobs_start(url: &str, file: &Path) -> serde_json::Value {
    let out = noteflow(&[
        "jobs",
        "start",
        file.to_str().unwrap(),
        "--server",
        url,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

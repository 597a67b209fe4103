//! A fake Hugging Face hub on 127.0.0.1 for the hub tests (perplex-hub's
//! downloads, the facade's and the CLI's hub ids): the two endpoints of the
//! hub API perplex uses (`/api/models/{repo}/revision/{rev}` and
//! `/{repo}/resolve/{commit}/{file}`), a separate "CDN" that large files
//! (`.safetensors`, `.gguf`) redirect to (another origin, so the token must
//! not reach it), the hub's relative redirect for a renamed repository
//! ([`RENAMED`]), injectable [`Faults`], and a log of every request
//! ([`FakeHub::requests`]), so a test can tell a cached load from a download.
//!
//! Bounded: loopback only, one request per connection (`Connection: close`),
//! socket timeouts of 5 s, at most 500 connections and 120 s per server, and
//! it stops when dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A repository the fake hub serves.
#[derive(Debug, Clone)]
pub struct FakeRepo {
    /// `org/name`.
    pub name: String,
    /// The commit `main` points to.
    pub sha: String,
    /// Files served, by repository name.
    pub files: Vec<(String, Vec<u8>)>,
    /// Files listed in `siblings` but never expected to be downloaded.
    pub listed_only: Vec<String>,
}

impl FakeRepo {
    /// An empty repository.
    pub fn new(name: &str, sha: &str) -> FakeRepo {
        FakeRepo {
            name: name.into(),
            sha: sha.into(),
            files: vec![],
            listed_only: vec![],
        }
    }

    /// A repository holding every file of `dir` (a fixture folder).
    pub fn from_dir(name: &str, sha: &str, dir: &Path) -> FakeRepo {
        let fail = |path: &Path, e: std::io::Error| -> ! { panic!("{}: {e}", path.display()) };
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| fail(dir, e))
            .map(|e| e.unwrap_or_else(|e| fail(dir, e)).path())
            .filter(|p| p.is_file())
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| fail(&p, e));
                (p.file_name().unwrap().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        files.sort();
        FakeRepo {
            name: name.into(),
            sha: sha.into(),
            files,
            listed_only: vec![],
        }
    }

    /// Adds a file.
    pub fn with_file(mut self, name: &str, bytes: Vec<u8>) -> FakeRepo {
        self.files.push((name.into(), bytes));
        self
    }

    /// Lists a file that must never be requested.
    pub fn listing(mut self, name: &str) -> FakeRepo {
        self.listed_only.push(name.into());
        self
    }
}

/// Which server saw a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The hub endpoint.
    Hub,
    /// The CDN large files redirect to.
    Cdn,
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Which server.
    pub host: Host,
    /// The request target, as sent.
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

/// Misbehaviour to inject.
#[derive(Debug, Default)]
pub struct Faults {
    /// Send this file's full `Content-Length` but only half its bytes, then
    /// close the connection.
    pub truncate: Option<String>,
}

/// The running fake hub.
pub struct FakeHub {
    /// The hub endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Faults to inject, changeable while running.
    pub faults: Arc<Mutex<Faults>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Repositories whose requests redirect (307, relative) to another one, as
/// the hub does for renamed repositories.
pub const RENAMED: (&str, &str) = ("org/renamed", "org/tiny");

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    truncate: bool,
}

impl Reply {
    fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![],
            truncate: false,
        }
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }

    fn body(mut self, body: Vec<u8>) -> Reply {
        self.body = body;
        self
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn is_lfs(name: &str) -> bool {
    name.ends_with(".safetensors") || name.ends_with(".gguf")
}

fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

impl FakeHub {
    /// Starts the hub and its CDN.
    pub fn start(repos: Vec<FakeRepo>) -> FakeHub {
        let hub_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", hub_listener.local_addr().unwrap());
        let cdn = format!("http://{}", cdn_listener.local_addr().unwrap());
        let faults = Arc::new(Mutex::new(Faults::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));

        let repos: HashMap<String, FakeRepo> =
            repos.into_iter().map(|r| (r.name.clone(), r)).collect();
        // CDN content by sha256, with the file name (for faults).
        let blobs: HashMap<String, (String, Vec<u8>)> = repos
            .values()
            .flat_map(|r| r.files.iter())
            .filter(|(n, _)| is_lfs(n))
            .map(|(n, b)| (sha256(b), (n.clone(), b.clone())))
            .collect();

        let hub_faults = faults.clone();
        let hub_handler = move |path: &str| -> Reply {
            hub_reply(&repos, &cdn, &hub_faults.lock().unwrap(), path)
        };
        let cdn_faults = faults.clone();
        let cdn_handler = move |path: &str| -> Reply {
            let sha = path.trim_start_matches("/lfs/").split('?').next().unwrap();
            match blobs.get(sha) {
                Some((name, bytes)) => Reply::new(200)
                    // a CDN's own etag, which must not name the blob
                    .header("ETag", "\"cdn-etag-1\"")
                    .body(bytes.clone())
                    .truncate_if(cdn_faults.lock().unwrap().truncate.as_deref() == Some(name)),
                None => Reply::new(404),
            }
        };
        let threads = vec![
            spawn(
                hub_listener,
                Host::Hub,
                hub_handler,
                log.clone(),
                stop.clone(),
            ),
            spawn(
                cdn_listener,
                Host::Cdn,
                cdn_handler,
                log.clone(),
                stop.clone(),
            ),
        ];
        FakeHub {
            endpoint,
            faults,
            log,
            stop,
            threads,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests so far.
    pub fn request_count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

impl Reply {
    fn truncate_if(mut self, yes: bool) -> Reply {
        self.truncate = yes;
        self
    }
}

fn hub_reply(repos: &HashMap<String, FakeRepo>, cdn: &str, faults: &Faults, path: &str) -> Reply {
    let path = path.split('?').next().unwrap();
    let (old, new) = RENAMED;
    for prefix in [format!("/api/models/{old}/"), format!("/{old}/")] {
        if let Some(rest) = path.strip_prefix(&prefix) {
            let target = prefix.replace(old, new) + rest;
            return Reply::new(307).header("Location", target);
        }
    }
    let not_found = |code: &str, message: &str| {
        Reply::new(if code == "RepoNotFound" { 401 } else { 404 })
            .header("X-Error-Code", code)
            .header("X-Error-Message", message)
    };
    if let Some(rest) = path.strip_prefix("/api/models/") {
        // {org}/{name}/revision/{revision}
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        let [org, name, "revision", revision] = parts.as_slice() else {
            return Reply::new(400);
        };
        let Some(repo) = repos.get(&format!("{org}/{name}")) else {
            return not_found("RepoNotFound", "Repository not found");
        };
        let revision = decode(revision);
        if revision != "main" && revision != repo.sha {
            return not_found("RevisionNotFound", "Invalid rev id");
        }
        let siblings: Vec<serde_json::Value> = repo
            .files
            .iter()
            .map(|(n, _)| n)
            .chain(&repo.listed_only)
            .map(|n| serde_json::json!({ "rfilename": n }))
            .collect();
        let json = serde_json::json!({
            "id": repo.name,
            "sha": repo.sha,
            "private": false,
            "siblings": siblings,
        });
        return Reply::new(200)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&json).unwrap());
    }
    // /{org}/{name}/resolve/{commit}/{file…}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let [org, name, "resolve", commit, file] = parts.as_slice() else {
        return Reply::new(400);
    };
    let Some(repo) = repos.get(&format!("{org}/{name}")) else {
        return not_found("RepoNotFound", "Repository not found");
    };
    if *commit != repo.sha {
        return not_found("RevisionNotFound", "Invalid rev id");
    }
    let file = decode(file);
    let Some((_, bytes)) = repo.files.iter().find(|(n, _)| *n == file) else {
        return not_found("EntryNotFound", "Entry not found");
    };
    let sha = sha256(bytes);
    if is_lfs(&file) {
        Reply::new(302)
            .header(
                "Location",
                format!("{cdn}/lfs/{sha}?X-Amz-Signature=secret"),
            )
            .header("X-Linked-Etag", format!("\"{sha}\""))
            .header("X-Linked-Size", bytes.len().to_string())
            .header("X-Repo-Commit", repo.sha.clone())
            .header("ETag", "\"git-pointer-etag\"")
    } else {
        Reply::new(200)
            // stands in for the git blob hash
            .header("ETag", format!("\"{}\"", &sha[..40]))
            .header("X-Repo-Commit", repo.sha.clone())
            .body(bytes.clone())
            .truncate_if(faults.truncate.as_deref() == Some(file.as_str()))
    }
}

fn spawn(
    listener: TcpListener,
    host: Host,
    handler: impl Fn(&str) -> Reply + Send + 'static,
    log: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut served = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && served < 500 {
            match listener.accept() {
                Ok((stream, _)) => {
                    served += 1;
                    let _ = serve(stream, host, &handler, &log);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => break,
            }
        }
    })
}

fn serve(
    mut stream: TcpStream,
    host: Host,
    handler: &impl Fn(&str) -> Reply,
    log: &Mutex<Vec<Recorded>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() > 16 << 10 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    log.lock().unwrap().push(Recorded {
        host,
        path: path.clone(),
        authorization,
    });

    let reply = handler(&path);
    let reason = match reply.status {
        200 => "OK",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Other",
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    stream.write_all(out.as_bytes())?;
    let body = if reply.truncate {
        &reply.body[..reply.body.len() / 2]
    } else {
        &reply.body[..]
    };
    stream.write_all(body)?;
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET url` (an `http://127.0.0.1:PORT/…` address): the status, the
    /// headers (names lowercased) and the body.
    fn get(url: &str, token: Option<&str>) -> (u16, HashMap<String, String>, Vec<u8>) {
        let rest = url.strip_prefix("http://").unwrap();
        let (addr, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers = lines
            .map(|l| l.split_once(": ").unwrap())
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        (status.parse().unwrap(), headers, raw[split + 4..].to_vec())
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn hub() -> FakeHub {
        FakeHub::start(vec![FakeRepo::new("org/tiny", SHA)
            .with_file("config.json", b"{}".to_vec())
            .with_file("model.safetensors", b"weights".to_vec())
            .listing("README.md")])
    }

    #[test]
    fn lists_a_repository_and_logs_the_request() {
        let hub = hub();
        let url = format!("{}/api/models/org/tiny/revision/main", hub.endpoint);
        let (status, _, body) = get(&url, Some("hf_x"));
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["sha"], SHA);
        let names: Vec<&str> = json["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rfilename"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["config.json", "model.safetensors", "README.md"]);
        let requests = hub.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].host, Host::Hub);
        assert_eq!(requests[0].path, "/api/models/org/tiny/revision/main");
        assert_eq!(requests[0].authorization.as_deref(), Some("Bearer hf_x"));
    }

    #[test]
    fn serves_small_files_and_redirects_large_ones_to_the_cdn() {
        let hub = hub();
        let resolve = |file: &str| format!("{}/org/tiny/resolve/{SHA}/{file}", hub.endpoint);
        let (status, headers, body) = get(&resolve("config.json"), None);
        assert_eq!((status, &body[..]), (200, &b"{}"[..]));
        assert_eq!(headers["x-repo-commit"], SHA);

        let (status, headers, _) = get(&resolve("model.safetensors"), None);
        assert_eq!(status, 302);
        let sha = sha256(b"weights");
        assert_eq!(headers["x-linked-etag"], format!("\"{sha}\""));
        assert_eq!(headers["x-linked-size"], "7");
        let (status, _, body) = get(&headers["location"], None);
        assert_eq!((status, &body[..]), (200, &b"weights"[..]));
        assert_eq!(hub.requests()[2].host, Host::Cdn);

        let (status, headers, _) = get(&resolve("absent.json"), None);
        assert_eq!(
            (status, headers["x-error-code"].as_str()),
            (404, "EntryNotFound")
        );
        let url = format!("{}/api/models/org/nope/revision/main", hub.endpoint);
        let (status, headers, _) = get(&url, None);
        assert_eq!(
            (status, headers["x-error-code"].as_str()),
            (401, "RepoNotFound")
        );
        assert_eq!(hub.request_count(), 5);
    }

    #[test]
    fn truncates_a_file_when_told_to() {
        let hub = hub();
        hub.faults.lock().unwrap().truncate = Some("config.json".into());
        let url = format!("{}/org/tiny/resolve/{SHA}/config.json", hub.endpoint);
        let (status, headers, body) = get(&url, None);
        assert_eq!(status, 200);
        assert_eq!(headers["content-length"], "2");
        assert_eq!(body.len(), 1);
    }

    #[test]
    fn a_dropped_hub_stops_at_once() {
        let hub = hub();
        let start = Instant::now();
        drop(hub);
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}

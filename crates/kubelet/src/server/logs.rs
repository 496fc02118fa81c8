//! `GET /containerLogs/{ns}/{pod}/{container}`: a container's log as `kubectl logs` prints
//! it. The runtime writes each container's output to a file in the CRI log format, one
//! record a line: `<RFC3339Nano time> <stdout|stderr> <F|P> <text>`, where `P` marks a piece
//! of a longer line continued by the next record of that stream. [`Selection`] turns records
//! into what the client asked for (pieces joined into one line, `tailLines`, `sinceSeconds`
//! / `sinceTime`, `timestamps`, `limitBytes`); [`serve`] finds the file as upstream's kubelet
//! does (from the pod's status: the current or `previous` instance) and streams it, and with
//! `follow` keeps reading new lines until the container has exited and the file stopped
//! growing, or the client went away.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::{Body, Failure, Query};
use crate::cri::{api, Cri};
use crate::pods::Kubelet;

/// How often a followed log is read again.
const POLL: Duration = Duration::from_millis(200);
/// How often a followed log with nothing new asks the runtime whether its container runs.
const STATE_CHECK: Duration = Duration::from_secs(1);

/// What the client asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Keep streaming new lines.
    pub follow: bool,
    /// The instance before the current one.
    pub previous: bool,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

impl Options {
    /// Reads the query (`follow`, `previous`, `timestamps`, `tailLines`, `sinceSeconds`,
    /// `sinceTime`, `limitBytes`); `now` anchors `sinceSeconds`.
    pub fn from_query(q: &Query, now: Timestamp) -> Result<Self, Failure> {
        let non_negative = |key: &str| -> Result<Option<u64>, Failure> {
            match q.int(key)? {
                Some(n) if n < 0 => Err(Failure::bad_request(format!(
                    "{key}: must be greater than or equal to 0"
                ))),
                n => Ok(n.map(|n| n.unsigned_abs())),
            }
        };
        let since = match (
            q.get("sinceTime").filter(|s| !s.is_empty()),
            non_negative("sinceSeconds")?,
        ) {
            (Some(t), _) => Some(t.parse::<Timestamp>().map_err(|e| {
                Failure::bad_request(format!("sinceTime: {t:?} is not an RFC 3339 time: {e}"))
            })?),
            (None, Some(secs)) => {
                let secs = i64::try_from(secs).unwrap_or(i64::MAX);
                Some(
                    now.checked_sub(SignedDuration::from_secs(secs))
                        .unwrap_or(Timestamp::MIN),
                )
            }
            (None, None) => None,
        };
        Ok(Options {
            follow: q.flag("follow"),
            previous: q.flag("previous"),
            timestamps: q.flag("timestamps"),
            tail: non_negative("tailLines")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            since,
            limit_bytes: non_negative("limitBytes")?,
        })
    }
}

/// Which output a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One record of a CRI log file.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The time as written (RFC 3339 with nanoseconds).
    pub time: &'a str,
    /// The output.
    pub stream: Stream,
    /// A piece of a longer line (tag `P`).
    pub partial: bool,
    /// The text, without the newline.
    pub content: &'a [u8],
}

/// Parses one record (its trailing newline optional); `None` for a malformed line.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let stream = match fields.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    // Tags are `:`-separated; the first says full or partial.
    let partial = match fields.next()?.split(|b| *b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        partial,
        content: fields.next().unwrap_or(b""),
    })
}

/// One line of output: the pieces of a stream up to a full record, joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The first piece's time, as written.
    pub time: String,
    /// The same, parsed (`None` if it does not parse).
    pub at: Option<Timestamp>,
    /// The text, with its newline when complete.
    pub text: Vec<u8>,
}

/// Selects and renders lines as a log request asks: pieces joined, the last `tail` lines,
/// lines since a time, timestamps, a byte limit. Feed it the file's records with
/// [`push`](Self::push), call [`caught_up`](Self::caught_up) at the end of what the file
/// holds now (what was held back for `tail` goes out; later records go out at once), and
/// [`finish`](Self::finish) when the log has ended.
#[derive(Debug)]
pub struct Selection {
    /// Unfinished lines of stdout and stderr.
    pending: [Option<Line>; 2],
    /// The last lines, while reading what is there before `caught_up` (with `tail`).
    tail: Option<(usize, VecDeque<Line>)>,
    since: Option<Timestamp>,
    timestamps: bool,
    /// Bytes left under `limitBytes`.
    left: Option<u64>,
}

impl Selection {
    /// A selection for `opts`.
    pub fn new(opts: &Options) -> Self {
        Selection {
            pending: [None, None],
            tail: opts.tail.map(|n| (n, VecDeque::new())),
            since: opts.since,
            timestamps: opts.timestamps,
            left: opts.limit_bytes,
        }
    }

    /// Takes one record of the file; returns the bytes to send now.
    pub fn push(&mut self, raw: &[u8]) -> Vec<u8> {
        let Some(r) = parse(raw) else {
            return Vec::new();
        };
        let slot = &mut self.pending[r.stream as usize];
        let line = slot.get_or_insert_with(|| Line {
            time: r.time.to_owned(),
            at: r.time.parse().ok(),
            text: Vec::new(),
        });
        line.text.extend_from_slice(r.content);
        if r.partial {
            return Vec::new();
        }
        line.text.push(b'\n');
        let Some(line) = slot.take() else {
            return Vec::new();
        };
        match &mut self.tail {
            Some((n, kept)) => {
                kept.push_back(line);
                while kept.len() > *n {
                    kept.pop_front();
                }
                Vec::new()
            }
            None => self.render(&line),
        }
    }

    /// The end of what the file holds now: the lines kept for `tail` go out.
    pub fn caught_up(&mut self) -> Vec<u8> {
        let Some((_, kept)) = self.tail.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for line in &kept {
            out.extend(self.render(line));
        }
        out
    }

    /// The end of the log: whatever is held back goes out, unfinished lines as they are.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = self.caught_up();
        let mut rest: Vec<Line> = self.pending.iter_mut().filter_map(Option::take).collect();
        rest.sort_by(|a, b| a.time.cmp(&b.time));
        for line in &rest {
            out.extend(self.render(line));
        }
        out
    }

    /// Whether the byte limit is reached.
    pub fn done(&self) -> bool {
        self.left == Some(0)
    }

    fn render(&mut self, line: &Line) -> Vec<u8> {
        if let (Some(since), Some(at)) = (self.since, line.at) {
            if at < since {
                return Vec::new();
            }
        }
        let mut out = Vec::with_capacity(line.text.len() + 36);
        if self.timestamps {
            out.extend_from_slice(line.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&line.text);
        if let Some(left) = &mut self.left {
            out.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= out.len() as u64;
        }
        out
    }
}

/// What `kubectl logs` prints for a whole log file without following.
pub fn render(log: &[u8], opts: &Options) -> Vec<u8> {
    let mut sel = Selection::new(opts);
    let mut out = Vec::new();
    for line in log.split_inclusive(|b| *b == b'\n') {
        out.extend(sel.push(line));
    }
    out.extend(sel.caught_up());
    out.extend(sel.finish());
    out
}

/// Answers a log request: 200 with the streamed log, or the upstream kubelet's errors.
pub async fn serve(
    k: &Arc<Kubelet>,
    ns: &str,
    pod: &str,
    container: &str,
    q: &Query,
) -> Result<Response<Body>, Failure> {
    let opts = Options::from_query(q, Timestamp::now())?;
    let id = container_id(k, ns, pod, container, opts.previous)?;
    let status = k.cri.container_status(&id).await.map_err(|e| {
        if e.is_not_found() && opts.previous {
            Failure::bad_request(format!(
                "previous terminated container {container:?} in pod {pod:?} not found"
            ))
        } else {
            Failure::internal(format!("container {container:?} in pod {pod:?}: {e}"))
        }
    })?;
    let path = std::path::PathBuf::from(&status.log_path);
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        Failure::internal(format!("failed to open log file {}: {e}", path.display()))
    })?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let follow = opts.follow.then(|| (k.cri.clone(), id));
    tokio::spawn(pump(file, Selection::new(&opts), tx, follow));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(r)
}

/// The runtime id of the instance whose log is asked for, chosen from the pod's status as
/// upstream's kubelet does (`validateContainerLogStatus`), with its messages.
fn container_id(
    k: &Kubelet,
    ns: &str,
    pod_name: &str,
    container: &str,
    previous: bool,
) -> Result<String, Failure> {
    let pod = k
        .pods
        .get_in(ns, pod_name)
        .ok_or_else(|| Failure::not_found(format!("pod {pod_name:?} does not exist")))?;
    choose(&pod, container, previous)
        .map(|id| id.split_once("://").map_or(id, |(_, id)| id).to_owned())
}

/// The container id (`containerd://…`) the log of `container` comes from.
pub fn choose<'p>(pod: &'p Pod, container: &str, previous: bool) -> Result<&'p str, Failure> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let in_spec = pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == container)
            || s.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
            || s.ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
    });
    if !in_spec {
        return Err(Failure::not_found(format!(
            "container {container:?} not found in pod {name:?}"
        )));
    }
    let status: Option<&ContainerStatus> = pod.status.as_ref().and_then(|s| {
        [
            &s.container_statuses,
            &s.init_container_statuses,
            &s.ephemeral_container_statuses,
        ]
        .into_iter()
        .flatten()
        .flatten()
        .find(|c| c.name == container)
    });
    let bad = |what: String| {
        Failure::bad_request(format!("container {container:?} in pod {name:?} {what}"))
    };
    let Some(status) = status else {
        return Err(bad("is not available".into()));
    };
    let id = |s: &'p Option<String>| s.as_deref().filter(|s| !s.is_empty());
    let state = status.state.as_ref();
    let last = status
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref());
    let terminated_id = last.and_then(|t| id(&t.container_id));
    if previous {
        return terminated_id.ok_or_else(|| {
            Failure::bad_request(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            ))
        });
    }
    if state.is_some_and(|s| s.running.is_some()) {
        if let Some(c) = id(&status.container_id) {
            return Ok(c);
        }
    }
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return id(&t.container_id)
            .or(terminated_id)
            .ok_or_else(|| bad("is terminated".into()));
    }
    if last.is_some() {
        return terminated_id.ok_or_else(|| bad("is terminated".into()));
    }
    match state.and_then(|s| s.waiting.as_ref()) {
        Some(w) => Err(bad(match w.reason.as_deref().unwrap_or("") {
            "ErrImagePull" => "is waiting to start: image can't be pulled".into(),
            "ImagePullBackOff" => "is waiting to start: trying and failing to pull image".into(),
            reason => format!("is waiting to start: {reason}"),
        })),
        None => Err(bad("is waiting to start - no logs yet".into())),
    }
}

/// Reads the file into the channel: what is there, then (following) new records every
/// [`POLL`] until the client is gone, or the container has exited (asked at most every
/// [`STATE_CHECK`] while the file is quiet) and a read after that found nothing new.
async fn pump(
    file: tokio::fs::File,
    mut sel: Selection,
    tx: mpsc::Sender<Bytes>,
    follow: Option<(Cri, String)>,
) {
    let mut reader = BufReader::new(file);
    let mut raw = Vec::new();
    if read_available(&mut reader, &mut raw, &mut sel, &tx)
        .await
        .is_none()
        || !send(&tx, sel.caught_up()).await
    {
        return;
    }
    let Some((cri, id)) = follow else {
        let _ = send(&tx, sel.finish()).await;
        return;
    };
    let mut idle_after_exit = 0;
    let mut checked = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = tx.closed() => return,
        }
        match read_available(&mut reader, &mut raw, &mut sel, &tx).await {
            None => return,
            Some(true) => idle_after_exit = 0,
            Some(false) if idle_after_exit > 0 => idle_after_exit += 1,
            Some(false) if checked.elapsed() >= STATE_CHECK => {
                checked = tokio::time::Instant::now();
                if !running(&cri, &id).await {
                    idle_after_exit = 1;
                }
            }
            Some(false) => {}
        }
        if idle_after_exit >= 2 {
            let _ = send(&tx, sel.finish()).await;
            return;
        }
    }
}

/// Reads every complete record the file holds now (an unfinished last line stays in `raw`
/// for the next read). `Some(whether anything was read)`, or `None` to stop: the client is
/// gone, the byte limit is reached, or the file cannot be read.
async fn read_available(
    reader: &mut BufReader<tokio::fs::File>,
    raw: &mut Vec<u8>,
    sel: &mut Selection,
    tx: &mpsc::Sender<Bytes>,
) -> Option<bool> {
    let mut grew = false;
    loop {
        let n = reader.read_until(b'\n', raw).await.ok()?;
        if n == 0 {
            return Some(grew);
        }
        grew = true;
        if raw.ends_with(b"\n") {
            let out = sel.push(raw);
            raw.clear();
            if !send(tx, out).await || sel.done() {
                return None;
            }
        }
    }
}

async fn send(tx: &mpsc::Sender<Bytes>, bytes: Vec<u8>) -> bool {
    bytes.is_empty() || tx.send(Bytes::from(bytes)).await.is_ok()
}

/// Whether the container still runs (a runtime that cannot answer counts as running: the
/// client may still stop the stream).
async fn running(cri: &Cri, id: &str) -> bool {
    match cri.container_status(id).await {
        Ok(s) => s.state != api::ContainerState::ContainerExited as i32,
        Err(e) => !e.is_not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2024-05-01T10:00:00.000000001Z stdout F one
2024-05-01T10:00:01.5Z stdout P tw
2024-05-01T10:00:01.6Z stderr F oops
2024-05-01T10:00:01.7Z stdout F o
2024-05-01T10:00:02Z stdout F
2024-05-01T10:00:03+02:00 stdout F three
2024-05-01T10:00:04Z stdout F four
";

    fn opts() -> Options {
        Options::default()
    }

    fn out(o: &Options) -> String {
        String::from_utf8(render(LOG.as_bytes(), o)).expect("utf-8")
    }

    #[test]
    fn records_parse_with_their_stream_and_tag() {
        let r = parse(b"2024-05-01T10:00:01.5Z stdout P tw\n").expect("parses");
        assert_eq!(
            r,
            Record {
                time: "2024-05-01T10:00:01.5Z",
                stream: Stream::Stdout,
                partial: true,
                content: b"tw"
            }
        );
        let r = parse(b"2024-05-01T10:00:01Z stderr F:x  two  spaces").expect("parses");
        assert_eq!(
            (r.stream, r.partial, r.content),
            (Stream::Stderr, false, &b" two  spaces"[..])
        );
        assert_eq!(
            parse(b"2024-05-01T10:00:01Z stdout F").map(|r| r.content),
            Some(&b""[..])
        );
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"2024-05-01T10:00:01Z stdin F x").is_none());
        assert!(parse(b"2024-05-01T10:00:01Z stdout X x").is_none());
    }

    #[test]
    fn partial_records_join_into_one_line_per_stream() {
        assert_eq!(out(&opts()), "one\noops\ntwo\n\nthree\nfour\n");
    }

    #[test]
    fn timestamps_are_the_first_pieces_as_written() {
        let o = Options {
            timestamps: true,
            ..opts()
        };
        let got = out(&o);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], "2024-05-01T10:00:00.000000001Z one");
        assert_eq!(lines[1], "2024-05-01T10:00:01.6Z oops");
        assert_eq!(lines[2], "2024-05-01T10:00:01.5Z two");
        assert_eq!(lines[4], "2024-05-01T10:00:03+02:00 three");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let tail = |n| {
            out(&Options {
                tail: Some(n),
                ..opts()
            })
        };
        assert_eq!(tail(2), "three\nfour\n");
        assert_eq!(tail(0), "");
        assert_eq!(tail(100), "one\noops\ntwo\n\nthree\nfour\n");
    }

    #[test]
    fn since_compares_instants_across_offsets() {
        let since = |t: &str| {
            out(&Options {
                since: Some(t.parse().expect("time")),
                ..opts()
            })
        };
        // 10:00:03+02:00 is 08:00:03Z, before everything else.
        assert_eq!(since("2024-05-01T10:00:01.6Z"), "oops\n\nfour\n");
        assert_eq!(
            since("2024-05-01T08:00:00Z"),
            "one\noops\ntwo\n\nthree\nfour\n"
        );
        let q = Query::parse(Some("sinceSeconds=10"));
        let now: Timestamp = "2024-05-01T10:00:10Z".parse().expect("time");
        let o = Options::from_query(&q, now).expect("options");
        assert_eq!(o.since, Some("2024-05-01T10:00:00Z".parse().expect("time")));
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        let o = Options {
            limit_bytes: Some(6),
            ..opts()
        };
        assert_eq!(out(&o), "one\noo");
        let mut sel = Selection::new(&o);
        sel.push(b"2024-05-01T10:00:00Z stdout F 123456\n");
        assert!(sel.done());
    }

    #[test]
    fn tail_then_follow_sends_later_lines_at_once() {
        let mut sel = Selection::new(&Options {
            tail: Some(1),
            ..opts()
        });
        assert!(sel.push(b"2024-05-01T10:00:00Z stdout F a\n").is_empty());
        assert!(sel.push(b"2024-05-01T10:00:01Z stdout F b\n").is_empty());
        assert_eq!(sel.caught_up(), b"b\n");
        assert_eq!(sel.push(b"2024-05-01T10:00:02Z stdout F c\n"), b"c\n");
        assert!(sel
            .push(b"2024-05-01T10:00:03Z stdout P unfinished")
            .is_empty());
        assert_eq!(sel.finish(), b"unfinished");
    }

    #[test]
    fn query_options_are_checked() {
        let now = Timestamp::now();
        let q = Query::parse(Some(
            "follow=true&previous=1&timestamps=true&tailLines=5&limitBytes=10&sinceTime=2024-05-01T10:00:00Z",
        ));
        let o = Options::from_query(&q, now).expect("options");
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!((o.tail, o.limit_bytes), (Some(5), Some(10)));
        assert_eq!(o.since, Some("2024-05-01T10:00:00Z".parse().expect("time")));
        for bad in [
            "tailLines=-1",
            "limitBytes=x",
            "sinceTime=yesterday",
            "sinceSeconds=-3",
        ] {
            assert!(
                Options::from_query(&Query::parse(Some(bad)), now).is_err(),
                "{bad}"
            );
        }
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c"}], "initContainers": [{"name": "init"}]},
            "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn the_instance_is_chosen_as_upstream_chooses_it() {
        fn msg(r: Result<&str, Failure>) -> Result<&str, (u16, String)> {
            r.map_err(|f| (f.code.as_u16(), f.message))
        }
        let waiting = pod(serde_json::json!({"containerStatuses": [
            {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(
            msg(choose(&waiting, "c", false)),
            Err((
                400,
                r#"container "c" in pod "p" is waiting to start: ContainerCreating"#.into()
            ))
        );
        assert_eq!(
            msg(choose(&waiting, "c", true)),
            Err((
                400,
                r#"previous terminated container "c" in pod "p" not found"#.into()
            ))
        );
        assert_eq!(
            msg(choose(&waiting, "init", false)),
            Err((
                400,
                r#"container "init" in pod "p" is not available"#.into()
            ))
        );
        assert_eq!(
            msg(choose(&waiting, "x", false)),
            Err((404, r#"container "x" not found in pod "p""#.into()))
        );
        let restarted = pod(serde_json::json!({"containerStatuses": [
            {"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
             "containerID": "containerd://two",
             "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://one"}}}]}));
        assert_eq!(msg(choose(&restarted, "c", false)), Ok("containerd://two"));
        assert_eq!(msg(choose(&restarted, "c", true)), Ok("containerd://one"));
        let backing_off = pod(serde_json::json!({"containerStatuses": [
            {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
             "containerID": "containerd://two",
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://two"}}}]}));
        assert_eq!(
            msg(choose(&backing_off, "c", false)),
            Ok("containerd://two")
        );
    }
}

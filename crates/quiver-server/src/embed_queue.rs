//! Micro-batching of text embeddings. For a short query the transformer is bound by reading its
//! weights (88 MB of f32 per forward pass), not by arithmetic, so embedding 8 queries in one pass
//! costs little more than embedding one: on 2 cores, 14-token texts run at 132/s one at a time,
//! 367/s in batches of 8 and 478/s in batches of 16 (`quiver bench embed --batch N`).
//!
//! Requests that carry documents queue their texts here; one dispatcher thread embeds them in
//! passes of at most [`TEXTS_MAX`] texts and [`PASS_BYTES`] of text, each pass using every core. A pass takes texts from
//! the queued jobs in order (all of one model), at most what each has left: at low load a job
//! finds the queue empty and runs at once, alone; under load the queue fills while a pass runs
//! and the next pass takes it all. A job larger than a pass is embedded a pass at a time and goes
//! to the back of the queue after each, behind the jobs that arrived meanwhile, and never shares
//! a pass with jobs not yet started: a search query waits for the pass in flight and then a short
//! pass of new jobs, not for a whole bulk upload of documents. No timers: batching comes from the
//! queue.

use crate::api::ApiError;
use axum::http::StatusCode;
use quiver_embed::{Embedder, MiniLm};
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;

/// The most texts one pass embeds (a larger job is split into passes).
pub const TEXTS_MAX: usize = 64;

/// The most bytes of text one pass takes (after its first text), each text counted up to
/// [`TEXT_BYTES_MAX`]: about 2,000 tokens, a third of a second on 2 Zen 3 cores, so that a query
/// behind a pass of long passages does not wait long. Paragraphs embed as fast in passes of 8
/// as of 64 (`quiver bench embed --batch`, 43-46 texts/s); 64 short queries stay one pass.
pub const PASS_BYTES: usize = 8192;

/// A text's bytes beyond this do not count against [`PASS_BYTES`]: the model reads at most 256
/// tokens, about 1 KB of English.
const TEXT_BYTES_MAX: usize = 1024;

type Reply = Result<Vec<Vec<f32>>, String>;

struct Job {
    model: Arc<MiniLm>,
    texts: Vec<String>,
    reply: mpsc::Sender<Reply>,
}

/// The queue handle kept in the server state.
pub struct EmbedQueue {
    tx: mpsc::Sender<Job>,
}

impl EmbedQueue {
    /// Starts the dispatcher thread; it ends when the queue is dropped.
    pub fn start() -> EmbedQueue {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("quiver-embed".into())
            .spawn(move || dispatch(rx))
            .expect("spawning the embedding dispatcher thread");
        EmbedQueue { tx }
    }

    /// Embeds `texts` with `model`, in order, possibly in passes shared with other requests'
    /// texts. Blocks: call it from a blocking thread, not from the async runtime. A text the
    /// model refuses is a bad request (400).
    pub fn embed(&self, model: Arc<MiniLm>, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ApiError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Job { model, texts, reply })
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the embedder is shutting down"))?;
        let result = answer
            .recv()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the embedding dispatcher stopped"))?;
        result.map_err(ApiError::bad)
    }
}

/// A queued job and the vectors of its first texts, embedded by earlier passes.
struct Pending {
    job: Job,
    vectors: Vec<Vec<f32>>,
}

impl Pending {
    fn new(job: Job) -> Pending {
        Pending { job, vectors: Vec::new() }
    }

    /// The texts not embedded yet.
    fn left(&self) -> &[String] {
        &self.job.texts[self.vectors.len()..]
    }
}

fn dispatch(rx: mpsc::Receiver<Job>) {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(j) => queue.push_back(Pending::new(j)),
                Err(_) => return,
            }
        }
        queue.extend(rx.try_iter().map(Pending::new));
        let pass = plan(&queue);
        let unfinished = run(&mut queue, &pass);
        // Jobs that arrived during the pass go before the ones it left unfinished.
        queue.extend(rx.try_iter().map(Pending::new));
        queue.extend(unfinished);
    }
}

/// The next pass: `(queue index, texts)` for the jobs of the front job's model, in queue order,
/// each giving what it has left until [`TEXTS_MAX`] texts are taken (a job with no texts is
/// answered by the pass it is in). Jobs not yet started and jobs part done do not share a pass:
/// a query that arrived during a bulk upload's pass gets the next pass to itself (and the other
/// new jobs), a short one, rather than a full pass beside the upload's next texts.
fn plan(queue: &VecDeque<Pending>) -> Vec<(usize, usize)> {
    let Some(front) = queue.front() else {
        return Vec::new();
    };
    let (mut room, mut bytes) = (TEXTS_MAX, 0usize);
    let mut pass = Vec::new();
    for (i, p) in queue.iter().enumerate() {
        if room == 0 || bytes >= PASS_BYTES {
            break;
        }
        if Arc::ptr_eq(&p.job.model, &front.job.model) && p.vectors.is_empty() == front.vectors.is_empty() {
            let mut n = 0;
            for t in p.left().iter().take(room) {
                let cost = t.len().min(TEXT_BYTES_MAX);
                // The first text of a pass always goes in, whatever its length.
                if bytes > 0 && bytes + cost > PASS_BYTES {
                    break;
                }
                bytes += cost;
                n += 1;
            }
            // A job with no texts left is answered by this pass; one that did not fit waits.
            if n > 0 || p.left().is_empty() {
                pass.push((i, n));
                room -= n;
            }
        }
    }
    pass
}

/// Embeds one pass, answers the jobs it finishes (or that fail), and takes the others of the
/// pass out of the queue, in order, for the caller to put back at the end.
fn run(queue: &mut VecDeque<Pending>, pass: &[(usize, usize)]) -> Vec<Pending> {
    let mut failed = vec![None; pass.len()];
    let texts: Vec<&str> = pass
        .iter()
        .flat_map(|&(i, n)| queue[i].left()[..n].iter().map(String::as_str))
        .collect();
    let model = match pass.first() {
        Some(&(i, _)) => queue[i].job.model.clone(),
        None => return Vec::new(),
    };
    match model.embed(&texts) {
        Ok(vectors) => {
            let mut vectors = vectors.into_iter();
            for &(i, n) in pass {
                queue[i].vectors.extend(vectors.by_ref().take(n));
            }
        }
        // One bad text must not fail the other requests of the pass: each job's part alone.
        Err(_) => {
            for (k, &(i, n)) in pass.iter().enumerate() {
                let part: Vec<&str> = queue[i].left()[..n].iter().map(String::as_str).collect();
                match model.embed(&part) {
                    Ok(v) => queue[i].vectors.extend(v),
                    Err(e) => failed[k] = Some(e.to_string()),
                }
            }
        }
    }
    let mut unfinished = Vec::new();
    for (k, &(i, _)) in pass.iter().enumerate().rev() {
        let p = queue.remove(i).expect("a planned job is queued");
        match failed[k].take() {
            Some(e) => {
                let _ = p.job.reply.send(Err(e));
            }
            None if p.left().is_empty() => {
                let _ = p.job.reply.send(Ok(p.vectors));
            }
            None => unfinished.push(p),
        }
    }
    unfinished.reverse();
    unfinished
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    }

    /// Jobs queued before the dispatcher runs are embedded together (one pass up to TEXTS_MAX,
    /// a larger job alone) and every job gets its own vectors back, in order, equal to embedding
    /// its texts alone.
    #[test]
    fn batched_jobs_get_their_own_vectors_in_order() {
        let dir = quiver_embed::find_model(None).unwrap_or_else(|e| panic!("{e}"));
        let model = Arc::new(MiniLm::load(&dir).unwrap());
        let jobs: Vec<Vec<String>> = vec![
            vec!["how do I reset my password".into()],
            vec!["kyoto temples".into(), "".into(), "a write-ahead log makes writes durable".into()],
            (0..70).map(|i| format!("text number {i} about vectors")).collect(),
            vec![],
            vec!["cats sleep in the sun".into()],
        ];
        let (tx, rx) = mpsc::channel();
        let mut answers = Vec::new();
        for texts in &jobs {
            let (reply, answer) = mpsc::channel();
            tx.send(Job {
                model: model.clone(),
                texts: texts.clone(),
                reply,
            })
            .unwrap();
            answers.push(answer);
        }
        drop(tx);
        dispatch(rx);
        for (texts, answer) in jobs.iter().zip(answers) {
            let got = answer.recv().unwrap().unwrap();
            assert_eq!(got.len(), texts.len());
            for (t, v) in texts.iter().zip(&got) {
                // Alone, a short text may take the bfloat16 small-batch path: about 1e-5 apart.
                // A mix-up of jobs or order would be far below this.
                let alone = model.embed(&[t.as_str()]).unwrap().remove(0);
                assert!(cosine(v, &alone) > 0.9999, "{t:?}");
            }
        }
    }

    /// A job larger than a pass is split, and a small job queued behind it is answered first:
    /// after the large job's first pass (64 texts) it goes behind the small one, which gets the
    /// second pass. Both share one reply channel, so the order of the replies is
    /// the order the dispatcher answered them in. Every job still gets its own vectors, equal to
    /// embedding its texts in passes of its own.
    #[test]
    fn a_small_job_is_not_held_behind_a_large_one() {
        let dir = quiver_embed::find_model(None).unwrap_or_else(|e| panic!("{e}"));
        let model = Arc::new(MiniLm::load(&dir).unwrap());
        let large: Vec<String> = (0..150)
            .map(|i| format!("passage {i} of a long document about vector search"))
            .collect();
        let small = vec!["where is the nearest train station".to_string()];
        let (tx, rx) = mpsc::channel();
        let (reply, answers) = mpsc::channel();
        for texts in [&large, &small] {
            tx.send(Job {
                model: model.clone(),
                texts: texts.clone(),
                reply: reply.clone(),
            })
            .unwrap();
        }
        drop(tx);
        dispatch(rx);
        let first = answers.recv().unwrap().unwrap();
        let second = answers.recv().unwrap().unwrap();
        assert_eq!((first.len(), second.len()), (1, 150), "the small job is answered first");
        let refs: Vec<&str> = large.iter().map(String::as_str).collect();
        let mut want = Vec::new();
        for chunk in refs.chunks(TEXTS_MAX) {
            want.extend(model.embed(chunk).unwrap());
        }
        for (i, (g, w)) in second.iter().zip(&want).enumerate() {
            assert!(cosine(g, w) > 0.9999, "text {i}");
        }
        assert!(cosine(&first[0], &model.embed(&[small[0].as_str()]).unwrap()[0]) > 0.9999);
    }

    /// The plan of a pass: the front job's model only, queue order, at most what each job has
    /// left, and no more than TEXTS_MAX texts in all.
    #[test]
    fn a_pass_takes_the_front_models_jobs_in_order_up_to_the_limit() {
        let dir = quiver_embed::find_model(None).unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (Arc::new(MiniLm::load(&dir).unwrap()), Arc::new(MiniLm::load(&dir).unwrap()));
        let job = |model: &Arc<MiniLm>, n: usize| {
            Pending::new(Job {
                model: model.clone(),
                texts: vec!["x".to_string(); n],
                reply: mpsc::channel().0,
            })
        };
        let queue: VecDeque<Pending> = [job(&a, 10), job(&b, 5), job(&a, 0), job(&a, 100), job(&a, 3)].into();
        assert_eq!(plan(&queue), vec![(0, 10), (2, 0), (3, 54)]);
        let mut queue = queue;
        queue[0].vectors = vec![vec![]; 4];
        assert_eq!(plan(&queue), vec![(0, 6)], "only what is left, and no new job beside a started one");
        let started = queue.pop_front().unwrap();
        let queue: VecDeque<Pending> = [job(&a, 1), started, job(&a, 2)].into();
        assert_eq!(plan(&queue), vec![(0, 1), (2, 2)], "new jobs without the started one");
        assert!(plan(&VecDeque::new()).is_empty());
        // Long texts: a pass stops at PASS_BYTES (each text counted up to 1 KB); its first text
        // always goes in.
        let long = |n: usize, len: usize| {
            Pending::new(Job {
                model: a.clone(),
                texts: vec!["y".repeat(len); n],
                reply: mpsc::channel().0,
            })
        };
        let queue: VecDeque<Pending> = [long(20, 1000), long(3, 10)].into();
        assert_eq!(
            plan(&queue),
            vec![(0, 8), (1, 3)],
            "the ninth long text does not fit; short ones do"
        );
        let queue: VecDeque<Pending> = [long(2, 100_000), long(1, 10)].into();
        assert_eq!(plan(&queue), vec![(0, 2), (1, 1)], "a text counts as 1 KB at most");
        let queue: VecDeque<Pending> = [long(8, 1000), long(1, 500)].into();
        assert_eq!(plan(&queue), vec![(0, 8)], "the last text would pass the budget");
    }
}

//! Micro-batching of text embeddings. For a short query the transformer is bound by reading its
//! weights (88 MB of f32 per forward pass), not by arithmetic, so embedding 8 queries in one pass
//! costs little more than embedding one: on 2 cores, 14-token texts run at 132/s one at a time,
//! 367/s in batches of 8 and 478/s in batches of 16 (`quiver bench embed --batch N`).
//!
//! Requests that carry documents queue their texts here; one dispatcher thread takes every job
//! waiting (up to [`TEXTS_MAX`] texts) and embeds them in one pass, which itself uses every core.
//! At low load a job finds the queue empty and runs at once, alone; under load the queue fills
//! while a pass runs and the next pass takes it all. No timers: batching comes from the queue.

use crate::api::ApiError;
use axum::http::StatusCode;
use quiver_embed::{Embedder, MiniLm};
use std::sync::mpsc;
use std::sync::Arc;

/// The most texts one pass takes from several jobs (a single larger job still runs whole).
pub const TEXTS_MAX: usize = 64;

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

    /// Embeds `texts` with `model`, in order, possibly in one pass with other requests' texts.
    /// Blocks: call it from a blocking thread, not from the async runtime. A text the model
    /// refuses is a bad request (400).
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

fn dispatch(rx: mpsc::Receiver<Job>) {
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let mut texts = first.texts.len();
        let mut jobs = vec![first];
        while texts < TEXTS_MAX {
            match rx.try_recv() {
                Ok(j) if texts + j.texts.len() <= TEXTS_MAX && Arc::ptr_eq(&j.model, &jobs[0].model) => {
                    texts += j.texts.len();
                    jobs.push(j);
                }
                // Too large for this pass (or another model): it starts the next one.
                Ok(j) => {
                    held = Some(j);
                    break;
                }
                Err(_) => break,
            }
        }
        run(jobs);
    }
}

fn embed_one(job: &Job) -> Reply {
    let refs: Vec<&str> = job.texts.iter().map(String::as_str).collect();
    job.model.embed(&refs).map_err(|e| e.to_string())
}

fn run(jobs: Vec<Job>) {
    if jobs.len() == 1 {
        let _ = jobs[0].reply.send(embed_one(&jobs[0]));
        return;
    }
    let all: Vec<&str> = jobs.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
    match jobs[0].model.embed(&all) {
        Ok(mut vectors) => {
            for j in &jobs {
                let rest = vectors.split_off(j.texts.len());
                let _ = j.reply.send(Ok(std::mem::replace(&mut vectors, rest)));
            }
        }
        // One bad text must not fail the other requests of the pass: each job alone.
        Err(_) => {
            for j in &jobs {
                let _ = j.reply.send(embed_one(j));
            }
        }
    }
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
}

//! A map of the vectors: a sample of a dense space projected onto its two principal axes (PCA),
//! with a query's position and its nearest neighbours on the same axes. The dashboard draws it.
//!
//! Nothing here reads the whole collection: without a filter the sample is drawn by random row
//! numbers (a few probes per point kept), with one it walks the filter's allowed rows (its
//! payload index when there is one). The sample is seeded, so the same collection gives the
//! same map until it changes. The axes come from power iteration on the sample's covariance,
//! never formed (each step is two passes over the sample), in double precision.

use super::query::Rng;
use super::*;

/// The largest sample a map draws (a page must stay light).
pub const MAP_SAMPLE_MAX: usize = 5_000;

/// One point on the map.
#[derive(Clone, Debug, PartialEq)]
pub struct MapPoint {
    /// The point's id.
    pub id: PointId,
    /// Its coordinates on the two principal axes of the sample.
    pub xy: [f32; 2],
    /// Its payload, when asked for.
    pub payload: Option<Payload>,
    /// Its score against the query (neighbours only).
    pub score: Option<f32>,
}

/// What [`Collection::vector_map`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorMap {
    /// The sample, in id order.
    pub points: Vec<MapPoint>,
    /// The query's position, when a query was given.
    pub query: Option<[f32; 2]>,
    /// The query's nearest points (found by the collection's search, best first), placed on the
    /// same axes; they need not be in the sample.
    pub neighbours: Vec<MapPoint>,
    /// The share of the sample's variance along each axis (0 to 1).
    pub explained: [f32; 2],
    /// Points holding the vector that the sample was drawn from (under the filter, if any).
    pub population: usize,
    /// The vector space drawn.
    pub using: String,
}

/// What to draw.
#[derive(Clone, Debug, Default)]
pub struct MapRequest {
    /// Points to sample (1..=[`MAP_SAMPLE_MAX`]).
    pub sample: usize,
    /// Only points matching it are drawn (and searched for the query).
    pub filter: Option<Filter>,
    /// The dense space (the main vector by default).
    pub using: Option<String>,
    /// A query vector to place on the map with its `limit` nearest points.
    pub query: Option<Vec<f32>>,
    /// The query's neighbours to place.
    pub limit: usize,
    /// Return each point's payload (for hovering and colouring).
    pub with_payload: bool,
    /// The sample's seed (the same seed, the same sample).
    pub seed: u64,
}

impl Collection {
    /// Samples a dense space and projects it onto its two principal axes.
    pub fn vector_map(&self, req: &MapRequest) -> Result<VectorMap> {
        if req.sample == 0 || req.sample > MAP_SAMPLE_MAX {
            return Err(Error::InvalidRequest(format!(
                "sample must be 1..={MAP_SAMPLE_MAX}, got {}",
                req.sample
            )));
        }
        let (using, dim, metric, main) = self.dense_space(req.using.as_deref())?;
        if let Some(q) = &req.query {
            if q.len() != dim {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    got: q.len(),
                    point: None,
                });
            }
        }
        let neighbours = match &req.query {
            Some(q) if req.limit > 0 => {
                let mut s = SearchRequest::new(q.clone(), req.limit);
                s.filter = req.filter.clone();
                s.with_payload = req.with_payload;
                if main {
                    self.search(&s)?
                } else {
                    self.search_named(&using, &crate::vector_model::QueryVector::Dense(q.clone()), &s)?
                }
            }
            _ => Vec::new(),
        };
        let st = self.inner.state.read();
        let vector_of = |r: u32| -> Option<&[f32]> {
            if main {
                st.is_searchable(r).then(|| st.vector(r))
            } else {
                match st.named_at(r).and_then(|m| m.get(&using)) {
                    Some(crate::vector_model::VectorData::Dense(v)) => Some(v.as_slice()),
                    _ => None,
                }
            }
        };
        let (mut rows, population) = sample_rows(&st, req, main, &vector_of);
        rows.sort_unstable_by_key(|&r| st.id_at(r as usize));
        let sample: Vec<&[f32]> = rows.iter().filter_map(|&r| vector_of(r)).collect();
        // Cosine spaces are compared by angle: draw the directions.
        let unit = |v: &[f32]| -> Vec<f64> {
            let n = if metric == Metric::Cosine {
                v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt().max(f64::MIN_POSITIVE)
            } else {
                1.0
            };
            v.iter().map(|x| *x as f64 / n).collect()
        };
        let data: Vec<Vec<f64>> = sample.iter().map(|v| unit(v)).collect();
        let pca = Pca::fit(&data, dim, req.seed);
        let place = |v: &[f32]| pca.project(&unit(v));
        let points = rows
            .iter()
            .zip(&data)
            .map(|(&r, v)| MapPoint {
                id: st.id_at(r as usize),
                xy: pca.project(v),
                payload: req
                    .with_payload
                    .then(|| st.payload_at(r as usize).map(|p| p.into_owned()).unwrap_or_default()),
                score: None,
            })
            .collect();
        let neighbours = neighbours
            .into_iter()
            .filter_map(|h| {
                let r = st.row_of(&h.id)?;
                Some(MapPoint {
                    id: h.id,
                    xy: place(vector_of(r)?),
                    payload: h.payload,
                    score: Some(h.score),
                })
            })
            .collect();
        Ok(VectorMap {
            points,
            query: req.query.as_deref().map(place),
            neighbours,
            explained: pca.explained,
            population,
            using,
        })
    }
}

/// Rows to draw and the number of rows they were drawn from.
fn sample_rows<'a>(st: &'a State, req: &MapRequest, main: bool, vector_of: &dyn Fn(u32) -> Option<&'a [f32]>) -> (Vec<u32>, usize) {
    let mut rng = Rng::with_seed(req.seed);
    let n = st.n_rows();
    if req.filter.is_none() {
        let population = if main {
            st.n_searchable()
        } else {
            st.count_vector(req.using.as_deref().unwrap_or_default())
        };
        // Few holes and a small sample: probe random rows (a few tries a point), never a scan.
        if n > 0 && population.saturating_mul(4) >= n && n > req.sample.saturating_mul(4) {
            let mut picked = std::collections::HashSet::with_capacity(req.sample);
            let mut rows = Vec::with_capacity(req.sample);
            let tries = req.sample.min(population).saturating_mul(16);
            for _ in 0..tries {
                if rows.len() == req.sample.min(population) {
                    break;
                }
                let r = rng.below(n as u64) as u32;
                if vector_of(r).is_some() && picked.insert(r) {
                    rows.push(r);
                }
            }
            return (rows, population);
        }
    }
    // Reservoir sampling over the allowed rows that hold the vector.
    let plan = if main {
        st.search_plan(req.filter.as_ref())
    } else {
        st.plan(req.filter.as_ref())
    };
    let mut rows: Vec<u32> = Vec::with_capacity(req.sample.min(n));
    let mut seen = 0u64;
    quiver_kernels::scan::for_each_allowed(plan.allowed(st), n, |r| {
        if vector_of(r).is_none() {
            return;
        }
        seen += 1;
        if rows.len() < req.sample {
            rows.push(r);
        } else {
            let j = rng.below(seen) as usize;
            if j < req.sample {
                rows[j] = r;
            }
        }
    });
    (rows, seen as usize)
}

/// The two principal axes of a sample.
#[derive(Debug)]
struct Pca {
    mean: Vec<f64>,
    axes: [Vec<f64>; 2],
    explained: [f32; 2],
}

/// Power-iteration steps per axis (converged far earlier on real data; the cost is 2 passes
/// over at most 5,000 rows a step).
const POWER_STEPS: usize = 60;

impl Pca {
    fn fit(data: &[Vec<f64>], dim: usize, seed: u64) -> Pca {
        let n = data.len().max(1) as f64;
        let mut mean = vec![0.0; dim];
        for v in data {
            for (m, x) in mean.iter_mut().zip(v) {
                *m += x;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let centred: Vec<Vec<f64>> = data.iter().map(|v| v.iter().zip(&mean).map(|(x, m)| x - m).collect()).collect();
        let energy: f64 = data.iter().flatten().map(|x| x * x).sum();
        let mut total: f64 = centred.iter().flatten().map(|x| x * x).sum();
        // Rounding noise of the mean is not spread: identical points map to the origin.
        if total <= energy * 1e-24 {
            total = 0.0;
        }
        let mut rng = Rng::with_seed(seed ^ 0x5043_4131);
        let mut axes: [Vec<f64>; 2] = [vec![0.0; dim], vec![0.0; dim]];
        let mut variance = [0.0f64; 2];
        for k in 0..if total > 0.0 { 2 } else { 0 } {
            let mut v: Vec<f64> = (0..dim).map(|_| rng.below(2001) as f64 / 1000.0 - 1.0).collect();
            for step in 0..POWER_STEPS {
                // w = C v, C the covariance: sum over rows of (x . v) x.
                let mut w = vec![0.0; dim];
                for x in &centred {
                    let d: f64 = x.iter().zip(&v).map(|(a, b)| a * b).sum();
                    for (wi, xi) in w.iter_mut().zip(x) {
                        *wi += d * xi;
                    }
                }
                // Deflate: stay orthogonal to the axes found already.
                for prev in axes.iter().take(k) {
                    let d: f64 = w.iter().zip(prev).map(|(a, b)| a * b).sum();
                    for (wi, pi) in w.iter_mut().zip(prev) {
                        *wi -= d * pi;
                    }
                }
                let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm < 1e-300 {
                    // No variance left in this direction: any unit vector orthogonal will do.
                    break;
                }
                v = w.iter().map(|x| x / norm).collect();
                if step + 1 == POWER_STEPS {
                    variance[k] = norm;
                }
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
            axes[k] = v.iter().map(|x| x / norm).collect();
        }
        let explained = variance.map(|s| if total > 0.0 { (s / total).clamp(0.0, 1.0) as f32 } else { 0.0 });
        Pca { mean, axes, explained }
    }

    fn project(&self, v: &[f64]) -> [f32; 2] {
        let along = |axis: &[f64]| v.iter().zip(&self.mean).zip(axis).map(|((x, m), a)| (x - m) * a).sum::<f64>() as f32;
        [along(&self.axes[0]), along(&self.axes[1])]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points spread along two known directions: the axes found are those directions (up to
    /// sign), in order of spread, and the variance shares match.
    #[test]
    fn finds_the_axes_of_known_spread() {
        let dim = 6;
        let mut data = Vec::new();
        let mut rng = Rng::with_seed(7);
        for _ in 0..2000 {
            let a = rng.below(20001) as f64 / 1000.0 - 10.0; // spread 10 along e0 + e1
            let b = rng.below(2001) as f64 / 1000.0 - 1.0; // spread 1 along e3
            let mut v = vec![0.0; dim];
            v[0] = a / 2f64.sqrt() + 5.0;
            v[1] = a / 2f64.sqrt();
            v[3] = b;
            data.push(v);
        }
        let pca = Pca::fit(&data, dim, 1);
        let e01 = [1.0 / 2f64.sqrt(), 1.0 / 2f64.sqrt(), 0.0, 0.0, 0.0, 0.0];
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        assert!(dot(&pca.axes[0], &e01).abs() > 0.999, "{:?}", pca.axes[0]);
        assert!(pca.axes[1][3].abs() > 0.999, "{:?}", pca.axes[1]);
        // Variance ratio 100:1 (uniform spreads 10 and 1).
        assert!((pca.explained[0] - 100.0 / 101.0).abs() < 0.01, "{:?}", pca.explained);
        assert!((pca.explained[1] - 1.0 / 101.0).abs() < 0.01, "{:?}", pca.explained);
        // The mean lands at the origin.
        let centre = pca.project(&pca.mean.clone());
        assert!(centre[0].abs() < 1e-9 && centre[1].abs() < 1e-9);
    }

    fn collection(dir: &Path, n: u64) -> Collection {
        let db = crate::Database::open(dir).unwrap();
        let c = db.create_collection("m", CollectionConfig::new(8, Metric::Cosine)).unwrap();
        let mut rng = Rng::with_seed(3);
        let points = (0..n)
            .map(|i| {
                let v: Vec<f32> = (0..8).map(|_| rng.below(1000) as f32 / 100.0 - 5.0).collect();
                let p: Payload = serde_json::json!({"group": i % 3}).as_object().unwrap().clone();
                Point::new(i, v).with_payload(p)
            })
            .collect();
        c.upsert(points).unwrap();
        c
    }

    /// The map of a real collection: as many points as asked, distinct and stored, the same
    /// sample for the same seed, the filter obeyed, and the query's neighbours those the
    /// search returns, placed where their own vectors project.
    #[test]
    fn maps_a_collection() {
        let dir = tempfile::tempdir().unwrap();
        let c = collection(dir.path(), 3000);
        let mut req = MapRequest {
            sample: 500,
            with_payload: true,
            seed: 9,
            ..MapRequest::default()
        };
        let m = c.vector_map(&req).unwrap();
        assert_eq!(m.points.len(), 500);
        assert_eq!(m.population, 3000);
        let ids: std::collections::BTreeSet<_> = m.points.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), 500);
        assert!(m.explained[0] >= m.explained[1] && m.explained[0] + m.explained[1] <= 1.0);
        assert_eq!(c.vector_map(&req).unwrap(), m, "same seed, same map");
        // A filter: only its points, drawn from its population.
        req.filter = Some(Filter::from_json(&serde_json::json!({"must": [{"key": "group", "match": {"value": 1}}]})).unwrap());
        let f = c.vector_map(&req).unwrap();
        assert_eq!(f.population, 1000);
        assert!(f.points.iter().all(|p| p.payload.as_ref().unwrap()["group"] == 1));
        // A query and its neighbours.
        req.filter = None;
        let q = vec![1.0, 0.5, -2.0, 0.0, 3.0, 1.0, -1.0, 0.25];
        req.query = Some(q.clone());
        req.limit = 5;
        let m = c.vector_map(&req).unwrap();
        let hits = c.search(&SearchRequest::new(q, 5)).unwrap();
        assert_eq!(
            m.neighbours.iter().map(|p| p.id).collect::<Vec<_>>(),
            hits.iter().map(|h| h.id).collect::<Vec<_>>()
        );
        for n in &m.neighbours {
            if let Some(same) = m.points.iter().find(|p| p.id == n.id) {
                assert_eq!(same.xy, n.xy);
            }
        }
        assert!(m.query.is_some());
        // Bad requests are refused with a reason.
        req.sample = MAP_SAMPLE_MAX + 1;
        assert!(c.vector_map(&req).unwrap_err().to_string().contains("sample"));
        req.sample = 10;
        req.query = Some(vec![1.0; 3]);
        assert!(matches!(c.vector_map(&req), Err(Error::DimensionMismatch { .. })));
    }

    #[test]
    fn a_sample_with_no_spread_maps_to_the_origin() {
        let data = vec![vec![1.0, 2.0, 3.0]; 10];
        let pca = Pca::fit(&data, 3, 0);
        assert_eq!(pca.explained, [0.0, 0.0]);
        assert_eq!(pca.project(&data[0]), [0.0, 0.0]);
    }
}

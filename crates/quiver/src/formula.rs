//! Score-boosting formulas (Qdrant's `formula` query): an expression over the prefetches'
//! scores (`$score`, `$score[i]`), payload numbers, conditions (1 when a point matches, else
//! 0), arithmetic, geo distances, datetimes and decay functions, evaluated per candidate in
//! double precision. Missing payload values take the query's `defaults`; a missing score is 0.
//! A result that is not a finite number is an error naming the expression, as in Qdrant.

use crate::error::{Error, Result};
use crate::filter::{Filter, KeyPath};
use crate::geo::GeoPoint;
use crate::types::{Payload, PointId};
use serde_json::{Map, Value};

/// The decay functions' shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecayKind {
    /// `max(0, 1 - lambda |x - target|)`, lambda = (1 - midpoint) / scale.
    Lin,
    /// `exp(lambda |x - target|)`, lambda = ln(midpoint) / scale.
    Exp,
    /// `exp(lambda (x - target)^2)`, lambda = ln(midpoint) / scale^2.
    Gauss,
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number.
    Const(f64),
    /// The score of the point in prefetch `i` (`$score` is `$score[0]`).
    Score(usize),
    /// A number in the payload (or the default for its key).
    Var(String, KeyPath),
    /// 1 when the point matches, else 0.
    Condition(Box<Filter>),
    /// Metres from `origin` to the location at the key.
    GeoDistance(GeoPoint, String, KeyPath),
    /// A datetime constant, in seconds since the epoch.
    Datetime(f64),
    /// A datetime in the payload, in seconds since the epoch.
    DatetimeKey(String, KeyPath),
    /// Product (0 as soon as a factor is 0).
    Mult(Vec<Expr>),
    /// Sum.
    Sum(Vec<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// `|x|`.
    Abs(Box<Expr>),
    /// `left / right`; `by_zero_default` when `right` is 0.
    Div(Box<Expr>, Box<Expr>, Option<f64>),
    /// `sqrt(x)`.
    Sqrt(Box<Expr>),
    /// `base ^ exponent`.
    Pow(Box<Expr>, Box<Expr>),
    /// `e ^ x`.
    Exp(Box<Expr>),
    /// `log10(x)`.
    Log10(Box<Expr>),
    /// `ln(x)`.
    Ln(Box<Expr>),
    /// A decay of `x` around `target` (default 0), with its lambda.
    Decay(DecayKind, Box<Expr>, Option<Box<Expr>>, f64),
}

/// A formula with its defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Formula {
    /// The expression.
    pub expr: Expr,
    /// Values for payload keys (and `$score[i]`) a point lacks.
    pub defaults: Map<String, Value>,
}

fn bad(at: &str, what: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(format!("formula {at}: {what}"))
}

fn key(text: &str, at: &str) -> Result<(String, KeyPath)> {
    Ok((text.to_string(), KeyPath::parse(text).map_err(|e| bad(at, e))?))
}

impl Formula {
    /// Parses Qdrant's JSON form (`formula`, `defaults`).
    pub fn from_json(formula: &Value, defaults: Option<&Value>) -> Result<Formula> {
        let defaults = match defaults {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(other) => return Err(bad("defaults", format!("must be an object, got {other}"))),
        };
        Ok(Formula {
            expr: parse(formula, "formula", 0)?,
            defaults,
        })
    }

    /// The payload keys the formula reads (for strict mode's index checks).
    pub fn payload_keys(&self) -> Vec<String> {
        fn walk(e: &Expr, out: &mut Vec<String>) {
            match e {
                Expr::Var(k, _) | Expr::GeoDistance(_, k, _) | Expr::DatetimeKey(k, _) => out.push(k.clone()),
                Expr::Mult(xs) | Expr::Sum(xs) => xs.iter().for_each(|x| walk(x, out)),
                Expr::Neg(x) | Expr::Abs(x) | Expr::Sqrt(x) | Expr::Exp(x) | Expr::Log10(x) | Expr::Ln(x) => walk(x, out),
                Expr::Div(a, b, _) | Expr::Pow(a, b) => {
                    walk(a, out);
                    walk(b, out)
                }
                Expr::Decay(_, x, t, _) => {
                    walk(x, out);
                    if let Some(t) = t {
                        walk(t, out)
                    }
                }
                Expr::Const(_) | Expr::Score(_) | Expr::Condition(_) | Expr::Datetime(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }

    /// The formula's value for one point: its id, payload and the prefetches' scores of it.
    pub fn eval(&self, id: PointId, payload: &Payload, scores: &dyn Fn(usize) -> Option<f32>) -> Result<f32> {
        let v = self.eval_expr(&self.expr, id, payload, scores)?;
        let f = v as f32;
        if !f.is_finite() {
            return Err(Error::InvalidRequest(format!(
                "formula: the score of point {id} is not a finite number ({v})"
            )));
        }
        Ok(f)
    }

    fn value(&self, name: &str, path: &KeyPath, payload: &Payload) -> Option<Value> {
        // Nulls are no value (the default applies), as in Qdrant.
        let found: Vec<&Value> = path.leaf_values(payload).into_iter().filter(|v| !v.is_null()).collect();
        match found.len() {
            0 => self.defaults.get(name).cloned(),
            1 => Some(found[0].clone()),
            _ => Some(Value::Array(found.into_iter().cloned().collect())),
        }
    }

    fn number(&self, name: &str, path: &KeyPath, payload: &Payload) -> Result<f64> {
        let v = self
            .value(name, path, payload)
            .ok_or_else(|| Error::InvalidRequest(format!("formula: no value for {name:?} in the payload nor in the defaults")))?;
        v.as_f64()
            .ok_or_else(|| Error::InvalidRequest(format!("formula: {name:?} is {v}, not a number")))
    }

    fn eval_expr(&self, e: &Expr, id: PointId, p: &Payload, scores: &dyn Fn(usize) -> Option<f32>) -> Result<f64> {
        let ev = |x: &Expr| self.eval_expr(x, id, p, scores);
        let finite = |v: f64, what: String| {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(Error::InvalidRequest(format!("formula: {what} = {v} is not a finite number")))
            }
        };
        Ok(match e {
            Expr::Const(c) => *c,
            Expr::Score(i) => match scores(*i) {
                Some(s) => s as f64,
                None => {
                    let name = if *i == 0 { "$score".to_string() } else { format!("$score[{i}]") };
                    self.defaults
                        .get(&name)
                        .or_else(|| self.defaults.get(&format!("$score[{i}]")))
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0)
                }
            },
            Expr::Var(name, path) => self.number(name, path, p)?,
            Expr::Condition(f) => f64::from(u8::from(f.matches(id, p))),
            Expr::GeoDistance(origin, name, path) => {
                let v = self
                    .value(name, path, p)
                    .ok_or_else(|| Error::InvalidRequest(format!("formula: no location for {name:?}")))?;
                let to =
                    GeoPoint::from_value(&v).ok_or_else(|| Error::InvalidRequest(format!("formula: {name:?} is {v}, not a location")))?;
                origin.distance_m(&to)
            }
            Expr::Datetime(s) => *s,
            Expr::DatetimeKey(name, path) => {
                let v = self
                    .value(name, path, p)
                    .ok_or_else(|| Error::InvalidRequest(format!("formula: no datetime for {name:?}")))?;
                let us = v
                    .as_str()
                    .and_then(crate::payload_index::parse_datetime)
                    .ok_or_else(|| Error::InvalidRequest(format!("formula: {name:?} is {v}, not an RFC 3339 datetime")))?;
                us as f64 / 1e6
            }
            Expr::Mult(xs) => {
                let mut prod = 1.0;
                for x in xs {
                    let v = ev(x)?;
                    if v == 0.0 {
                        return Ok(0.0);
                    }
                    prod *= v;
                }
                prod
            }
            Expr::Sum(xs) => {
                let mut sum = 0.0;
                for x in xs {
                    sum += ev(x)?;
                }
                sum
            }
            Expr::Neg(x) => -ev(x)?,
            Expr::Abs(x) => ev(x)?.abs(),
            Expr::Div(l, r, by_zero) => {
                let l = ev(l)?;
                if l == 0.0 {
                    return Ok(0.0);
                }
                let r = ev(r)?;
                match by_zero {
                    Some(d) if r == 0.0 => *d,
                    _ => finite(l / r, format!("{l}/{r}"))?,
                }
            }
            Expr::Sqrt(x) => {
                let v = ev(x)?;
                finite(v.sqrt(), format!("sqrt({v})"))?
            }
            Expr::Pow(b, x) => {
                let (b, x) = (ev(b)?, ev(x)?);
                finite(b.powf(x), format!("{b}^{x}"))?
            }
            Expr::Exp(x) => {
                let v = ev(x)?;
                finite(v.exp(), format!("exp({v})"))?
            }
            Expr::Log10(x) => {
                let v = ev(x)?;
                finite(v.log10(), format!("log10({v})"))?
            }
            Expr::Ln(x) => {
                let v = ev(x)?;
                finite(v.ln(), format!("ln({v})"))?
            }
            Expr::Decay(kind, x, target, lambda) => {
                let x = ev(x)?;
                let t = match target {
                    Some(t) => ev(t)?,
                    None => 0.0,
                };
                match kind {
                    DecayKind::Lin => (1.0 - lambda * (x - t).abs()).max(0.0),
                    DecayKind::Exp => (lambda * (x - t).abs()).exp(),
                    DecayKind::Gauss => (lambda * (x - t) * (x - t)).exp(),
                }
            }
        })
    }
}

/// Formulas nest at most this deep.
const FORMULA_DEPTH_MAX: usize = 32;

fn parse(v: &Value, at: &str, depth: usize) -> Result<Expr> {
    if depth > FORMULA_DEPTH_MAX {
        return Err(bad(at, format!("nests deeper than {FORMULA_DEPTH_MAX} levels")));
    }
    let sub = |x: &Value, name: &str| parse(x, &format!("{at}.{name}"), depth + 1).map(Box::new);
    let list = |x: &Value, name: &str| -> Result<Vec<Expr>> {
        x.as_array()
            .ok_or_else(|| bad(&format!("{at}.{name}"), "must be a list of expressions"))?
            .iter()
            .enumerate()
            .map(|(i, e)| parse(e, &format!("{at}.{name}[{i}]"), depth + 1))
            .collect()
    };
    match v {
        Value::Number(n) => Ok(Expr::Const(n.as_f64().ok_or_else(|| bad(at, "not a number"))?)),
        Value::String(s) if s == "$score" => Ok(Expr::Score(0)),
        Value::String(s) if s.starts_with("$score[") && s.ends_with(']') => {
            let i = s["$score[".len()..s.len() - 1]
                .parse::<usize>()
                .map_err(|_| bad(at, format!("{s:?} is not $score[index]")))?;
            Ok(Expr::Score(i))
        }
        Value::String(s) => {
            let (name, path) = key(s, at)?;
            Ok(Expr::Var(name, path))
        }
        Value::Object(o) if o.len() == 1 => {
            let (k, x) = o.iter().next().expect("one entry");
            match k.as_str() {
                "mult" => Ok(Expr::Mult(list(x, k)?)),
                "sum" => Ok(Expr::Sum(list(x, k)?)),
                "neg" => Ok(Expr::Neg(sub(x, k)?)),
                "abs" => Ok(Expr::Abs(sub(x, k)?)),
                "sqrt" => Ok(Expr::Sqrt(sub(x, k)?)),
                "exp" => Ok(Expr::Exp(sub(x, k)?)),
                "log10" => Ok(Expr::Log10(sub(x, k)?)),
                "ln" => Ok(Expr::Ln(sub(x, k)?)),
                "div" => {
                    let l = x.get("left").ok_or_else(|| bad(at, "div needs left"))?;
                    let r = x.get("right").ok_or_else(|| bad(at, "div needs right"))?;
                    let by_zero = x.get("by_zero_default").and_then(Value::as_f64);
                    Ok(Expr::Div(sub(l, "div.left")?, sub(r, "div.right")?, by_zero))
                }
                "pow" => {
                    let b = x.get("base").ok_or_else(|| bad(at, "pow needs base"))?;
                    let e = x.get("exponent").ok_or_else(|| bad(at, "pow needs exponent"))?;
                    Ok(Expr::Pow(sub(b, "pow.base")?, sub(e, "pow.exponent")?))
                }
                "geo_distance" => {
                    let origin = x
                        .get("origin")
                        .and_then(GeoPoint::from_value)
                        .ok_or_else(|| bad(at, "geo_distance.origin must be {\"lon\", \"lat\"}"))?;
                    let to = x
                        .get("to")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(at, "geo_distance.to must be a payload key"))?;
                    let (name, path) = key(to, at)?;
                    Ok(Expr::GeoDistance(origin, name, path))
                }
                "datetime" => {
                    let s = x.as_str().ok_or_else(|| bad(at, "datetime must be an RFC 3339 string"))?;
                    let us =
                        crate::payload_index::parse_datetime(s).ok_or_else(|| bad(at, format!("{s:?} is not an RFC 3339 datetime")))?;
                    Ok(Expr::Datetime(us as f64 / 1e6))
                }
                "datetime_key" => {
                    let s = x.as_str().ok_or_else(|| bad(at, "datetime_key must be a payload key"))?;
                    let (name, path) = key(s, at)?;
                    Ok(Expr::DatetimeKey(name, path))
                }
                "lin_decay" | "exp_decay" | "gauss_decay" => {
                    let kind = match k.as_str() {
                        "lin_decay" => DecayKind::Lin,
                        "exp_decay" => DecayKind::Exp,
                        _ => DecayKind::Gauss,
                    };
                    let xv = x.get("x").ok_or_else(|| bad(at, format!("{k} needs x")))?;
                    let target = match x.get("target") {
                        None | Some(Value::Null) => None,
                        Some(t) => Some(sub(t, "target")?),
                    };
                    let midpoint = x.get("midpoint").and_then(Value::as_f64).unwrap_or(0.5);
                    let scale = x.get("scale").and_then(Value::as_f64).unwrap_or(1.0);
                    let lambda = decay_lambda(kind, midpoint, scale).map_err(|m| Error::Validation {
                        field: format!("{at}.{k}"),
                        problem: m,
                    })?;
                    Ok(Expr::Decay(kind, sub(xv, "x")?, target, lambda))
                }
                _ => condition(v, at),
            }
        }
        Value::Object(_) => condition(v, at),
        other => Err(bad(at, format!("{other} is not an expression"))),
    }
}

/// A filter condition inside a formula: 1 when the point matches it.
fn condition(v: &Value, at: &str) -> Result<Expr> {
    let f = Filter::from_json(&serde_json::json!({ "must": [v] })).map_err(|e| bad(at, e))?;
    Ok(Expr::Condition(Box::new(f)))
}

fn decay_lambda(kind: DecayKind, midpoint: f64, scale: f64) -> std::result::Result<f64, String> {
    match kind {
        DecayKind::Lin if !(0.0..=1.0).contains(&midpoint) => {
            return Err(format!("Linear decay midpoint should be in the range [0.0, 1.0], got {midpoint}."))
        }
        DecayKind::Exp | DecayKind::Gauss if midpoint <= 0.0 || midpoint >= 1.0 => {
            return Err(format!("Decay midpoint should be in the range (0.0, 1.0), got {midpoint}."))
        }
        _ => {}
    }
    if scale <= 0.0 {
        return Err(format!("Decay scale should be non-zero positive, got {scale}."));
    }
    Ok(match kind {
        DecayKind::Lin => (1.0 - midpoint) / scale,
        DecayKind::Exp => midpoint.ln() / scale,
        DecayKind::Gauss => midpoint.ln() / (scale * scale),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(f: Value, defaults: Value, payload: Value, scores: &[f32]) -> Result<f32> {
        let f = Formula::from_json(&f, Some(&defaults))?;
        f.eval(PointId::Num(7), payload.as_object().unwrap(), &|i| scores.get(i).copied())
    }

    #[test]
    fn arithmetic_scores_and_defaults_by_hand() {
        let p = json!({"price": 2.0, "tag": "a"});
        assert_eq!(
            eval(
                json!({"sum": [{"mult": ["$score", 0.4]}, {"mult": ["price", 0.6]}]}),
                json!({}),
                p.clone(),
                &[0.5]
            )
            .unwrap(),
            (0.4f64 * 0.5 + 0.6 * 2.0) as f32
        );
        let fast_sigmoid = json!({"div": {"left": "price", "right": {"sum": [1.0, {"abs": "price"}]}}});
        assert!((eval(fast_sigmoid, json!({}), p.clone(), &[]).unwrap() - 2.0 / 3.0).abs() < 1e-6);
        // A missing key takes its default; a missing score is 0.
        assert_eq!(
            eval(json!({"sum": ["weight", "$score[1]"]}), json!({"weight": 3}), p.clone(), &[1.0]).unwrap(),
            3.0
        );
        // A condition is 1 or 0.
        assert_eq!(
            eval(
                json!({"mult": [10, {"key": "tag", "match": {"value": "a"}}]}),
                json!({}),
                p.clone(),
                &[]
            )
            .unwrap(),
            10.0
        );
        assert_eq!(
            eval(
                json!({"mult": [10, {"key": "tag", "match": {"value": "b"}}]}),
                json!({}),
                p.clone(),
                &[]
            )
            .unwrap(),
            0.0
        );
        assert_eq!(
            eval(json!({"pow": {"base": 2, "exponent": 10}}), json!({}), p.clone(), &[]).unwrap(),
            1024.0
        );
        assert_eq!(
            eval(
                json!({"div": {"left": 1, "right": 0, "by_zero_default": 5}}),
                json!({}),
                p.clone(),
                &[]
            )
            .unwrap(),
            5.0
        );
    }

    #[test]
    fn decays_geo_and_datetimes_by_hand() {
        let p = json!({"x": 3.0, "at": {"lon": 0.0, "lat": 1.0}, "when": "1970-01-02T00:00:00Z"});
        // At one scale from the target, every decay is at its midpoint.
        for kind in ["lin_decay", "exp_decay", "gauss_decay"] {
            let v = eval(
                json!({kind: {"x": "x", "target": 2.0, "scale": 1.0, "midpoint": 0.3}}),
                json!({}),
                p.clone(),
                &[],
            )
            .unwrap();
            assert!((v - 0.3).abs() < 1e-6, "{kind}: {v}");
        }
        let d = eval(
            json!({"geo_distance": {"origin": {"lon": 0.0, "lat": 0.0}, "to": "at"}}),
            json!({}),
            p.clone(),
            &[],
        )
        .unwrap();
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
        let t = eval(
            json!({"sum": [{"datetime_key": "when"}, {"neg": {"datetime": "1970-01-01T00:00:00Z"}}]}),
            json!({}),
            p.clone(),
            &[],
        )
        .unwrap();
        assert_eq!(t, 86_400.0);
    }

    #[test]
    fn errors_name_what_went_wrong() {
        let p = json!({"s": "text"});
        assert!(eval(json!("missing"), json!({}), p.clone(), &[])
            .unwrap_err()
            .to_string()
            .contains("no value"));
        assert!(eval(json!("s"), json!({}), p.clone(), &[])
            .unwrap_err()
            .to_string()
            .contains("not a number"));
        assert!(eval(json!({"ln": 0}), json!({}), p.clone(), &[])
            .unwrap_err()
            .to_string()
            .contains("not a finite"));
        assert!(eval(json!({"exp_decay": {"x": 1, "midpoint": 1.5}}), json!({}), p.clone(), &[]).is_err());
        assert!(Formula::from_json(&json!([1]), None).is_err());
        let f = Formula::from_json(
            &json!({"sum": ["a", {"geo_distance": {"origin": {"lon": 0, "lat": 0}, "to": "b"}}]}),
            None,
        )
        .unwrap();
        assert_eq!(f.payload_keys(), vec!["a", "b"]);
    }
}

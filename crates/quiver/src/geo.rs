//! Geo conditions (Qdrant's `geo_bounding_box`, `geo_radius`, `geo_polygon`) on payload values
//! of the form `{"lon": .., "lat": ..}` (or arrays of them). Distances are great-circle
//! (haversine on a sphere of the Earth's mean radius); boxes may cross the antimeridian;
//! polygons are tested on the plane of longitude and latitude, holes excluded, as in Qdrant.

use crate::error::{Error, Result};
use serde_json::Value;

/// The Earth's mean radius in metres (IUGG), the sphere distances are measured on.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A location in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoPoint {
    /// Longitude, -180 to 180.
    pub lon: f64,
    /// Latitude, -90 to 90.
    pub lat: f64,
}

impl GeoPoint {
    /// A payload value as a location: an object with numeric `lon` and `lat`.
    pub fn from_value(v: &Value) -> Option<GeoPoint> {
        let o = v.as_object()?;
        Some(GeoPoint {
            lon: o.get("lon")?.as_f64()?,
            lat: o.get("lat")?.as_f64()?,
        })
    }

    fn parse(v: &Value, at: &str) -> Result<GeoPoint> {
        let p =
            GeoPoint::from_value(v).ok_or_else(|| Error::InvalidFilter(format!("{at} must be {{\"lon\": number, \"lat\": number}}")))?;
        if !(-180.0..=180.0).contains(&p.lon) || !(-90.0..=90.0).contains(&p.lat) {
            return Err(Error::Validation {
                field: at.to_string(),
                problem: format!(
                    "longitude must be in [-180, 180] and latitude in [-90, 90], got ({}, {})",
                    p.lon, p.lat
                ),
            });
        }
        Ok(p)
    }

    /// Great-circle distance in metres.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (la1, la2) = (self.lat.to_radians(), other.lat.to_radians());
        let dla = la2 - la1;
        let dlo = (other.lon - self.lon).to_radians();
        let a = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

/// A region a location can lie in.
#[derive(Clone, Debug, PartialEq)]
pub enum GeoShape {
    /// Between the corners' latitudes and, going east from the top-left corner, longitudes.
    Box {
        /// North-west corner.
        top_left: GeoPoint,
        /// South-east corner.
        bottom_right: GeoPoint,
    },
    /// Within `radius` metres of `center`.
    Radius {
        /// The centre.
        center: GeoPoint,
        /// Metres.
        radius: f64,
    },
    /// Inside the exterior ring and outside every interior ring (rings are closed: the first
    /// point repeated last).
    Polygon {
        /// The outline.
        exterior: Vec<GeoPoint>,
        /// Holes.
        interiors: Vec<Vec<GeoPoint>>,
    },
}

fn ring(v: &Value, at: &str) -> Result<Vec<GeoPoint>> {
    let points = v
        .get("points")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::InvalidFilter(format!("{at} must be {{\"points\": [..]}}")))?;
    let pts = points
        .iter()
        .enumerate()
        .map(|(i, p)| GeoPoint::parse(p, &format!("{at}.points[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    if pts.len() < 4 {
        return Err(Error::Validation {
            field: at.to_string(),
            problem: format!(
                "a polygon ring needs at least 4 points (the first repeated last), got {}",
                pts.len()
            ),
        });
    }
    if pts.first() != pts.last() {
        return Err(Error::Validation {
            field: at.to_string(),
            problem: "a polygon ring must be closed: its last point must equal its first".into(),
        });
    }
    Ok(pts)
}

impl GeoShape {
    /// Parses `geo_bounding_box`, `geo_radius` or `geo_polygon` (`kind`) from its JSON.
    pub fn parse(kind: &str, v: &Value, at: &str) -> Result<GeoShape> {
        let field = |k: &str| v.get(k).ok_or_else(|| Error::InvalidFilter(format!("{at}.{k} is required")));
        match kind {
            "geo_bounding_box" => Ok(GeoShape::Box {
                top_left: GeoPoint::parse(field("top_left")?, &format!("{at}.top_left"))?,
                bottom_right: GeoPoint::parse(field("bottom_right")?, &format!("{at}.bottom_right"))?,
            }),
            "geo_radius" => {
                let radius = field("radius")?
                    .as_f64()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| Error::InvalidFilter(format!("{at}.radius must be a distance in metres")))?;
                Ok(GeoShape::Radius {
                    center: GeoPoint::parse(field("center")?, &format!("{at}.center"))?,
                    radius,
                })
            }
            "geo_polygon" => {
                let exterior = ring(field("exterior")?, &format!("{at}.exterior"))?;
                let interiors = match v.get("interiors") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(list)) => list
                        .iter()
                        .enumerate()
                        .map(|(i, r)| ring(r, &format!("{at}.interiors[{i}]")))
                        .collect::<Result<_>>()?,
                    Some(_) => return Err(Error::InvalidFilter(format!("{at}.interiors must be a list of rings"))),
                };
                Ok(GeoShape::Polygon { exterior, interiors })
            }
            other => Err(Error::InvalidFilter(format!("{at}: unknown geo condition {other:?}"))),
        }
    }

    /// Whether `p` lies in the region.
    pub fn contains(&self, p: &GeoPoint) -> bool {
        match self {
            GeoShape::Box { top_left, bottom_right } => {
                let lat_ok = p.lat <= top_left.lat && p.lat >= bottom_right.lat;
                let lon_ok = if top_left.lon <= bottom_right.lon {
                    p.lon >= top_left.lon && p.lon <= bottom_right.lon
                } else {
                    // The box crosses the antimeridian.
                    p.lon >= top_left.lon || p.lon <= bottom_right.lon
                };
                lat_ok && lon_ok
            }
            GeoShape::Radius { center, radius } => center.distance_m(p) <= *radius,
            GeoShape::Polygon { exterior, interiors } => in_ring(exterior, p) && !interiors.iter().any(|r| in_ring(r, p)),
        }
    }
}

/// Even-odd ray casting in the (lon, lat) plane; points on an edge count as inside.
fn in_ring(ring: &[GeoPoint], p: &GeoPoint) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        // On the edge: collinear and within its bounds.
        let cross = (b.lon - a.lon) * (p.lat - a.lat) - (b.lat - a.lat) * (p.lon - a.lon);
        if cross.abs() < 1e-12
            && p.lon >= a.lon.min(b.lon)
            && p.lon <= a.lon.max(b.lon)
            && p.lat >= a.lat.min(b.lat)
            && p.lat <= a.lat.max(b.lat)
        {
            return true;
        }
        if (a.lat > p.lat) != (b.lat > p.lat) {
            let lon_at = a.lon + (p.lat - a.lat) / (b.lat - a.lat) * (b.lon - a.lon);
            if p.lon < lon_at {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pt(lon: f64, lat: f64) -> GeoPoint {
        GeoPoint { lon, lat }
    }

    #[test]
    fn haversine_matches_known_distances() {
        // Berlin to Moscow, about 1,608 km; a degree of latitude, about 111.2 km.
        let d = pt(13.405, 52.52).distance_m(&pt(37.6173, 55.7558));
        assert!((d - 1_608_000.0).abs() < 5_000.0, "{d}");
        let d = pt(0.0, 0.0).distance_m(&pt(0.0, 1.0));
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
    }

    #[test]
    fn boxes_radii_and_polygons_by_hand() {
        let b = GeoShape::parse(
            "geo_bounding_box",
            &json!({"top_left": {"lon": 10, "lat": 55}, "bottom_right": {"lon": 15, "lat": 50}}),
            "f",
        )
        .unwrap();
        assert!(b.contains(&pt(13.4, 52.5)));
        assert!(!b.contains(&pt(16.0, 52.5)));
        // Across the antimeridian.
        let b = GeoShape::parse(
            "geo_bounding_box",
            &json!({"top_left": {"lon": 170, "lat": 10}, "bottom_right": {"lon": -170, "lat": -10}}),
            "f",
        )
        .unwrap();
        assert!(b.contains(&pt(179.0, 0.0)) && b.contains(&pt(-179.0, 0.0)) && !b.contains(&pt(0.0, 0.0)));
        let r = GeoShape::parse(
            "geo_radius",
            &json!({"center": {"lon": 13.405, "lat": 52.52}, "radius": 1_700_000.0}),
            "f",
        )
        .unwrap();
        assert!(r.contains(&pt(37.6173, 55.7558)));
        let r = GeoShape::parse(
            "geo_radius",
            &json!({"center": {"lon": 13.405, "lat": 52.52}, "radius": 1_500_000.0}),
            "f",
        )
        .unwrap();
        assert!(!r.contains(&pt(37.6173, 55.7558)));
        let square = json!({"points": [{"lon": 0, "lat": 0}, {"lon": 10, "lat": 0}, {"lon": 10, "lat": 10}, {"lon": 0, "lat": 10}, {"lon": 0, "lat": 0}]});
        let hole = json!({"points": [{"lon": 4, "lat": 4}, {"lon": 6, "lat": 4}, {"lon": 6, "lat": 6}, {"lon": 4, "lat": 6}, {"lon": 4, "lat": 4}]});
        let poly = GeoShape::parse("geo_polygon", &json!({"exterior": square, "interiors": [hole]}), "f").unwrap();
        assert!(poly.contains(&pt(2.0, 2.0)));
        assert!(!poly.contains(&pt(5.0, 5.0)));
        assert!(!poly.contains(&pt(11.0, 5.0)));
        assert!(poly.contains(&pt(10.0, 5.0)), "an edge counts as inside");
    }

    #[test]
    fn open_or_short_rings_are_refused() {
        let open =
            json!({"exterior": {"points": [{"lon": 0, "lat": 0}, {"lon": 1, "lat": 0}, {"lon": 1, "lat": 1}, {"lon": 0, "lat": 1}]}});
        assert!(GeoShape::parse("geo_polygon", &open, "f").is_err());
        let short = json!({"exterior": {"points": [{"lon": 0, "lat": 0}, {"lon": 1, "lat": 0}, {"lon": 0, "lat": 0}]}});
        assert!(GeoShape::parse("geo_polygon", &short, "f").is_err());
        assert!(GeoShape::parse("geo_radius", &json!({"center": {"lon": 200, "lat": 0}, "radius": 1}), "f").is_err());
    }
}

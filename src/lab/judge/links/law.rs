//! The laws of a frame's delay the expected figures integrate: their CDFs,
//! the FIFO product and the chance a frame is due after every earlier one.

/// A delay's law, in seconds.
#[derive(Debug, Clone, Copy)]
pub enum Spread {
    /// Always this.
    Point(f64),
    /// Uniform between the two.
    Uniform {
        /// Lowest.
        low: f64,
        /// Highest.
        high: f64,
    },
    /// Normal.
    Normal {
        /// Its mean.
        mean: f64,
        /// Its standard deviation.
        deviation: f64,
    },
}

impl Spread {
    pub fn cdf(&self, x: f64) -> f64 {
        match *self {
            Spread::Point(at) => f64::from(u8::from(x >= at)),
            Spread::Uniform { low, high } => ((x - low) / (high - low)).clamp(0.0, 1.0),
            Spread::Normal { mean, deviation } => normal_cdf((x - mean) / deviation),
        }
    }

    pub fn density(&self, x: f64) -> f64 {
        match *self {
            Spread::Point(_) => 0.0,
            Spread::Uniform { low, high } if (low..=high).contains(&x) => 1.0 / (high - low),
            Spread::Uniform { .. } => 0.0,
            Spread::Normal { mean, deviation } => {
                let z = (x - mean) / deviation;
                (-0.5 * z * z).exp() / (deviation * (2.0 * std::f64::consts::PI).sqrt())
            }
        }
    }

    /// Where the law is (nearly) all below.
    pub fn high(&self) -> f64 {
        match *self {
            Spread::Point(at) => at,
            Spread::Uniform { high, .. } => high,
            Spread::Normal { mean, deviation } => mean + 9.0 * deviation,
        }
    }

    /// Where the law is (nearly) all above.
    pub fn low(&self) -> f64 {
        match *self {
            Spread::Point(at) => at,
            Spread::Uniform { low, .. } => low,
            Spread::Normal { mean, deviation } => mean - 9.0 * deviation,
        }
    }
}

/// `∏_{k≥from} F(x + k·spacing)`: every frame sent `k` spacings earlier is
/// due by then (a FIFO frame leaves at the latest of them).
pub fn behind_all(spread: &Spread, x: f64, from: u64, spacing: f64) -> f64 {
    let mut product = 1.0;
    let mut k = from;
    while k < 1_000_000 {
        let f = spread.cdf(x + k as f64 * spacing);
        if f >= 1.0 - 1e-15 {
            break;
        }
        product *= f;
        if product < 1e-300 {
            return 0.0;
        }
        k += 1;
    }
    product
}

/// The chance a frame is due after every earlier one,
/// `∫ f(x) ∏_{k≥1} F(x + k s) dx`, by Simpson's rule.
pub fn in_order(spread: &Spread, spacing: f64) -> f64 {
    let (low, high) = (spread.low(), spread.high());
    let steps = 4000;
    let h = (high - low) / steps as f64;
    (0..=steps)
        .map(|i| {
            let x = low + i as f64 * h;
            let weight = match i {
                0 => 1.0,
                _ if i == steps => 1.0,
                _ if i % 2 == 1 => 4.0,
                _ => 2.0,
            };
            weight * spread.density(x) * behind_all(spread, x, 1, spacing)
        })
        .sum::<f64>()
        * h
        / 3.0
}

/// The smallest `x` in `0..=high` with `cdf(x) >= q`, by bisection.
pub fn invert(cdf: impl Fn(f64) -> f64, q: f64, high: f64) -> f64 {
    let (mut low, mut high) = (0.0_f64, high.max(1e-9));
    while cdf(high) < q {
        high *= 2.0;
        if high > 1e6 {
            return high;
        }
    }
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if cdf(mid) >= q {
            high = mid;
        } else {
            low = mid;
        }
    }
    high
}

/// The standard normal CDF (Abramowitz and Stegun 7.1.26, error below 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    0.5 * (1.0 + erf.copysign(z))
}

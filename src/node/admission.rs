//! Who may add an ID to the neighbor table. An ID is free to invent and an
//! announcement free to send, so both are limited by the one thing a sender
//! cannot change at will: its source address. Each address may hold a bounded
//! number of IDs and add new ones at a bounded rate (a token bucket), so a
//! flood from one address costs the table a few entries, and the others none.
//! Plain state, time passed in, like the table that owns it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How much one source address may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Most IDs one address holds in the table at once.
    pub per_address: usize,
    /// New IDs one address may add at once (nodes started together on one host).
    pub burst: u32,
    /// Then one new ID per this period: a real host starts nodes one at a time.
    pub refill_every: Duration,
}

/// Why a new ID was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address added new IDs faster than the refill allows.
    RateLimited,
    /// Its address holds [`AdmissionConfig::per_address`] IDs already.
    AddressFull,
}

#[derive(Debug, Clone, Copy)]
struct Address {
    ids: usize,
    tokens: f64,
    refilled: Instant,
}

/// The per-address bookkeeping. Entries exist for addresses holding IDs and
/// for those still refilling; at most `limit` of them, whatever the senders.
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    limit: usize,
    addresses: HashMap<IpAddr, Address>,
}

impl Address {
    fn refill(&mut self, config: &AdmissionConfig, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        let gained = elapsed.as_secs_f64() / config.refill_every.as_secs_f64().max(1e-9);
        self.tokens = (self.tokens + gained).min(f64::from(config.burst));
        self.refilled = now;
    }

    fn is_idle(&self, config: &AdmissionConfig) -> bool {
        self.ids == 0 && self.tokens >= f64::from(config.burst)
    }
}

impl Admission {
    /// Bookkeeping for a table of `capacity` IDs.
    pub fn new(config: AdmissionConfig, capacity: usize) -> Self {
        Admission {
            config,
            // Addresses holding IDs are at most `capacity`; as many again refilling.
            limit: capacity.saturating_mul(2).max(16),
            addresses: HashMap::new(),
        }
    }

    /// Whether `ip` may add a new ID now.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if !self.addresses.contains_key(&ip) && self.addresses.len() >= self.limit {
            // Forgetting an idle address loses nothing; one still refilling
            // gets a full bucket back, which the table's capacity still bounds.
            let config = self.config;
            self.addresses.retain(|_, a| {
                a.refill(&config, now);
                !a.is_idle(&config)
            });
            if self.addresses.len() >= self.limit {
                self.addresses.retain(|_, a| a.ids > 0);
            }
        }
        let config = self.config;
        let address = self.addresses.entry(ip).or_insert(Address {
            ids: 0,
            tokens: f64::from(config.burst),
            refilled: now,
        });
        address.refill(&config, now);
        if address.ids >= config.per_address {
            Err(Refusal::AddressFull)
        } else if address.tokens < 1.0 {
            Err(Refusal::RateLimited)
        } else {
            Ok(())
        }
    }

    /// Records that `ip` added an ID, after a successful [`Admission::check`].
    pub fn admitted(&mut self, ip: IpAddr) {
        if let Some(address) = self.addresses.get_mut(&ip) {
            address.tokens -= 1.0;
            address.ids += 1;
        }
    }

    /// Records that an ID of `ip` left the table.
    pub fn forgotten(&mut self, ip: IpAddr) {
        if let Some(address) = self.addresses.get_mut(&ip) {
            address.ids = address.ids.saturating_sub(1);
        }
    }

    /// Moves an ID from one address to another, when the new one has room.
    pub fn moved(&mut self, from: IpAddr, to: IpAddr, now: Instant) -> Result<(), Refusal> {
        self.check(to, now).or_else(|refusal| match refusal {
            // A move is no new ID: only the bound on IDs applies.
            Refusal::RateLimited => Ok(()),
            Refusal::AddressFull => Err(refusal),
        })?;
        self.forgotten(from);
        if let Some(address) = self.addresses.get_mut(&to) {
            address.ids += 1;
        }
        Ok(())
    }

    /// Forgets addresses that hold no ID and have refilled. Call now and then.
    pub fn prune(&mut self, now: Instant) {
        let config = self.config;
        self.addresses.retain(|_, a| {
            a.refill(&config, now);
            !a.is_idle(&config)
        });
    }

    /// IDs `ip` holds.
    pub fn ids_at(&self, ip: IpAddr) -> usize {
        self.addresses.get(&ip).map_or(0, |a| a.ids)
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn admission() -> Admission {
        Admission::new(
            AdmissionConfig {
                per_address: 8,
                burst: 4,
                refill_every: SECOND,
            },
            100,
        )
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn admit(admission: &mut Admission, at: IpAddr, now: Instant) -> Result<(), Refusal> {
        admission.check(at, now)?;
        admission.admitted(at);
        Ok(())
    }

    #[test]
    fn an_address_adds_a_burst_then_one_id_per_period() {
        let mut admission = admission();
        let now = Instant::now();
        for _ in 0..4 {
            assert_eq!(admit(&mut admission, ip(1), now), Ok(()));
        }
        assert_eq!(admit(&mut admission, ip(1), now), Err(Refusal::RateLimited));
        assert_eq!(admit(&mut admission, ip(2), now), Ok(()), "others unharmed");
        assert_eq!(
            admit(&mut admission, ip(1), now + SECOND / 2),
            Err(Refusal::RateLimited)
        );
        assert_eq!(admit(&mut admission, ip(1), now + SECOND), Ok(()));
    }

    #[test]
    fn an_address_holds_a_bounded_number_of_ids() {
        let mut admission = admission();
        let mut now = Instant::now();
        let mut admitted = 0;
        for _ in 0..100 {
            now += SECOND;
            if admit(&mut admission, ip(1), now).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 8);
        assert_eq!(
            admission.check(ip(1), now + 10 * SECOND),
            Err(Refusal::AddressFull)
        );
        admission.forgotten(ip(1));
        assert_eq!(admission.check(ip(1), now + 10 * SECOND), Ok(()));
    }

    #[test]
    fn a_move_needs_room_but_no_token() {
        let mut admission = admission();
        let now = Instant::now();
        for _ in 0..4 {
            admit(&mut admission, ip(2), now).unwrap();
        }
        admit(&mut admission, ip(1), now).unwrap();
        assert_eq!(admission.moved(ip(1), ip(2), now), Ok(()));
        assert_eq!((admission.ids_at(ip(1)), admission.ids_at(ip(2))), (0, 5));
    }

    #[test]
    fn spoofed_addresses_cannot_grow_the_bookkeeping() {
        let mut admission = admission();
        let now = Instant::now();
        // Each address adds an ID that the table (bounded itself) soon evicts.
        for i in 0..10_000u32 {
            let spoofed = IpAddr::from(i.to_be_bytes());
            if admit(&mut admission, spoofed, now).is_ok() {
                admission.forgotten(spoofed);
            }
        }
        assert!(admission.len() <= 200, "{}", admission.len());
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        let mut admission = admission();
        let now = Instant::now();
        admit(&mut admission, ip(1), now).unwrap();
        admission.forgotten(ip(1));
        admission.prune(now);
        assert_eq!(admission.len(), 1, "still refilling");
        admission.prune(now + SECOND);
        assert!(admission.is_empty());
    }
}

//! Who a confined program runs as: a named account, or a uid and gid no
//! account uses, as systemd's `DynamicUser=` picks them.

use std::collections::BTreeSet;

use nix::unistd::User;

use super::spec::Identity;
use super::SandboxError;

/// The first id of systemd's range for dynamic users.
pub const FIRST: u32 = 61184;
/// The last id of that range.
pub const LAST: u32 = 65519;

/// The identity of node `index` of lab `lab`: the account `user` when one is
/// named (never root), else an id of the dynamic range that no account or
/// group has, the same for the same lab and node each time and distinct for
/// each node of the lab (uid and gid equal).
pub fn pick(lab: &str, index: usize, user: Option<&str>) -> Result<Identity, SandboxError> {
    if let Some(name) = user {
        return named(name);
    }
    let taken = taken_ids();
    let free: Vec<u32> = (FIRST..=LAST).filter(|id| !taken.contains(id)).collect();
    let id = choose(&free, lab, index).ok_or(SandboxError::NoFreeId)?;
    Ok(Identity {
        uid: id,
        gid: id,
        name: None,
    })
}

fn named(name: &str) -> Result<Identity, SandboxError> {
    let user = User::from_name(name)
        .map_err(super::sys(format!("cannot look up the account {name:?}")))?
        .ok_or_else(|| SandboxError::NoSuchUser(name.to_owned()))?;
    if user.uid.is_root() || user.gid.as_raw() == 0 {
        return Err(SandboxError::Privileged(name.to_owned()));
    }
    Ok(Identity {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        name: Some(name.to_owned()),
    })
}

/// Node `index`'s id among the `free` ones: consecutive from a place the lab's
/// name hashes to, so nodes of one lab never share an id while there are
/// enough free ones.
fn choose(free: &[u32], lab: &str, index: usize) -> Option<u32> {
    if index >= free.len() {
        return None;
    }
    let start = fnv1a(lab.as_bytes()) as usize % free.len();
    Some(free[(start + index) % free.len()])
}

/// FNV-1a: a hash that stays the same across builds and machines.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Ids of the dynamic range that an account or a group of the system's
/// databases (NSS) has.
fn taken_ids() -> BTreeSet<u32> {
    let mut taken = crate::sys::account_and_group_ids();
    taken.retain(|id| (FIRST..=LAST).contains(id));
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_of_a_lab_get_distinct_stable_ids_in_the_range() {
        let a: Vec<u32> = (0..50).map(|i| pick("lab", i, None).unwrap().uid).collect();
        let again: Vec<u32> = (0..50).map(|i| pick("lab", i, None).unwrap().uid).collect();
        assert_eq!(a, again);
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 50);
        assert!(a.iter().all(|id| (FIRST..=LAST).contains(id)));
        let identity = pick("lab", 3, None).unwrap();
        assert_eq!(identity.uid, identity.gid);
        assert_eq!(identity.name, None);
    }

    #[test]
    fn taken_ids_are_skipped_and_labs_start_apart() {
        let free = [10, 11, 13];
        let picks: Vec<u32> = (0..3).map(|i| choose(&free, "x", i).unwrap()).collect();
        assert_eq!(picks.iter().collect::<BTreeSet<_>>().len(), 3);
        assert_eq!(choose(&free, "x", 3), None);
        assert_ne!(fnv1a(b"lab-a") % 4336, fnv1a(b"lab-b") % 4336);
    }

    #[test]
    fn root_and_unknown_accounts_are_refused() {
        assert!(matches!(
            pick("lab", 0, Some("root")),
            Err(SandboxError::Privileged(_))
        ));
        assert!(matches!(
            pick("lab", 0, Some("no-such-account-sdss")),
            Err(SandboxError::NoSuchUser(_))
        ));
    }

    #[test]
    fn a_named_account_is_taken_as_it_is() {
        // `nobody` exists on every Debian-like system; elsewhere there is nothing to check.
        if let Ok(identity) = pick("lab", 0, Some("nobody")) {
            assert_ne!(identity.uid, 0);
            assert_eq!(identity.name.as_deref(), Some("nobody"));
        }
    }
}

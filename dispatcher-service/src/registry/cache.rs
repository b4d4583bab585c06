//! Resolutions kept between registry calls, each tagged with the registry
//! version the dispatcher had applied when it asked, and forgotten when a
//! change after that version touches it (see `ListChanges`).
//!
//! A tag is the version applied *before* the question was sent, so the
//! answer reflects at least that version: any change after the tag may or
//! may not be in it, and is applied to it (it is forgotten). An answer that
//! arrives after a sync has moved the applied version on is not kept at
//! all: the changes that sync applied were never checked against it.

use std::sync::Arc;
use std::time::Instant;

use callbacks_proto::registry::v1 as pb;
use foldhash::{HashMap, HashMapExt as _};
use pb::registry_change::Kind;
use uuid::Uuid;

use super::Target;

#[derive(Debug, Clone)]
pub enum Resolution {
    Active(Arc<Target>),
    NoSubscriber,
}

/// (partner, notification type).
pub(super) type Key = (Uuid, i32);

/// Beyond this many entries, the cache starts again empty.
const MAX_CACHED: usize = 100_000;

#[derive(Debug)]
struct Entry {
    resolution: Resolution,
    /// The registry version applied when the question was sent.
    tag: u64,
    expires: Instant,
}

#[derive(Debug, Default)]
pub(super) struct Resolutions {
    entries: HashMap<Key, Entry>,
    /// Every change up to this version is applied.
    applied: u64,
    /// The newest change to the catalogue applied (or, after an incomplete
    /// answer, the version that answer brought): a catalogue read with a
    /// lower tag is stale.
    catalogue_changed: u64,
}

impl Resolutions {
    pub(super) fn new() -> Self {
        Self {
            entries: HashMap::new(),
            applied: 0,
            catalogue_changed: 0,
        }
    }

    /// See [`Resolutions::catalogue_changed`]'s field.
    pub(super) fn catalogue_changed(&self) -> u64 {
        self.catalogue_changed
    }

    /// The version to tag a question about to be sent with.
    pub(super) fn applied(&self) -> u64 {
        self.applied
    }

    pub(super) fn get(&self, key: Key) -> Option<Resolution> {
        self.entries
            .get(&key)
            .filter(|entry| entry.expires > Instant::now())
            .map(|entry| entry.resolution.clone())
    }

    /// Keeps `resolution`, asked with `tag`, unless a sync has applied
    /// changes since.
    pub(super) fn insert(&mut self, key: Key, resolution: Resolution, tag: u64, expires: Instant) {
        if tag != self.applied {
            return;
        }
        if self.entries.len() >= MAX_CACHED {
            self.entries.clear();
        }
        self.entries.insert(
            key,
            Entry {
                resolution,
                tag,
                expires,
            },
        );
    }

    /// Forgets every resolution to `registration` (it answered 410 Gone).
    pub(super) fn forget_registration(&mut self, registration: Uuid) {
        self.entries.retain(|_, entry| {
            !matches!(&entry.resolution, Resolution::Active(t) if t.registration_id == registration)
        });
    }

    /// Applies one `ListChanges` answer.
    pub(super) fn apply(&mut self, answer: &pb::ListChangesResponse) {
        if !answer.complete {
            self.entries.clear();
            self.catalogue_changed = answer.version;
        }
        for change in &answer.changes {
            let partner = Uuid::try_parse(&change.partner_id);
            // A change older than an entry's tag is already in its answer.
            let stale = |entry: &Entry| entry.tag < change.version;
            match (change.kind(), partner) {
                (Kind::Callback, Ok(partner)) => {
                    let key = (partner, change.notification_type);
                    if self.entries.get(&key).is_some_and(stale) {
                        self.entries.remove(&key);
                    }
                }
                (Kind::Partner, Ok(partner)) => {
                    self.entries
                        .retain(|key, entry| key.0 != partner || !stale(entry));
                }
                (Kind::Catalogue, _) => {
                    self.catalogue_changed = self.catalogue_changed.max(change.version);
                }
                // Key checks are not resolutions.
                (Kind::ApiKey, _) => {}
                // Never seen: forget everything rather than miss it.
                _ => {
                    self.entries.clear();
                    self.catalogue_changed = self.catalogue_changed.max(change.version);
                }
            }
        }
        self.applied = self.applied.max(answer.version);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn target(registration: Uuid) -> Resolution {
        Resolution::Active(Arc::new(Target::new(
            registration,
            "https://hooks.example.com/cb".into(),
            None,
            None,
            Vec::new(),
            &[],
        )))
    }

    fn change(
        version: u64,
        kind: Kind,
        partner: Uuid,
        notification_type: i32,
    ) -> pb::RegistryChange {
        let mut change = pb::RegistryChange {
            version,
            partner_id: partner.to_string(),
            notification_type,
            ..Default::default()
        };
        change.set_kind(kind);
        change
    }

    fn answer(version: u64, changes: Vec<pb::RegistryChange>) -> pb::ListChangesResponse {
        pb::ListChangesResponse {
            version,
            complete: true,
            changes,
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_change_after_the_tag_forgets_only_its_key() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut cache = Resolutions::new();
        cache.insert((a, 5), target(a), 0, later());
        cache.insert((a, 6), Resolution::NoSubscriber, 0, later());
        cache.insert((b, 5), target(b), 0, later());
        cache.apply(&answer(3, vec![change(3, Kind::Callback, a, 5)]));
        assert!(cache.get((a, 5)).is_none());
        assert!(cache.get((a, 6)).is_some());
        assert!(cache.get((b, 5)).is_some());
        assert_eq!(cache.applied(), 3);
    }

    #[test]
    fn a_change_the_answer_already_reflects_keeps_it() {
        let a = Uuid::new_v4();
        let mut cache = Resolutions::new();
        cache.apply(&answer(4, Vec::new()));
        cache.insert((a, 5), target(a), 4, later());
        // Version 4 was applied before the question: the answer holds it.
        cache.apply(&answer(4, vec![change(4, Kind::Callback, a, 5)]));
        assert!(cache.get((a, 5)).is_some());
    }

    #[test]
    fn an_answer_that_a_sync_overtook_is_not_kept() {
        let a = Uuid::new_v4();
        let mut cache = Resolutions::new();
        let tag = cache.applied();
        cache.apply(&answer(7, vec![change(7, Kind::Callback, a, 5)]));
        cache.insert((a, 5), target(a), tag, later());
        assert!(cache.get((a, 5)).is_none());
    }

    #[test]
    fn a_disabled_partner_an_incomplete_list_or_an_unknown_kind_forget_more() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut cache = Resolutions::new();
        cache.insert((a, 5), target(a), 0, later());
        cache.insert((a, 6), target(a), 0, later());
        cache.insert((b, 5), target(b), 0, later());
        cache.apply(&answer(1, vec![change(1, Kind::Partner, a, 0)]));
        assert!(cache.get((a, 5)).is_none() && cache.get((a, 6)).is_none());
        assert!(cache.get((b, 5)).is_some());

        cache.apply(&pb::ListChangesResponse {
            version: 9,
            complete: false,
            changes: Vec::new(),
        });
        assert!(cache.get((b, 5)).is_none());
        assert_eq!(cache.applied(), 9);
        assert_eq!(cache.catalogue_changed(), 9);

        cache.insert((b, 5), target(b), 9, later());
        cache.apply(&answer(10, vec![change(10, Kind::Unspecified, b, 0)]));
        assert!(cache.get((b, 5)).is_none());
        assert_eq!(cache.catalogue_changed(), 10);
    }

    #[test]
    fn a_catalogue_change_dates_the_catalogue_and_keeps_resolutions() {
        let a = Uuid::new_v4();
        let mut cache = Resolutions::new();
        cache.insert((a, 5), target(a), 0, later());
        cache.apply(&answer(3, vec![change(3, Kind::Catalogue, a, 0)]));
        assert_eq!(cache.catalogue_changed(), 3);
        assert!(cache.get((a, 5)).is_some());
        cache.apply(&answer(4, vec![change(4, Kind::Callback, a, 6)]));
        assert_eq!(cache.catalogue_changed(), 3);
    }

    #[test]
    fn a_gone_registration_is_forgotten_at_once() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut cache = Resolutions::new();
        cache.insert((a, 5), target(a), 0, later());
        cache.insert((b, 5), target(b), 0, later());
        cache.forget_registration(a);
        assert!(cache.get((a, 5)).is_none());
        assert!(cache.get((b, 5)).is_some());
    }
}

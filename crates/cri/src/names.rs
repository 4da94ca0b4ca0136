//! Name reservation: a sandbox name (`name_namespace_uid_attempt`) or a container name
//! (`name_sandboxname_namespace_uid_attempt`) belongs to one id at a time, as in containerd.
//! A [`Reservation`] releases its name when dropped unless committed, so a failed create rolls
//! back its name.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::Error;

#[derive(Default)]
pub(crate) struct Names {
    taken: Mutex<HashMap<String, String>>,
}

pub(crate) struct Reservation<'a> {
    names: &'a Names,
    name: String,
    committed: bool,
}

impl Names {
    pub fn reserve(&self, name: &str, id: &str) -> Result<Reservation<'_>, Error> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(owner) = taken.get(name) {
            return Err(Error::AlreadyExists(format!("name {name:?} is reserved for {owner}")));
        }
        taken.insert(name.to_string(), id.to_string());
        Ok(Reservation { names: self, name: name.to_string(), committed: false })
    }

    /// Takes a name back at start-up for a record loaded from disk.
    pub fn restore(&self, name: &str, id: &str) {
        self.taken.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), id.to_string());
    }

    pub fn release(&self, name: &str) {
        self.taken.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }
}

impl Reservation<'_> {
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.names.release(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_conflict_and_rollback() {
        let names = Names::default();
        let r = names.reserve("a", "1").unwrap();
        assert!(matches!(names.reserve("a", "2"), Err(Error::AlreadyExists(_))));
        drop(r);
        names.reserve("a", "2").unwrap().commit();
        assert!(names.reserve("a", "3").is_err());
        names.release("a");
        names.reserve("a", "3").unwrap().commit();
    }
}

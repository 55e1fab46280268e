//! Configuration tables (protocol §8): the commands, domains and record types a box accepts.
//! Each box type starts with the commands its role needs; domains join the table as their
//! processes are installed; a signed table update can narrow or widen them later.

use postkey_wire::{BoxType, CommandCode as C, ConfigTables, DomainId, RecordType as R};

use crate::BoxError;

/// The tables a new box of `box_type` starts with: every command the protocol gives its type,
/// the record types those commands carry, and the `ADMIN` domain (protocol §8). Derived from the
/// command table of [`postkey_wire::command`], so a command added there reaches the boxes of its
/// types without a second list to keep.
pub fn initial(box_type: BoxType) -> ConfigTables {
    let commands: Vec<C> =
        C::KNOWN.iter().map(|(c, _)| *c).filter(|c| c.box_types().contains(&box_type)).collect();
    let mut record_types: Vec<R> = Vec::new();
    for c in &commands {
        for r in c.record_types() {
            if !record_types.contains(r) {
                record_types.push(*r);
            }
        }
    }
    ConfigTables { commands, domains: vec![DomainId::admin()], record_types }
}

/// Refuses a command outside the command table.
pub(crate) fn check_command(tables: &ConfigTables, command: C) -> Result<(), BoxError> {
    if tables.commands.contains(&command) {
        Ok(())
    } else {
        Err(BoxError::CommandNotInTable(command))
    }
}

/// Refuses a domain outside the domain table.
pub(crate) fn check_domain(tables: &ConfigTables, domain: &DomainId) -> Result<(), BoxError> {
    if tables.domains.contains(domain) {
        Ok(())
    } else {
        Err(BoxError::DomainNotInTable(domain.clone()))
    }
}

/// Refuses a record type outside the record table.
pub(crate) fn check_record(tables: &ConfigTables, record: R) -> Result<(), BoxError> {
    if tables.record_types.contains(&record) {
        Ok(())
    } else {
        Err(BoxError::RecordNotInTable(record))
    }
}

//! Configuration tables (SPEC §8): the commands, domains and record types a box accepts.
//! Each box type starts with the commands its role needs; domains join the table as their
//! processes are installed; a signed table update can narrow or widen them later.

use postkey_wire::{BoxType, CommandCode as C, ConfigTables, DomainId, RecordType as R};

use crate::BoxError;

/// The tables a new box of `box_type` starts with.
pub fn initial(box_type: BoxType) -> ConfigTables {
    let common = [C::SELF_TEST, C::ATTEST_STATE, C::UPDATE_TABLES, C::INSTALL_CERTIFICATE];
    let (commands, records): (&[C], &[R]) = match box_type {
        BoxType::Manufacturing => (
            &[
                C::ISSUE_SET_ID,
                C::CERTIFY,
                C::CREATE_DOMAIN,
                C::DELIVER,
                C::ADOPT_DOMAIN,
                C::ISSUE_KIT,
                C::SIGN_TABLES,
                C::SIGN_TRANSCRIPT,
                C::INSTALL_KIT,
            ],
            &[
                R::BLANK_NONCE,
                R::BOX_KEYS,
                R::DOMAIN_BUNDLE,
                R::CERTIFICATE,
                R::KIT,
                R::TABLE_UPDATE,
            ],
        ),
        BoxType::Oak => (
            &[C::INSTALL_PROCESS, C::GENERATE_KEY],
            &[R::DELIVERY, R::TABLE_UPDATE, R::MI1, R::CERTIFICATE, R::PROCESS],
        ),
        BoxType::Steel => (
            &[C::INSTALL_PROCESS, C::INSTALL_KEY, C::RECOVER],
            &[R::DELIVERY, R::TABLE_UPDATE, R::MI4, R::MI6],
        ),
        BoxType::Brass => (
            &[
                C::INSTALL_PROCESS,
                C::CHECK_INSTALL,
                C::REGISTER,
                C::VERIFY,
                C::WITHDRAW,
                C::TIN_EXPORT,
                C::CHECKPOINT,
            ],
            &[
                R::DELIVERY,
                R::TABLE_UPDATE,
                R::MI3,
                R::MI7,
                R::MI8,
                R::MR1,
                R::MR2,
                R::MI9,
                R::WITHDRAW,
                R::CERTIFICATE,
            ],
        ),
        BoxType::Tin => (
            &[C::INSTALL_PROCESS, C::TIN_IMPORT, C::TIN_VERIFY],
            &[R::DELIVERY, R::TABLE_UPDATE, R::TIN_EXPORT],
        ),
    };
    ConfigTables {
        commands: common.iter().chain(commands).copied().collect(),
        domains: vec![DomainId::admin()],
        record_types: records.to_vec(),
    }
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

//! How the KMC reaches boxes: a command code and its parameters out, the answer's parameters
//! back, or a refusal with its response code (SPEC §9 levels 2 and 3). The embedded default
//! implements it in memory; boxes on other hosts will implement it over the box link protocol,
//! with the same messages and the same checks.
//!
//! The parameters of each command, all bytes:
//!
//! | command | parameters | answer |
//! | --- | --- | --- |
//! | `ATTEST_STATE` | 32-byte nonce | STATE_VERSION record |
//! | `GENERATE_KEY` | MI1 | MI3, MI4 |
//! | `INSTALL_KEY` | MI4, meter ID (ASCII) | MI7, or ABORTED |
//! | `RECOVER` | — | ABORTED records, one per interrupted installation |
//! | `CHECK_INSTALL` | MI3, MI7 | MI9 and MI10, or BAD |

use postkey_wire::{BoxId, CommandCode, ResponseCode};

/// A box's refusal of a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{box_id} refused: {message} [response code {code}]")]
pub struct Refusal {
    /// The box.
    pub box_id: BoxId,
    /// Why, as a response code.
    pub code: ResponseCode,
    /// Why, in words (no secret ever appears in a refusal).
    pub message: String,
}

/// The boxes the KMC can reach.
pub trait Boxes {
    /// Sends `command` with `params` to box `id` and returns its answer. The box has made any
    /// change of its state durable before it answers.
    fn call(
        &mut self,
        id: BoxId,
        command: CommandCode,
        params: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, Refusal>;
}

//! How the KMC reaches boxes: a command code and its parameters out, the answer's parameters
//! back, or a refusal with its response code (SPEC §9 levels 2 and 3). The embedded default
//! implements it in memory; boxes on other hosts will implement it over the box link protocol,
//! with the same messages and the same checks.
//!
//! The parameters of each item of a command, all bytes:
//!
//! | command | parameters | answer |
//! | --- | --- | --- |
//! | `ATTEST_STATE` | 32-byte nonce | STATE_VERSION record |
//! | `GENERATE_KEY` | MI1 | MI3, MI4 |
//! | `INSTALL_KEY` | MI4, meter ID (ASCII) | MI7, or ABORTED |
//! | `RECOVER` | — | ABORTED records, one per interrupted installation |
//! | `CHECK_INSTALL` | MI3, MI7 | MI9 and MI10, or BAD |

use core::future::Future;

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

/// A box's answer to one item: its records, or its refusal of that item.
pub type Answer = Result<Vec<Vec<u8>>, Refusal>;

/// The boxes the KMC can reach. Calls take `&self`: the KMC keeps several batches in flight,
/// each at a different box (Oak, Steel, Brass), and boxes work in parallel.
pub trait Boxes: Sync {
    /// Sends `command` to box `id` with a batch of items, each its list of parameters. The box
    /// answers every item on its own, in order, and has made every change of its state durable
    /// before it answers (SPEC §6.1 allows one durable write over a batch when every rule holds
    /// per key). The outer error refuses the whole batch (link down, box locked).
    fn call_batch(
        &self,
        id: BoxId,
        command: CommandCode,
        items: Vec<Vec<Vec<u8>>>,
    ) -> impl Future<Output = Result<Vec<Answer>, Refusal>> + Send;

    /// Sends one item.
    fn call(
        &self,
        id: BoxId,
        command: CommandCode,
        params: Vec<Vec<u8>>,
    ) -> impl Future<Output = Answer> + Send {
        async move {
            let mut answers = self.call_batch(id, command, vec![params]).await?;
            match (answers.pop(), answers.is_empty()) {
                (Some(answer), true) => answer,
                _ => Err(Refusal {
                    box_id: id,
                    code: ResponseCode::PARAMETER_COUNT,
                    message: "the box answered another number of items than it was sent".into(),
                }),
            }
        }
    }
}

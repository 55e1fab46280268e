//! How the KMC reaches boxes: a typed [`Command`] out, the box's typed [`Response`] back, or the
//! refusal of the whole command (protocol §9 levels 2 and 3). The embedded default implements
//! [`Boxes`] in the host; boxes on other hosts will implement it over the box link protocol. Both
//! carry the same frames (`postkey_wire::command`), decoded once at the edge.

use core::future::Future;

use postkey_archive::BoxVersion;
use postkey_wire::command::{Answered, BoxRequest, Command, answers_of};
use postkey_wire::{BoxId, Refusal};

/// A box's refusal of a command or of one item, and the box that refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{box_id} refused: {refusal}")]
pub struct BoxRefusal {
    /// The box.
    pub box_id: BoxId,
    /// Its response code and message (never a secret).
    pub refusal: Refusal,
}

/// The boxes the KMC can reach. Calls take `&self`: the KMC keeps several batches in flight,
/// each at a different box (Oak, Steel, Brass), and boxes work in parallel.
pub trait Boxes: Sync {
    /// Sends `command` (a batch of items) to box `id`. The box answers every item on its own, in
    /// order, and has made every change of its state durable before it answers (protocol §6.1 allows
    /// one durable write over a batch when every rule holds per key); the answers carry its new
    /// state version. The error refuses the whole command (link down, box locked or refusing it).
    fn send(
        &self,
        id: BoxId,
        command: Command,
    ) -> impl Future<Output = Result<Answered, Refusal>> + Send;
}

/// One item's answer, or that item's refusal by the box.
pub type Answer<A> = Result<A, BoxRefusal>;

/// A box's answers to a batch, and its state version after it (for the archive, in the same
/// transaction as what the answers made).
pub(crate) struct Called<A> {
    /// Each item's answer, in order.
    pub(crate) answers: Vec<Answer<A>>,
    /// The box's state version once the answers were durable.
    pub(crate) version: BoxVersion,
}

/// Sends a batch of `R` items to box `id`: each item's answer in its place, checked to be of
/// this command and one per item (anything else refuses the whole batch: 2009).
pub(crate) async fn call<R: BoxRequest>(
    boxes: &impl Boxes,
    id: BoxId,
    items: Vec<R>,
) -> Result<Called<R::Answer>, BoxRefusal> {
    let sent = items.len();
    let refused = |refusal| BoxRefusal { box_id: id, refusal };
    let answered = boxes.send(id, R::batch(items)).await.map_err(refused)?;
    let version = BoxVersion { box_id: id, version: answered.state_version };
    let answers = answers_of::<R>(sent, answered.response)
        .map_err(|e| refused(Refusal::new(e.response_code(), e.to_string())))?;
    Ok(Called { answers: answers.into_iter().map(|a| a.map_err(refused)).collect(), version })
}

/// Sends one `R` item to box `id`: its answer, and the box's state version.
pub(crate) async fn call_one<R: BoxRequest>(
    boxes: &impl Boxes,
    id: BoxId,
    item: R,
) -> Result<(R::Answer, BoxVersion), BoxRefusal> {
    let Called { mut answers, version } = call(boxes, id, vec![item]).await?;
    let answer = answers.pop().unwrap_or_else(|| {
        Err(BoxRefusal {
            box_id: id,
            refusal: Refusal::new(
                postkey_wire::ResponseCode::ANSWER_MISMATCH,
                "the box answered no item",
            ),
        })
    })?;
    Ok((answer, version))
}

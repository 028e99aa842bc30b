//! What can go wrong in apply, typed so a caller (the controller's work queue) can tell a
//! failure worth retrying later from one that will fail again the same way.

use crate::remote::ClientError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The server refused a call or did not answer. `what` names the object.
    #[error("{what}: {source}")]
    Server {
        what: String,
        #[source]
        source: ClientError,
    },
    /// State could not record a change: nothing more may be created until it can.
    #[error("recording state: {0}")]
    State(#[from] StateError),
    /// Not started: state could no longer be written when this action's turn came.
    #[error("not started: state can no longer be written ({0})")]
    Stopped(StateError),
    /// The plan cannot be carried out as written (a kind this build does not know, an
    /// object whose parent never came).
    #[error("{0}")]
    Plan(String),
    /// The server answered a DELETE as done, and a read still finds the object. Transient:
    /// the next run deletes it again.
    #[error("{what}: DELETE {route} was answered as done, but the object is still there (read back after the delete)")]
    NotDeleted { what: String, route: String },
    /// Several independent actions (a restaurant's tools) failed.
    #[error("{count} actions failed; first: {first}")]
    Several {
        count: usize,
        first: Box<ApplyError>,
    },
}

impl ApplyError {
    /// Whether running again later may succeed without anyone changing anything (a timeout,
    /// a 5xx, throttling, a state lock held elsewhere). A 4xx, a malformed answer or an
    /// inconsistent plan will fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            ApplyError::Server { source, .. } => source.is_transient(),
            ApplyError::NotDeleted { .. } => true,
            ApplyError::State(_) | ApplyError::Stopped(_) | ApplyError::Plan(_) => false,
            ApplyError::Several { first, .. } => first.is_transient(),
        }
    }

    /// Whether this is a write that was never sent because the run was stopping (a signal,
    /// or state that can no longer be written): the object was not started, not failed.
    pub fn is_halt(&self) -> bool {
        match self {
            ApplyError::Server { source, .. } => matches!(source, ClientError::Halted { .. }),
            ApplyError::Stopped(_) => true,
            ApplyError::Several { first, .. } => first.is_halt(),
            ApplyError::State(_) | ApplyError::Plan(_) | ApplyError::NotDeleted { .. } => false,
        }
    }

    /// The route of the failed call, when a call failed (`/api/agents/:id`, never an id).
    pub fn route(&self) -> Option<&str> {
        match self {
            ApplyError::Server { source, .. } => source.route(),
            ApplyError::NotDeleted { route, .. } => Some(route),
            ApplyError::Several { first, .. } => first.route(),
            _ => None,
        }
    }

    /// One error for a batch: none, the one, or a count with the first.
    pub(crate) fn of_batch(mut errors: Vec<ApplyError>) -> Result<(), ApplyError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            count => Err(ApplyError::Several {
                count,
                first: Box::new(errors.remove(0)),
            }),
        }
    }
}

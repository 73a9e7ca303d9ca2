//! Approval at the terminal for `warden run`: the operator answers an
//! agent's `approvals.request` with y or n.
//!
//! Only when stdin and stderr are a terminal: a run from a script or a
//! pipe has nobody to ask, and its requests are refused at once rather
//! than waiting for the deadline.

use std::{
    io::{BufRead as _, IsTerminal as _, Write as _},
    sync::mpsc,
    time::Instant,
};

use warden_host_api::{
    scope::printable,
    warden_agent::{ApprovalAnswer, ApprovalRequest, Approver},
};

/// Asks the person at the terminal, who is recorded as `operator`.
#[derive(Debug)]
pub(crate) struct TerminalApprover {
    pub(crate) operator: String,
}

impl Approver for TerminalApprover {
    fn ask(&self, request: &ApprovalRequest) -> ApprovalAnswer {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return ApprovalAnswer::Unavailable(
                "stdin is not a terminal, so nobody can be asked; warden run refuses approval \
                 requests there"
                    .into(),
            );
        }
        // Guest text is escaped: it must not be able to draw a fake prompt.
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "agent {} asks approval to: {}\n  {}\napprove? [y/N] ",
            printable(&request.agent),
            printable(&request.action),
            printable(&request.detail)
        );
        let _ = err.flush();
        drop(err);
        let (tx, rx) = mpsc::channel();
        // The read cannot be cancelled; at the deadline the thread is left
        // to end with the process.
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            let _ = tx.send(line);
        });
        let wait = request.deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(line) if matches!(line.trim(), "y" | "Y" | "yes") => ApprovalAnswer::Approved {
                approver: self.operator.clone(),
            },
            Ok(_) => ApprovalAnswer::Denied {
                approver: self.operator.clone(),
                reason: "denied at the terminal".into(),
            },
            Err(_) => ApprovalAnswer::NoAnswer,
        }
    }
}

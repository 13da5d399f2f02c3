//! What a job status number means: whether it is final, and its name for people.

use noteflow_proto::v1 as pb;

/// True for COMPLETED, FAILED and CANCELLED: states a job never leaves.
pub fn is_terminal(status: i32) -> bool {
    matches!(
        pb::JobStatus::try_from(status),
        Ok(pb::JobStatus::Completed | pb::JobStatus::Failed | pb::JobStatus::Cancelled)
    )
}

/// The status's name without the enum prefix (`RUNNING`), or `status N` for a number this client
/// does not know.
pub fn status_name(status: i32) -> String {
    pb::JobStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("JOB_STATUS_")
                .to_string()
        })
        .unwrap_or_else(|_| format!("status {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_three_final_states_are_terminal() {
        for (status, terminal) in [
            (pb::JobStatus::Unspecified, false),
            (pb::JobStatus::Queued, false),
            (pb::JobStatus::Running, false),
            (pb::JobStatus::Completed, true),
            (pb::JobStatus::Failed, true),
            (pb::JobStatus::Cancelled, true),
        ] {
            assert_eq!(is_terminal(status as i32), terminal, "{status:?}");
        }
        assert!(!is_terminal(99));
    }

    #[test]
    fn names_drop_the_enum_prefix() {
        assert_eq!(status_name(pb::JobStatus::Running as i32), "RUNNING");
        assert_eq!(status_name(pb::JobStatus::Cancelled as i32), "CANCELLED");
        assert_eq!(status_name(99), "status 99");
    }
}

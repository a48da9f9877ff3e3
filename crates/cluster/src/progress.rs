//! A job's progress across workers: each worker totals its share of every
//! job it runs and sends the totals with its heartbeats; the job master
//! merges the latest share of every worker, adds the attempt's input plan
//! (the share done needs the whole input) and publishes the result in the
//! job's `JobInfo`, which clients follow.

use weir_common::Watermark;
use weir_runtime::{JobId, JobProgress};

use crate::proto;

pub(crate) fn progress_to_proto(
    job: JobId,
    attempt: u32,
    progress: &JobProgress,
) -> proto::JobProgress {
    proto::JobProgress {
        job_id: job.to_string(),
        attempt,
        source_rows: progress.source_rows,
        source_bytes: progress.source_bytes,
        records_skipped: progress.records_skipped,
        splits_finished: progress.splits_finished,
        splits_total: progress.splits_total,
        size_read: progress.size_read,
        late_rows_dropped: progress.late_rows_dropped,
        watermark: progress.watermark.map(|w| w.millis()),
        done: progress.done,
    }
}

pub(crate) fn progress_from_proto(progress: &proto::JobProgress) -> JobProgress {
    JobProgress {
        source_rows: progress.source_rows,
        source_bytes: progress.source_bytes,
        records_skipped: progress.records_skipped,
        splits_finished: progress.splits_finished,
        splits_total: progress.splits_total,
        size_read: progress.size_read,
        late_rows_dropped: progress.late_rows_dropped,
        watermark: progress.watermark.map(Watermark),
        done: progress.done,
    }
}

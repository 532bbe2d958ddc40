"""The export job: the comparison export written to a file under the data folder, for download from the job page.

The lines are those of `GET /api/v1/export/comparisons` with the same filters. The file is written under a
temporary name and renamed when complete, so a download never sees half an export; a cancelled, failed or
requeued attempt leaves nothing behind and the next attempt starts over (an export is cheap to redo).
Rankings are read in keyset batches, each in its own short transaction, so labeling goes on during an export.
"""

from __future__ import annotations

import os
import time

from app.models import JobKind
from app.schemas.jobs import ExportParams
from app.services import export_options, exports, storage
from trainer.common.context import JobContext

KIND = JobKind.export

CHECK_EVERY_S = 1.0
"""Seconds between cancellation checks while writing."""


def run(ctx: JobContext, params: ExportParams) -> None:
    """Write the export; progress is the share of rankings read, metrics the lines written."""
    options = export_options.options_from_params(params)
    target = export_options.job_file(ctx.data_dir, job_id=ctx.job_id, fmt=options.format)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    started = time.monotonic()
    with ctx.transaction() as session:
        total = exports.count_rankings(session, options=options)
    ctx.log(f"exporting {options.format} from {total} rankings to {target}")
    done = 0
    last_check = time.monotonic()

    def on_batch(n: int) -> None:
        nonlocal done, last_check
        done += n
        ctx.progress(min(done / total, 1.0) if total else 1.0)
        if time.monotonic() - last_check >= CHECK_EVERY_S:
            last_check = time.monotonic()
            ctx.check_cancelled()

    lines = 0
    try:
        with partial.open("w", encoding="utf-8") as out:
            # each batch is its own short transaction: labeling goes on during an export (SQLite: no held lock)
            batches = exports.export_lines(ctx.transaction, settings=ctx.settings, options=options, on_batch=on_batch)
            for line in batches:
                out.write(line)
                lines += 1
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    ctx.metrics(step=done, lines=lines, rankings=done, seconds=round(seconds, 3))
    ctx.progress(1.0)
    ctx.log(f"wrote {lines} {options.format} lines from {done} rankings in {seconds:.1f} s")
    keep, days = ctx.settings.export_keep, ctx.settings.export_max_age_days
    removed = storage.prune_exports(ctx.data_dir, keep=keep, max_age_days=days)
    if removed:
        ctx.log(
            f"removed {len(removed)} older export file(s): RANKLAB_EXPORT_KEEP={keep}, EXPORT_MAX_AGE_DAYS={days:g}"
        )

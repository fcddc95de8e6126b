"""CSV."""

from __future__ import annotations

import csv
import io

from regmixd_cli.domain import Schedule
from regmixd_cli.plan.export.common import (
    ExportOptions,
    Files,
    number_text,
    trainer_name,
)


def csv_export(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[Files, list[str]]:
    del options
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "stage",
            "start_step",
            "end_step",
            "start_fraction",
            "end_fraction",
            "predicted_loss",
            *(trainer_name(d, prefixes) for d in schedule.domains),
        ]
    )
    for i, s in enumerate(schedule.stages):
        loss = "" if s.predicted_loss is None else repr(s.predicted_loss)
        writer.writerow(
            [
                i,
                s.start_step,
                s.end_step,
                s.start_fraction,
                s.end_fraction,
                loss,
                *(number_text(w) for w in s.weights),
            ]
        )
    return {"schedule.csv": buffer.getvalue()}, []


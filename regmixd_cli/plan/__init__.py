"""Planning: the candidate search, constraints, schedules, exports and comparisons.

`build_schedule` (RegMix-D Algorithm 1) and `build_static` (RegMix) search the mixture
simplex with a fitted model; `schedule_file` reads and writes schedule JSON; `export/` turns a
schedule into a trainer's own format.
"""

from regmixd_cli.plan.constraints import Constraints
from regmixd_cli.plan.export import build_export
from regmixd_cli.plan.schedule import build_schedule, build_static, resolve_schedule_prior
from regmixd_cli.plan.schedule_file import read_schedule, write_schedule
from regmixd_cli.plan.search import SearchConfig, search_mixture

__all__ = [
    "Constraints", "SearchConfig", "build_export", "build_schedule", "build_static",
    "read_schedule", "resolve_schedule_prior", "search_mixture", "write_schedule",
]  # fmt: skip

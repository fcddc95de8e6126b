"""Online control: one decision from an observed loss, following a log, its state file.

`OnlineController` steers a live run with a fitted model (RegMix-D Algorithm 2); `follow`
tails a growing training log for `regmixd online --follow`.
"""

from regmixd_cli.online.controller import OnlineController, decide_online
from regmixd_cli.online.decision import Decision

__all__ = ["Decision", "OnlineController", "decide_online"]

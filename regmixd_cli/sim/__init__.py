"""Synthetic worlds with a known truth, their oracle, and proxy designs.

`make_world` builds a world, `simulate_runs` trains proxies in it, `find_oracle` finds its
best static mixture and schedule, and `design_mixtures` plans the proxies of a real study.
"""

from regmixd_cli.sim.design import design_mixtures
from regmixd_cli.sim.oracle import find_oracle
from regmixd_cli.sim.proxies import simulate_runs
from regmixd_cli.sim.world import World, make_world

__all__ = ["World", "design_mixtures", "find_oracle", "make_world", "simulate_runs"]

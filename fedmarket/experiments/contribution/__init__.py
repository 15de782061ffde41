"""`fedmarket contribution`: each retailer's value to a finished run, by leave-one-out or
Monte-Carlo Shapley over coalition runs (issue 16)."""

from fedmarket.experiments.contribution.plan import METHODS, ContributionConfig, Plan, make_plan
from fedmarket.experiments.contribution.valuation import run_contribution

__all__ = ["METHODS", "ContributionConfig", "Plan", "make_plan", "run_contribution"]

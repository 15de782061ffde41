"""The names a run config may use, importable without torch, and the closest to a misspelt one.

`fedmarket simulate` checks its ``--run-config`` before it imports the experiments (torch,
flwr and Ray take seconds, tens of seconds on a busy machine), so a typo is an error at once.
The registries that build models and tasks (``fedmarket.models``, ``fedmarket.tasks``) import
torch; the names alone live here, and tests keep each registry naming exactly these.

``closest`` and ``did_you_mean`` are the one way an unknown name gets its suggestion, so run
config keys, model, task and strategy names, and the CLI's commands and options suggest alike.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

MODELS: tuple[str, ...] = ("cnn-lstm", "lstm", "gru", "rnn", "mlp", "gru-ncf")
TASKS: tuple[str, ...] = (
    "purchase",
    "purchase-count",
    "churn",
    "churn-inactive",
    "next-categories",
    "next-products",
)
# The 0/1 tasks: binary cross-entropy, probabilities, classification metrics, calibration.
BINARY_TASKS: tuple[str, ...] = ("purchase", "churn", "churn-inactive")
# The churn tasks: the positive class is the customer who lapses, so a ranking by P(buy)
# (the BTYD anchor's) is turned around: P(churn) = 1 - P(buy).
CHURN_TASKS: tuple[str, ...] = ("churn", "churn-inactive")
# the recommender: its task and its model go together (fedmarket.recommend)
RANKING_TASK, RANKING_MODEL = "next-categories", "gru-ncf"
# A SuperNode's node-config key naming the retailer's raw export (deployment): here rather than
# in ``fedmarket.deploy.local_data`` (pandas), so every ClientApp can ask without loading it.
NODE_DATA_PATH = "data-path"

# within one retailer: its own products, with a retailer-private product table
# (fedmarket.recommend.products); trained by the same model
PRODUCTS_TASK = "next-products"
RANKING_TASKS: tuple[str, ...] = (RANKING_TASK, PRODUCTS_TASK)
ACCOUNTANTS: tuple[str, ...] = ("rdp", "prv")
# The loss of task purchase-count (fedmarket.negbin): Poisson, or negative binomial (NB2)
# with a learned dispersion for over-dispersed counts.
COUNT_LOSSES: tuple[str, ...] = ("poisson", "negative-binomial")


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[-_\s]+", name.lower()) if w]


def closest(name: object, choices: Iterable[str], *, n: int = 3) -> list[str]:
    """The choices ``name`` most likely meant, best first (none when nothing is close).

    First the choices difflib scores too low but a reader would not: one holding every word
    of ``name`` (``rounds`` -> ``num-server-rounds``, ``epsilon`` -> ``target-epsilon``) or
    one whose initials ``name`` is (``lr`` -> ``learning-rate``); then difflib's close
    matches, which catch typos (``simulat``, ``lstn``). The name itself, in any case, is its
    own answer.
    """
    if not isinstance(name, str) or not name.strip("-_ "):
        return []
    options = list(dict.fromkeys(choices))
    same = [c for c in options if c.lower() == name.lower().strip("-")]
    if same:
        return same
    words = set(_words(name))
    initials = name.lower().strip("-_")
    found = [
        choice
        for choice in options
        if words <= set(_words(choice))
        or (len(_words(choice)) > 1 and initials == "".join(p[0] for p in _words(choice)))
    ]
    typos = difflib.get_close_matches(name.lower(), options, n=n, cutoff=0.6)
    found += [c for c in typos if c not in found]
    return found[:n]


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` (or ``'x', 'y' or 'z'``) for the closest choices, else ``""``.

    It ends with a space so a message can put it before its list of known names:
    ``f"unknown model {name!r}; {did_you_mean(name, MODELS)}known: ..."``.
    """
    choices = list(choices)
    kebab = str(name).replace("_", "-")
    # snake_case for a kebab-case key is one answer, not one of several close ones
    found = [kebab] if kebab != name and kebab in choices else closest(name, choices)
    return f"did you mean {either(found)}? " if found else ""


def either(names: list[str]) -> str:
    """``'a'``, ``'a' or 'b'``, ``'a', 'b' or 'c'``: the names a suggestion offers."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"

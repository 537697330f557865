"""The moderation policy of a dataset: which classes are unsafe, the recall to reach on them,
and the review band. Stored with the dataset (`dataset.info["shotlab"]["policy"]`), copied into
every run and bundle, so thresholds are always read with the policy that produced them.

Every version a run or bundle can name is kept (`dataset.info["shotlab"]["policies"]`): the
current one, the ones it replaced, and those a run made with `train --unsafe/--target-recall`
(a variant of the current policy gets a version of its own, without becoming current). So a
decision's `policy_version` always names one policy: `shotlab curate policy NAME --version N`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from shotlab.core import store
from shotlab.core.errors import InputError, ShotlabError

# Moderation misses are costlier than false alarms: 95% recall on unsafe classes is the default.
DEFAULT_TARGET_RECALL = 0.95
DEFAULT_REVIEW_MARGIN = 0.1  # scores within +-0.1 of a threshold go to a human


@dataclass(frozen=True)
class Policy:
    unsafe: tuple[str, ...] = ()
    target_recall: float = DEFAULT_TARGET_RECALL
    review_margin: float = DEFAULT_REVIEW_MARGIN
    version: int = 1

    def __post_init__(self):  # a class named twice is one unsafe class
        object.__setattr__(self, "unsafe", tuple(dict.fromkeys(self.unsafe)))

    def to_dict(self) -> dict:
        return {**asdict(self), "unsafe": list(self.unsafe)}

    @classmethod
    def from_dict(cls, data: dict) -> "Policy":
        return cls(**{**data, "unsafe": tuple(data.get("unsafe", ()))})

    def check(self, classes) -> "Policy":
        unknown = sorted(set(self.unsafe) - set(classes))
        if unknown:
            raise InputError(f"unsafe classes {unknown} are not in the dataset; "
                             f"classes: {', '.join(classes)}")
        if not 0 < self.target_recall <= 1:
            raise InputError(f"target recall must be in (0, 1]. Got {self.target_recall} instead.")
        if not 0 <= self.review_margin < 0.5:
            raise InputError(f"review margin must be in [0, 0.5). Got {self.review_margin} instead.")
        return self


HISTORY_KEY = "policies"  # every version: {"N": policy dict}
CLAIM_TRIES = 20  # version numbers taken by other processes before one gives up


def policy_of(dataset) -> Policy:
    data = dataset.info.get(store.INFO_KEY, {}).get("policy")
    return Policy.from_dict(data) if data else Policy()


def history_of(dataset) -> dict[int, Policy]:
    """Every version of the dataset's policy a run or bundle may name, the current one too."""
    info = dataset.info.get(store.INFO_KEY, {})
    found = {int(v): Policy.from_dict(d) for v, d in (info.get(HISTORY_KEY) or {}).items()}
    current = policy_of(dataset)
    return {**found, current.version: current}


def version_of(dataset, number: int) -> Policy:
    """Version `number` of the dataset's policy, or InputError listing the versions kept."""
    history = history_of(dataset)
    if number not in history:
        raise InputError(f"--version {number}: no such version of this dataset's policy (kept: "
                         f"{', '.join(map(str, sorted(history)))}); versions set before "
                         f"shotlab kept them are not known")
    return history[number]


def set_policy(dataset, policy: Policy) -> Policy:
    """Validate against the dataset's classes and store it as the current policy, with a new
    version number on change (one no earlier version, or run variant, has used)."""
    policy.check(store.class_names(dataset))
    for _ in range(CLAIM_TRIES):
        dataset.reload()  # the versions another process kept since this one loaded it
        old = policy_of(dataset)
        if same_rules(policy, old):
            return old
        policy = Policy(policy.unsafe, policy.target_recall, policy.review_margin,
                        max(history_of(dataset)) + 1)
        if keep(dataset, policy, current=True):
            return policy
    raise ShotlabError(f"could not store the policy of '{dataset.name}': other processes took "
                       f"{CLAIM_TRIES} version numbers in a row; run it again")


def registered(dataset, policy: Policy) -> Policy:
    """`policy` (a run's: the dataset's with command-line overrides) under the version that
    names it: the version of an identical kept policy, else a new one, kept without becoming
    current. A run that overrode the policy stamped the dataset's version on decisions made
    under another policy. The caller reloads `dataset` first (`train.runs.versioned`)."""
    for _ in range(CLAIM_TRIES):
        history, current = history_of(dataset), policy_of(dataset).version
        same = sorted(v for v, kept in history.items() if same_rules(kept, policy))
        version = current if current in same else (same[-1] if same else max(history) + 1)
        found = Policy(policy.unsafe, policy.target_recall, policy.review_margin, version)
        if same or keep(dataset, found, current=False):
            return found
    raise ShotlabError(f"could not register the run's policy on '{dataset.name}': other "
                       f"processes took {CLAIM_TRIES} version numbers in a row; run it again")


def same_rules(a: Policy, b: Policy) -> bool:
    """The same unsafe classes (in any order), target recall and review margin."""
    def rules(p: Policy) -> tuple:
        return sorted(p.unsafe), p.target_recall, p.review_margin

    return rules(a) == rules(b)


def keep(dataset, policy: Policy, *, current: bool) -> bool:
    """Keep `policy` under its version number (and make it the current one), each key written
    by itself (`store.set_info`): False, writing nothing, when another process has since kept
    another policy under that number (the caller numbers again and retries)."""
    old = policy_of(dataset)
    kept = history_of(dataset).get(policy.version)
    if kept is None or not same_rules(kept, policy):
        if not store.set_info(dataset, f"{HISTORY_KEY}.{policy.version}", policy.to_dict(),
                              unless_set=True):
            return False
    if current:
        # The current policy of a dataset made before versions were kept is in no history yet.
        store.set_info(dataset, f"{HISTORY_KEY}.{old.version}", old.to_dict(), unless_set=True)
        store.set_info(dataset, "policy", policy.to_dict())
    return True

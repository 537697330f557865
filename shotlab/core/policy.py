"""The moderation policy of a dataset: which classes are unsafe, the recall to reach on them,
and the review band. Stored with the dataset (`dataset.info["shotlab"]["policy"]`), copied into
every run and bundle, so thresholds are always read with the policy that produced them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from shotlab.core import store
from shotlab.core.errors import InputError

# Moderation misses are costlier than false alarms: 95% recall on unsafe classes is the default.
DEFAULT_TARGET_RECALL = 0.95
DEFAULT_REVIEW_MARGIN = 0.1  # scores within +-0.1 of a threshold go to a human


@dataclass(frozen=True)
class Policy:
    unsafe: tuple[str, ...] = ()
    target_recall: float = DEFAULT_TARGET_RECALL
    review_margin: float = DEFAULT_REVIEW_MARGIN
    version: int = 1

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


def policy_of(dataset) -> Policy:
    data = dataset.info.get(store.INFO_KEY, {}).get("policy")
    return Policy.from_dict(data) if data else Policy()


def set_policy(dataset, policy: Policy) -> Policy:
    """Validate against the dataset's classes and store it, bumping the version on change."""
    policy.check(store.class_names(dataset))
    old = policy_of(dataset)
    if policy.to_dict() | {"version": old.version} != old.to_dict():
        policy = Policy(policy.unsafe, policy.target_recall, policy.review_margin, old.version + 1)
    info = dataset.info.get(store.INFO_KEY, {})
    dataset.info[store.INFO_KEY] = {**info, "policy": policy.to_dict()}
    dataset.save()
    return policy

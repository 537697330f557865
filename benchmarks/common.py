"""What the benchmark scripts share."""

from __future__ import annotations


def busy_note(result: dict) -> list[str]:
    """A warning line when other work was loading the machine (the ratios still hold)."""
    load = max(result["load_average_1m"].values())
    if load < 0.5 * (result["machine"]["cpu_count"] or 1):
        return []
    return [f"> The machine was busy (load average up to {load:.1f} on "
            f"{result['machine']['cpu_count']} CPUs): absolute times are inflated; the ratios, "
            f"measured side by side, are the figures to compare.", ""]

"""shotlab: from a small hand-collected image set to a validated model, offline.

Importing shotlab is cheap and has no side effects; each stage imports its heavy libraries
(FiftyOne, torch, ...) only when called.
"""

__version__ = "0.1.0"

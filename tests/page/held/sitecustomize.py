"""Loaded at start-up by a page server the tests start with this folder on PYTHONPATH: while the
file SHOTLAB_TEST_FORWARD_GATE names exists, a long explanation's model run stops after each
batch it reports (`shotlab.page.explaining.Counter`), as a slow model would. A test holds an
explanation "running" for as long as it needs (another session's decision, a Cancel click) and
then lets it go on, instead of racing a LIME that takes half a second on the tiny test model.
While held, the batch's progress is reported again every 0.1 s, as a slow model's batches
would report it: that report is where the page stops a cancelled run. Nothing else changes:
the batch is run, counted and reported as the page does it."""

import importlib.abc
import importlib.util
import os
import sys
import time

GATE = os.environ.get("SHOTLAB_TEST_FORWARD_GATE")
HELD = "shotlab.page.explaining"


def hold_after(call):
    def held(counter, batch):
        out = call(counter, batch)
        while os.path.exists(GATE):
            time.sleep(0.1)
            counter.report(counter.seen)
        return out

    return held


class HoldWhenImported(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != HELD:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.Counter.__call__ = hold_after(module.Counter.__call__)

        spec.loader.exec_module = exec_module
        return spec


if GATE:
    sys.meta_path.insert(0, HoldWhenImported())

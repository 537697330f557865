"""Input kinds and the input spec: shapes come from the contract, never from a literal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shotlab.core.errors import InputError
from shotlab.runtime.contract import INPUT_NAME, ModelContract, Preprocessing, input_specs
from shotlab.runtime.kinds import KINDS, load_inputs

PREP = Preprocessing(input_size=(32, 48), mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)


class Meta(ModelContract):
    def __init__(self, data):
        self.data = data

    @property
    def contract(self):
        return self.data


def test_a_contract_written_before_kinds_existed_reads_as_image():
    old = {k: v for k, v in PREP.to_dict().items() if k != "kind"}
    assert Preprocessing.from_dict(old).kind == "image"
    assert Preprocessing.from_dict(old).fingerprint() == PREP.fingerprint()  # caches stay valid


def test_an_unknown_kind_names_the_kinds_this_shotlab_reads():
    with pytest.raises(InputError, match=r"input kind 'hologram' is not one this shotlab reads "
                                         r"\(image, clip, text\)"):
        Preprocessing.from_dict({**PREP.to_dict(), "kind": "hologram"})


def test_the_input_spec_follows_the_contract():
    (spec,) = Meta({"preprocessing": PREP.to_dict()}).input_specs()
    assert (spec.name, spec.dtype, spec.shape) == (INPUT_NAME, "float32", ("batch", 3, 32, 48))
    # (A one-channel "L" contract was used here; `normalize` never ran it, so it is refused.)
    small = Preprocessing.from_dict({**PREP.to_dict(), "input_size": (20, 24)})
    assert input_specs({"photo": small})[0].shape == ("batch", 3, 20, 24)


def test_a_post_is_a_contract_with_named_parts():
    parts = {"image": PREP.to_dict(), "thumbnail": {**PREP.to_dict(), "input_size": (16, 16)}}
    specs = Meta({"preprocessing": PREP.to_dict(), "parts": parts}).input_specs()
    assert [(s.name, s.shape) for s in specs] == [("image", ("batch", 3, 32, 48)),
                                                  ("thumbnail", ("batch", 3, 16, 16))]


def test_load_inputs_goes_through_the_kind_and_skips_bad_files(tmp_path):
    good = tmp_path / "a.png"
    Image.new("RGB", (60, 40), (200, 10, 10)).save(good)
    (tmp_path / "b.png").write_text("not an image")
    inputs = load_inputs([good, tmp_path / "b.png"], PREP, progress=False)
    assert inputs.arrays.shape == (1, *KINDS["image"].sample_shape(PREP))
    assert inputs.kept == [0] and inputs.bad[0][0].endswith("b.png")
    empty = load_inputs([], PREP, progress=False)
    assert empty.arrays.shape == (0, 3, 32, 48) and empty.arrays.dtype == np.float32

"""The embedding cache: keyed by image content, backbone, weights and preprocessing.

Forward passes are counted with a forward hook on the real model, so "no forward pass" is
observed, not assumed. Images get fresh random pixels per test, so the session-wide workspace
cache can never be warm by accident.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from shotlab.core.images import sha256_file
from shotlab.runtime.contract import Preprocessing
from shotlab.train.backbones import create_model, fingerprint
from shotlab.train.embeddings import ImageFiles, cache_folder, extract, yield_to_forward


def fresh_images(folder, count=5):
    """`count` PNGs of various sizes with pixels no other test shares; (paths, sha256s)."""
    rng = np.random.default_rng(uuid.uuid4().int)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        width, height = 40 + 9 * i, 70 - 7 * i
        path = folder / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths, [sha256_file(p) for p in paths]


class ForwardCounter:
    """Counts the real model's forward calls and the images that went through them."""

    def __init__(self, model):
        self.calls, self.images = 0, 0
        self.handle = model.register_forward_hook(self.hook)

    def hook(self, module, inputs, output):
        self.calls += 1
        self.images += inputs[0].shape[0]

    def reset(self):
        self.calls, self.images = 0, 0


@pytest.fixture
def extractor():
    created = create_model("tiny-test", num_classes=0)
    counter = ForwardCounter(created.model)
    yield created, counter
    counter.handle.remove()


def run(created, paths, sha256s, **options):
    return extract(created, paths, sha256s, workers=0, progress=False, **options)


def test_embeddings_are_the_models_pooled_features(tmp_path, extractor):
    created, counter = extractor
    paths, sha256s = fresh_images(tmp_path)
    features = run(created, paths, sha256s, batch_size=2)
    assert features.shape == (5, created.model.num_features) and features.dtype == np.float32
    assert (counter.calls, counter.images) == (3, 5)  # batches of 2, 2, 1
    inputs = torch.stack([torch.as_tensor(created.preprocessing.to_array(Image.open(p).convert("RGB")))
                          for p in paths])
    with torch.no_grad():
        expected = created.model.eval()(inputs).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    assert len({row.tobytes() for row in features}) == 5  # different images, different vectors


def test_second_call_does_no_forward_pass(tmp_path, extractor):
    created, counter = extractor
    paths, sha256s = fresh_images(tmp_path)
    first = run(created, paths, sha256s)
    assert counter.images == 5
    counter.reset()
    again = run(created, paths[::-1], sha256s[::-1])  # order follows the input
    assert counter.calls == 0
    np.testing.assert_array_equal(again, first[::-1])
    files = sorted(p.name for p in cache_folder(created).iterdir())
    assert set(files) >= {f"{s}.npy" for s in sha256s}


def test_a_fresh_model_object_reuses_the_cache(tmp_path, extractor):
    created, _ = extractor
    paths, sha256s = fresh_images(tmp_path, count=3)
    first = run(created, paths, sha256s)
    other = create_model("tiny-test", num_classes=0)  # same backbone, weights, preprocessing
    assert fingerprint(other) == fingerprint(created)
    counter = ForwardCounter(other.model)
    np.testing.assert_array_equal(run(other, paths, sha256s), first)
    assert counter.calls == 0


def test_renamed_copy_hits_the_cache(tmp_path, extractor):
    created, counter = extractor
    paths, sha256s = fresh_images(tmp_path / "a", count=2)
    first = run(created, paths, sha256s)
    counter.reset()
    moved = tmp_path / "elsewhere" / "renamed.png"
    moved.parent.mkdir()
    shutil.copy(paths[1], moved)
    digest = sha256_file(moved)
    assert digest == sha256s[1]
    again = run(created, [str(moved)], [digest])
    assert counter.calls == 0
    np.testing.assert_array_equal(again[0], first[1])


def test_changed_preprocessing_misses_the_cache(tmp_path, extractor):
    created, counter = extractor
    paths, sha256s = fresh_images(tmp_path, count=3)
    first = run(created, paths, sha256s)
    counter.reset()
    other = Preprocessing.from_dict({**created.preprocessing.to_dict(), "mean": (0.5, 0.5, 0.5)})
    changed = dataclasses.replace(created, preprocessing=other)
    assert cache_folder(changed) != cache_folder(created)
    second = run(changed, paths, sha256s)
    assert counter.images == 3
    assert not np.allclose(second, first)
    # Class names are not part of the pixel pipeline: they keep the cache.
    counter.reset()
    named = dataclasses.replace(created, preprocessing=created.preprocessing.with_classes(["a"]))
    np.testing.assert_array_equal(run(named, paths, sha256s), first)
    assert counter.calls == 0


def test_changed_weights_miss_the_cache(tmp_path, extractor):
    created, _ = extractor
    paths, sha256s = fresh_images(tmp_path / "img", count=3)
    first = run(created, paths, sha256s)
    import timm

    torch.manual_seed(99)
    weights = tmp_path / "other.pt"
    torch.save(timm.create_model("test_efficientnet").state_dict(), weights)
    other = create_model("tiny-test", num_classes=0, weights_file=weights)
    assert cache_folder(other) != cache_folder(created)
    counter = ForwardCounter(other.model)
    second = run(other, paths, sha256s)
    assert counter.images == 3
    assert not np.allclose(second, first)


def test_duplicates_get_one_forward_pass(tmp_path, extractor):
    created, counter = extractor
    paths, sha256s = fresh_images(tmp_path, count=2)
    copy = tmp_path / "copy.png"
    shutil.copy(paths[0], copy)
    order = [0, 1, 0, 0]
    features = run(created, [paths[0], paths[1], str(copy), paths[0]], [sha256s[i] for i in order])
    assert counter.images == 2
    assert features.shape[0] == 4
    np.testing.assert_array_equal(features[0], features[2])
    np.testing.assert_array_equal(features[0], features[3])
    assert not np.array_equal(features[0], features[1])


def test_use_cache_false_recomputes(tmp_path, extractor):
    created, counter = extractor
    paths, sha256s = fresh_images(tmp_path, count=3)
    first = run(created, paths, sha256s)
    counter.reset()
    again = run(created, paths, sha256s, use_cache=False)
    assert counter.images == 3
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-6)


def test_partly_cached_input_embeds_only_the_new_images(tmp_path, extractor):
    created, counter = extractor
    paths, sha256s = fresh_images(tmp_path, count=4)
    run(created, paths[:2], sha256s[:2])
    counter.reset()
    features = run(created, paths, sha256s)
    assert counter.images == 2
    assert features.shape == (4, created.model.num_features)


def test_no_partial_files_are_left_behind(tmp_path, extractor):
    created, _ = extractor
    paths, sha256s = fresh_images(tmp_path, count=4)
    run(created, paths, sha256s, batch_size=3)
    run(created, paths, sha256s, use_cache=False)
    folder = cache_folder(created)
    assert not list(folder.glob("*partial*"))
    for digest in sha256s:
        vector = np.load(folder / f"{digest}.npy")
        assert vector.shape == (created.model.num_features,) and vector.dtype == np.float32


def test_empty_input_gives_an_empty_matrix(extractor):
    created, counter = extractor
    features = run(created, [], [])
    assert features.shape == (0, created.model.num_features)
    assert counter.calls == 0


def test_decoding_workers_give_the_same_embeddings_at_lower_priority(tmp_path, extractor):
    """The DataLoader worker path (what every multi-core run takes) gives the same vectors as
    decoding in the main process; and `yield_to_forward`, extract's worker_init_fn, puts a worker
    at nice +10 (a dataset that reports the niceness it runs at, read in the worker)."""
    import os

    created, _ = extractor
    paths, sha256s = fresh_images(tmp_path)
    inline = run(created, paths, sha256s, batch_size=2, use_cache=False)

    class Observed(ImageFiles):
        def __getitem__(self, index):
            return super().__getitem__(index)[0], os.nice(0)

    loader_items = torch.utils.data.DataLoader(Observed(paths, created.preprocessing),
                                               num_workers=1, worker_init_fn=yield_to_forward)
    niceness = [int(n) for _, n in loader_items]
    assert niceness == [min(os.nice(0) + 10, 19)] * len(paths)  # 19: the lowest priority
    workers = extract(created, paths, sha256s, batch_size=2, workers=1, progress=False,
                      use_cache=False)
    np.testing.assert_array_equal(workers, inline)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_file_gone_bad_is_named_in_one_line_from_a_worker_too(tmp_path, extractor, workers):
    """A file replaced or deleted after import: the error keeps its type and one line, even
    when a DataLoader worker hit it (torch would re-raise a RuntimeError with a traceback)."""
    from shotlab.core.errors import BadImageError

    created, _ = extractor
    paths, sha256s = fresh_images(tmp_path)
    open(paths[2], "w").write("junk")
    with pytest.raises(BadImageError) as caught:
        extract(created, paths, sha256s, batch_size=2, workers=workers, progress=False)
    assert str(caught.value) == f"{paths[2]}: not an image (format not recognised)"


def test_predict_over_the_same_loader_names_a_file_gone_bad(tmp_path):
    """finetune.predict reads images through ImageFiles too: a bad file is an error, never
    a blank input scored as if it were an image."""
    from shotlab.core.errors import BadImageError
    from shotlab.train.finetune import predict

    created = create_model("tiny-test", num_classes=2)
    paths, _ = fresh_images(tmp_path)
    open(paths[1], "w").write("junk")
    with pytest.raises(BadImageError, match="not an image"):
        predict(created.model, paths, created, "multiclass", device="cpu", workers=1)

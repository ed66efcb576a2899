"""Rename inference on real key sets from timm models, and the key-layout-mismatch signature."""

import timm
import torch

from compat_tests.core.evidence import Evidence
from compat_tests.paths.support.foreign_layouts import internvit_key_map, rename_keys
from compat_tests.signatures.catalog import BY_NAME, classify
from compat_tests.signatures.renames import infer_renames


def _keys(name: str) -> list[str]:
    with torch.device("meta"):
        return list(timm.create_model(name, pretrained=False).state_dict())


def _internvit(name: str) -> tuple[list[str], list[str]]:
    """(missing, unexpected) as a strict load of an InternViT-named checkpoint into `name` reports them."""
    model_keys = _keys(name)
    checkpoint_keys = list(rename_keys(dict.fromkeys(model_keys), internvit_key_map()))
    return [k for k in model_keys if k not in checkpoint_keys], [k for k in checkpoint_keys if k not in model_keys]


def test_internvit_names_are_traced_back_to_timm_blocks():
    renames, _, _ = infer_renames(*_internvit("vit_small_patch14_reg4_dinov2"))
    found = {(r.old, r.new) for r in renames}
    assert ("encoder.layers.{i}.", "blocks.{i}.") in found
    assert ("embeddings.patch_embedding.", "patch_embed.proj.") in found
    assert ("encoder.layers.{i}.ls1", "blocks.{i}.ls1.gamma") in found


def test_a_stripped_prefix_is_one_rename_and_text_tower_keys_stay_unexplained():
    model_keys = _keys("resnet18")
    checkpoint_keys = ["visual.trunk." + k for k in model_keys if not k.startswith("fc.")]
    checkpoint_keys += ["text.ln_final.weight", "text.ln_final.bias", "visual.head.proj.weight"]
    renames, left_missing, left_unexpected = infer_renames(model_keys, checkpoint_keys)
    assert renames[0].old == "visual.trunk." and renames[0].new == ""
    assert renames[0].count == len(model_keys) - 2
    assert not any(r.new == "fc." and "ln_final" in r.old for r in renames)  # unrelated names are not paired
    assert "fc.bias" in left_missing and "text.ln_final.bias" in left_unexpected


def test_signature_names_the_renames_as_a_short_table():
    missing, unexpected = _internvit("test_vit2")
    ev = Evidence(missing_keys=missing, unexpected_keys=unexpected)
    name, message = classify(ev, "foreign")
    assert name == "key-layout-mismatch"
    assert "encoder.layers.{i}. -> blocks.{i}." in message.replace("  ", " ").replace("  ", " ")
    assert len(message.splitlines()) < 10  # a table, not the key lists


def test_a_plain_prefix_is_left_to_key_prefix_mismatch():
    model_keys = _keys("test_vit2")
    ev = Evidence(missing_keys=model_keys, unexpected_keys=["module." + k for k in model_keys])
    assert BY_NAME["key-layout-mismatch"].detect(ev) is None
    assert classify(ev, "foreign")[0] == "key-prefix-mismatch"

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.text_encoder import TINY_CLIP_MODEL, load_clip, tiny_clip


def test_text_embedding_is_unit_norm_and_computed_once_per_prompt() -> None:
    clip = tiny_clip()
    calls = []
    tokenizer = clip.tokenizer
    clip.tokenizer = lambda texts: calls.append(texts) or tokenizer(texts)
    first = clip.encode_text("a comic")
    again = clip.encode_text("a comic")
    assert again is first and len(calls) == 1
    assert float(first.norm()) == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(clip.encode_text("a sketch"), first)


def test_image_embedding_is_differentiable() -> None:
    clip = tiny_clip()
    images = torch.rand(2, 3, 50, 50, requires_grad=True)
    embeddings = clip.encode_image(images)
    assert embeddings.shape == (2, 32)
    embeddings.sum().backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_weights_file_loads(tmp_path: Path, suffix: str) -> None:
    reference = tiny_clip(seed=3)
    path = tmp_path / f"clip{suffix}"
    state = {k: v.contiguous() for k, v in reference.model.state_dict().items()}
    torch.save(state, path) if suffix == ".pt" else save_file(state, path)
    loaded = load_clip(path, TINY_CLIP_MODEL, device="cpu")
    assert torch.equal(loaded.encode_text("ink"), reference.encode_text("ink"))


def test_bad_weights_are_refused_naming_them(tmp_path: Path) -> None:
    garbage = tmp_path / "clip.pt"
    garbage.write_bytes(b"garbage")
    message = f"cannot load CLIP {TINY_CLIP_MODEL} weights file {garbage}"
    with pytest.raises(ValueError, match=message):
        load_clip(garbage, TINY_CLIP_MODEL)
    with pytest.raises(ValueError, match="CLIP weights file .*missing.safetensors does not exist"):
        load_clip(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="'not-a-tag' is neither a CLIP weights file nor"):
        load_clip("not-a-tag")
    with pytest.raises(ValueError, match="unknown CLIP model 'ViT-Q-99'"):
        load_clip(garbage, "ViT-Q-99")

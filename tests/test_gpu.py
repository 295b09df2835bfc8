"""The GPU path: bf16 autocast training and cached sampling on CUDA. Skips itself without a GPU."""
import pytest
import torch

from igpt_lite.data import load_dataset
from igpt_lite.model import GPT
from igpt_lite.palette import Palette
from igpt_lite.sample import generate
from igpt_lite.train import TrainConfig, train
from conftest import tiny_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none found)")]


def test_bf16_training_on_gpu_learns_and_checkpoints_load_on_cpu(tmp_path):
    from igpt_lite.checkpoint import load_checkpoint

    tr, va = load_dataset("digits", "train"), load_dataset("digits", "val")
    pal = Palette.fit(tr.images, 8)
    torch.manual_seed(0)
    model = GPT(tiny_config(height=8, width=8))
    cfg = TrainConfig(steps=60, batch_size=64, warmup_steps=5, eval_every=30, save_every=60, device="cuda")
    history = train(model, pal, pal.encode(tr.images), pal.encode(va.images), tmp_path / "run", cfg, progress=False)
    assert history[-1].val_bpd < history[0].val_bpd < 3.0
    ck = load_checkpoint(tmp_path / "run", device="cpu")
    assert ck.model.device.type == "cpu"


def test_cached_sampling_on_gpu_matches_greedy_full_forward():
    torch.manual_seed(0)
    model = GPT(tiny_config()).cuda().eval()
    out = generate(model, torch.randint(0, 8, (2, 3)), top_k=1)
    logits = model(model.image_inputs(out))
    assert torch.equal(out[:, 3:], logits[:, 3:].argmax(-1))


@pytest.mark.slow
def test_the_official_size_runs_end_to_end_on_the_gpu():
    """benchmarks/gpu.py: the stand-in of openai/imagegpt-small imported, completed through the CLI on
    cuda, greedy cached sampling equal to a full forward's argmax, attention, features, training."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    result = gpu.run("cuda", batch_size=8, compile=False)
    assert result["greedy_matches_full_forward"]
    assert result["training"]["tokens_per_s"] > 0 and result["features_256_images_s"] > 0

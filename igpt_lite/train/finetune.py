"""Fine-tuning, the paper's second evaluation: a linear classification head on the mean-pooled
output of the final norm, trained together with the whole network on the joint loss
L = L_clf + gen_weight · L_gen (the paper found L_gen + L_clf better than L_clf alone)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import Checkpoint, load_checkpoint
from ..model import GPT
from .loop import batch_indices


@dataclass
class FinetuneResult:
    """What `finetune` returns: the fine-tuned copy of the model and its head (the checkpoint's own
    model is left as it was), the loss per step, and accuracy with its binomial standard error."""
    model: GPT
    head: torch.nn.Linear
    val_acc: float
    test_acc: float
    test_stderr: float
    n_train: int
    n_test: int
    steps: int
    gen_weight: float
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "clf_loss", "gen_loss"} per step

    def predict(self, tokens: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """The class the fine-tuned model gives each image (tokens N×T)."""
        return _logits(self.model, self.head, tokens.to(self.model.device), batch_size).argmax(1).cpu().numpy()

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("val_acc", "test_acc", "test_stderr", "n_train", "n_test", "steps",
                                               "gen_weight", "history")}

    def __repr__(self) -> str:  # not the model's and head's weights
        return f"FinetuneResult({self.text()})"

    def text(self) -> str:
        return (f"fine-tuned {self.steps} steps on {self.n_train} images (L_clf + {self.gen_weight:g} L_gen): "
                f"test {100 * self.test_acc:.1f} ± {100 * self.test_stderr:.1f}% on {self.n_test} images "
                f"(validation {100 * self.val_acc:.1f}%)")


def _pooled_and_gen_loss(model: GPT, tokens: torch.Tensor, generator: torch.Generator):
    """One forward pass: the mean-pooled final-norm features and the model's own generative loss
    (next pixel for ar; the masked pixels for bert, masked as `GPT.loss` masks them)."""
    cfg = model.config
    if cfg.objective == "ar":
        inputs, predicted = model.image_inputs(tokens), None
    else:
        predicted = (torch.rand(tokens.shape, generator=generator) < cfg.mask_rate).to(tokens.device)
        predicted[:, 0] |= ~predicted.any(1)
        inputs = tokens.masked_fill(predicted, cfg.special_id)
    logits, cache = model.run_with_cache(inputs, names=["ln_f"])
    if predicted is None:
        gen = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    else:
        gen = F.cross_entropy(logits[predicted], tokens[predicted])
    return cache["ln_f"].mean(1), gen


@torch.no_grad()
def _logits(model: GPT, head: torch.nn.Linear, tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, len(tokens), batch_size):
        _, cache = model.run_with_cache(model.image_inputs(tokens[i:i + batch_size]), names=["ln_f"])
        out.append(head(cache["ln_f"].mean(1)))
    return torch.cat(out)


def finetune(checkpoint, dataset: str | None = None, *, limit: int | None = 500, steps: int = 200,
             batch_size: int = 16, lr: float = 3e-4, gen_weight: float = 1.0, seed: int = 0,
             progress: bool = True, root=None) -> FinetuneResult:
    """Fine-tune a copy of a checkpoint (a Checkpoint, folder or model name) to classify `dataset`
    (default: the one it was trained on), on `limit` images of each split (the linear probes' split
    sizes, so the two compare), with AdamW at a constant `lr`. gen_weight=0 is L_clf alone.

    Example::

        result = finetune("mnist-small", steps=200)
        print(result.text())        # test accuracy, to compare with probe_report("mnist-small").summary
    """
    from ..data import load_dataset

    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be at least 1, got {steps} and {batch_size}")
    ck = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    name = ck.dataset_name(dataset)
    splits = {s: load_dataset(name, s, resolution=ck.square_side(), limit=limit, channels=ck.palette.channels,
                              root=root) for s in ("train", "val", "test")}
    device = ck.model.device
    tokens = {s: ck.palette.encode(d.images).to(device) for s, d in splits.items()}
    labels = {s: torch.as_tensor(d.labels, dtype=torch.long, device=device) for s, d in splits.items()}
    n_classes = len(splits["train"].class_names)

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the head's init is seeded without touching the caller's RNG
        torch.manual_seed(seed)
        model = copy.deepcopy(ck.model).train()
        head = torch.nn.Linear(model.config.n_embd, n_classes).to(device)
    opt = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=lr, weight_decay=0.01)
    history = []
    n = len(tokens["train"])
    for step in tqdm(range(1, steps + 1), disable=not progress, desc="fine-tune", unit="step"):
        idx = batch_indices(n, batch_size, step - 1, seed)
        pooled, gen_loss = _pooled_and_gen_loss(model, tokens["train"][idx], gen)
        clf_loss = F.cross_entropy(head(pooled), labels["train"][idx])
        loss = clf_loss + gen_weight * gen_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*model.parameters(), *head.parameters()], 1.0)
        opt.step()
        history.append({"step": step, "loss": loss.item(), "clf_loss": clf_loss.item(), "gen_loss": gen_loss.item()})
    model.eval()
    acc = {s: float((_logits(model, head, tokens[s], 64).argmax(1) == labels[s]).float().mean()) for s in ("val", "test")}
    n_test = len(tokens["test"])
    return FinetuneResult(model=model, head=head, val_acc=acc["val"], test_acc=acc["test"],
                          test_stderr=float(np.sqrt(acc["test"] * (1 - acc["test"]) / n_test)), n_train=n,
                          n_test=n_test, steps=steps, gen_weight=gen_weight, history=history)

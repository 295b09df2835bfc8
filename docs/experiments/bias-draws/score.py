"""Score composed figures test sets (scenes.TestSets(n_per_set=max, seed=s).composed) in bits under
figures-p50, figures-p90 and the random-weight copy (model.random_model(config, 0), as likelihood_test's
baseline). Saves /tmp/bias24/bits/{model}_s{seed}_a{a0}-{a1}.npz with XA, XB, YA, YB (16 x (a1-a0)):
attributes a0..a1-1 of each set (sets are prefixes, so a0=6 extends a 0-6 run). Resumable."""
import os, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from igpt_lite import scenes, bias, checkpoint
from igpt_lite.model import random_model

OUT = "/tmp/bias24/bits"
ck50, ck90 = checkpoint.load_checkpoint("figures-p50"), checkpoint.load_checkpoint("figures-p90")
assert ck50.palette.fingerprint == ck90.palette.fingerprint
rand = random_model(ck50.config, 0)
MODELS = {"p50": ck50.model, "p90": ck90.model, "rand": rand}
PAL = ck50.palette

import math
import torch.nn.functional as F

@torch.inference_mode()
def token_bits(model, comp, batch_size=64):
    """As bias.composed_bits (train.bits_per_image), but also keeping each token's bits:
    totals float64 n_t x n_a (sum of the float32 per-token bits), maps float16 n_t x n_a x 32 x 32."""
    model.eval()
    tot, maps = {}, {}
    for k in bias.PAIRS:
        images = np.asarray(comp[k]); flat = images.reshape(-1, *images.shape[2:])
        tokens = PAL.encode(flat)
        out = []
        for i in range(0, len(tokens), batch_size):
            batch = torch.as_tensor(tokens[i:i + batch_size])
            logits = model(model.image_inputs(batch))
            out.append(F.cross_entropy(logits.transpose(1, 2), batch, reduction="none") / math.log(2))
        per = torch.cat(out).numpy()
        tot[k] = per.astype(np.float64).sum(1).reshape(images.shape[:2])
        maps[k] = per.astype(np.float16).reshape(*images.shape[:2], 32, 32)
    return tot, maps

def run(seed, names, a0, a1, nt=16):
    todo = [m for m in names if not os.path.exists(f"{OUT}/{m}_s{seed}_a{a0}-{a1}.npz")]
    if not todo:
        return
    comp = scenes.TestSets(n_per_set=max(nt, a1), seed=seed).composed(n_targets=nt, n_attributes=a1)
    comp = {k: v[:, a0:a1] for k, v in comp.items()}
    for m in todo:
        t = time.time()
        b, maps = token_bits(MODELS[m], comp)
        np.savez(f"{OUT}/{m}_s{seed}_a{a0}-{a1}.npz", **b, **{"map_" + k: v for k, v in maps.items()})
        print(f"{time.strftime('%H:%M:%S')} seed {seed} {m} a{a0}-{a1}: {time.time()-t:.1f}s", flush=True)

phase = sys.argv[1] if len(sys.argv) > 1 else "main"
if phase == "main":
    for s in range(20000, 20064):  # p50 and the random copy on every seed, p90 on every second one
        run(s, ["p50", "rand"] + (["p90"] if s % 2 == 0 else []), 0, 6)
    for s in range(20000, 20064):
        run(s, ["p90"], 0, 6)
    for s in range(20000, 20016):  # more attributes: 6..47 (so 48 a set together with 0..5)
        run(s, ["p50", "rand"], 6, 48)

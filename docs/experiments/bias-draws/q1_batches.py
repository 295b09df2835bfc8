"""Q1b: the co-occurrence rate in the batches the p50 model saw, by training-step window
(train.batch_indices, seed 0, batch 16, 1,500 steps = 3 epochs of the 8,000-scene train split)."""
import numpy as np, torch
torch.set_num_threads(1)
from igpt_lite import data
from igpt_lite.train import batch_indices
for name in ("figures-p50", "figures-p90"):
    lab = data.load_dataset(name, "train").labels
    cong = np.isin(lab, [0, 3])  # man+career, woman+domestic
    per_step = np.array([cong[batch_indices(len(lab), 16, s, 0).numpy()].mean() for s in range(1500)])
    print(name, "all steps", per_step.mean().round(4))
    for a, b in ((0, 500), (500, 1000), (1000, 1500), (1200, 1500), (1300, 1500), (1400, 1500), (1450, 1500), (1490, 1500)):
        w = per_step[a:b]
        print(f"  steps {a}-{b}: congruent {w.mean():.4f} (s.e. {w.std(ddof=1)/np.sqrt(len(w))*1:.4f} over {len(w)} batches; {16*len(w)} scenes)")

import time, torch, numpy as np
torch.set_num_threads(1)
from igpt_lite import scenes, bias, checkpoint
from igpt_lite.model import random_model
t=time.time(); ck=checkpoint.load_checkpoint("figures-p50"); print("load", time.time()-t)
t=time.time(); c=scenes.TestSets(n_per_set=16, seed=20000).composed(n_targets=16, n_attributes=6); print("compose 384", time.time()-t)
for bs in (64,128):
    t=time.time(); b=bias.composed_bits(ck.model, ck.palette, c, batch_size=bs); print("bits 384 bs",bs, time.time()-t)
print(bias.likelihood_association(b, n_permutations=10000, n_bootstrap=0))

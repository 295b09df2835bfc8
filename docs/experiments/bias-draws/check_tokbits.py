import sys; sys.argv = ["x", "none"]
exec(open("/tmp/bias24/score.py").read())
comp = scenes.TestSets(n_per_set=16, seed=20000).composed(n_targets=2, n_attributes=2)
a = bias.composed_bits(ck50.model, PAL, comp); b, m = token_bits(ck50.model, comp)
print({k: float(np.abs(a[k] - b[k]).max()) for k in a}, m["XA"].shape)

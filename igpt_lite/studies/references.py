"""Published curves to draw beside ours."""

# The linear-probe curve of OpenAI's iGPT-S on CIFAR-10, by hidden-state index, as a public
# reproduction measured it (Chen et al. 2020 publish only the larger models' curves).
IGPT_S_CIFAR10 = {
    "name": "iGPT-S on CIFAR-10 (validation accuracy)",
    "source": "NielsRogge/Transformers-Tutorials, ImageGPT/Linear_probing_with_ImageGPT.ipynb",
    "protocol": "openai/imagegpt-small, mean-pooled hidden states, logistic regression",
    "n_layers": 24,  # hidden-state index 0 = embeddings, 1..23 = blocks 0..22, 24 = ln_f(block 23)
    "accuracy": {0: 0.333, 4: 0.495, 8: 0.653, 12: 0.778, 16: 0.786, 20: 0.758, 23: 0.724, 24: 0.678},
}

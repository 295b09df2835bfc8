"""Research and teaching code beside the product: reference curves, calibration studies, depth
experiments. The app, the CLI and the notebooks may read it; nothing in the capabilities depends on it."""

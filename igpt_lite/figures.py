"""Figure helpers shared by the capabilities: image grids (PIL images, for PNG files and st.image),
a dimmed RGB copy of an image to draw over, HTML and PNG export, and for notebooks a figure that
redraws in place and a progress bar for the library's on_step callbacks.
Each capability draws its own charts in its figures.py on top of these."""
from __future__ import annotations

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, ncols: int | None = None, scale: int | None = None, pad: int = 1,
               pad_value: int = 128) -> Image.Image:
    """uint8 N×H×W×C (or N×H×W) images tiled row-major into one enlarged PIL image
    (by default each image is drawn about 100 pixels wide)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    scale = scale or max(1, 100 // max(h, w))
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, ncols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = img
    canvas = canvas.repeat(scale, 0).repeat(scale, 1)
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def dimmed_rgb(image: np.ndarray, dim: float = 0.6) -> np.ndarray:
    """uint8 H×W[×C] -> dimmed uint8 H×W×3, so colours drawn over it (attention) stand out on white strokes."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = image.repeat(3, -1)
    return (image.astype(np.float32) * dim).astype(np.uint8)


def figures_html(figures, title: str = "igpt-lite", modebar: bool = True) -> str:
    """Several plotly figures on one self-contained page (plotly.js inline once: works offline).
    modebar=False hides plotly's toolbar (for screenshots)."""
    config = {"displaylogo": False, "displayModeBar": "hover" if modebar else False}
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), config=config) for i, fig in enumerate(figures)]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body style='font-family:sans-serif'>{''.join(parts)}</body></html>")


CHROMIUM = "/usr/bin/chromium"  # Debian's package; PNGs are skipped (with a note) without it


def save_figures(figures, html_path, title: str = "igpt-lite", png: bool = True) -> list[str]:
    """Write the figures to one self-contained HTML page and, where headless Chromium exists and
    `png` is set, a PNG screenshot of a toolbar-free copy beside it (same name, .png).
    Returns the paths written."""
    import subprocess
    import sys
    from pathlib import Path

    html = Path(html_path)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(figures_html(figures, title=title))
    written = [str(html)]
    if not png or not Path(CHROMIUM).exists():
        return written
    shot = html.with_name(f".{html.stem}_shot.html")
    shot.write_text(figures_html(figures, modebar=False))
    out = html.with_suffix(".png")
    width = max(f.layout.width or 700 for f in figures) + 40
    height = sum(f.layout.height or 450 for f in figures) + 40
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           "--virtual-time-budget=5000",  # let plotly finish drawing before the shot
           f"--screenshot={out.resolve()}", f"--window-size={width},{height}", shot.resolve().as_uri()]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        if out.exists():
            written.append(str(out))
    except (subprocess.SubprocessError, OSError) as e:
        print(f"no PNG for {html.name}: {e}", file=sys.stderr)
    finally:
        shot.unlink(missing_ok=True)
    return written


class LiveFigure:
    """A plotly figure shown once in a notebook and redrawn in place, e.g. from train's on_eval:
    `chart = LiveFigure(fig)`, then `chart.update(new_fig)`. Works live in JupyterLab and in
    executed or exported copies (nbconvert, nbmake), which keep the last figure."""

    def __init__(self, fig):
        from IPython.display import display

        self.handle = display(self._bundle(fig), raw=True, display_id=True)

    def update(self, fig) -> None:
        # JupyterLab's plotly renderer ignores an update to a chart it has drawn; it redraws only
        # when the output's type changes. So each update passes through a blank of the same height
        # (HTML) and then the new figure: Lab makes a fresh chart, saved and exported copies keep the last.
        # (Plotly's own display ignores IPython's display ids: each redraw would add a figure below.)
        height = fig.layout.height or 360
        self.handle.update({"text/html": f'<div style="height:{height}px"></div>', "text/plain": ""}, raw=True)
        self.handle.update(self._bundle(fig), raw=True)

    @staticmethod
    def _bundle(fig) -> dict:
        # what plotly.io.show displays: the default renderers' bundle. (fig._repr_mimebundle_ names the
        # renderer, which makes plotly re-activate it: with the "notebook" renderer of HTML exports,
        # a 4.8 MB copy of plotly.js in every redraw.)
        import plotly.io as pio

        return pio.renderers._build_mime_bundle(fig.to_dict())


def progress_bar(desc: str):
    """An on_step(done, total) callback (sampling, probes) that draws a progress bar: a widget in
    JupyterLab, text in a terminal or an executed copy (tqdm.auto). It closes itself at the end."""
    from tqdm.auto import tqdm

    bar = None

    def on_step(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return on_step

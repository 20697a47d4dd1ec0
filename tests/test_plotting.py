"""The book's figure policy: text legible at column width, colours visible on white."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from graphtrust.plotting import COLUMN_PX, MIN_TEXT_PX, PALETTE, shown_text_px, use_style  # noqa: E402


def _texts(fig):
    out = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    return out + [t for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()]


@pytest.mark.parametrize("width", [4.5, 6.4, 11.0, 16.0])
def test_saved_figures_keep_text_legible_at_column_width(width):
    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(width, 3.0))
    for ax in axes:
        ax.plot([0, 1, 2], [3, 1, 2], label="a line")
        ax.set(title="a title", xlabel="x", ylabel="y")
        ax.legend()
        ax.annotate("note", (1, 1), fontsize=6)
    plt.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    smallest = min(shown_text_px(fig, t.get_fontsize()) for t in _texts(fig))
    assert smallest >= MIN_TEXT_PX - 1e-9, (width, smallest)
    if width * fig.dpi <= COLUMN_PX:  # a figure that fits keeps the style's sizes
        assert min(t.get_fontsize() for t in _texts(fig) if t.get_text() != "note") >= 8
    plt.close(fig)


def test_palette_is_visible_on_white():
    """WCAG contrast ratio against white of at least 2 (the old pale yellow had 1.3)."""

    def lum(hex_colour):
        rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    for colour in PALETTE:
        assert 1.05 / (lum(colour) + 0.05) >= 2.0, colour
    assert 1.05 / (lum("#F0E442") + 0.05) < 2.0  # the check would have caught it

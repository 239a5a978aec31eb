"""See what a network learned and how it trained: PNG figures made with matplotlib (Agg backend).

- `plot_filters`: the first layer's kernels (the paper's Figure 3; one panel per tower);
- `plot_curves`: loss, top-1/top-5 and lr against epoch from ``metrics.csv`` (runs overlaid);
- `plot_activations` / `conv_activations`: every conv layer's feature maps for one image;
- `plot_kernels`: classic hand-made 3×3 kernels convolved with an image;
- `plot_confusion`, `plot_mistakes`: the evaluation report's pictures;
- `plot_strip`: a query and its nearest neighbours (the paper's Figure 4).

Functions take tensors and models and write files; they never load weights or decode images
themselves (that is `alexnet.infer`'s job), so they sit below the commands and beside inference.
"""

from .activations import conv_activations, plot_activations
from .classic_kernels import KERNELS, apply_kernels, kernel_panels, plot_kernels
from .confusion import plot_confusion, plot_mistakes
from .curves import plot_curves, read_metrics
from .learned_filters import colourfulness, first_layer_kernels, plot_filters
from .neighbours import plot_strip

__all__ = ["conv_activations", "plot_activations", "plot_confusion", "plot_mistakes", "plot_curves",
           "read_metrics", "colourfulness", "first_layer_kernels", "plot_filters", "KERNELS",
           "apply_kernels", "kernel_panels", "plot_kernels", "plot_strip"]

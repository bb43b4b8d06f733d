"""What every PNG seqlab draws needs: pyplot on the headless Agg backend, and an atomic save.

    plt = pyplot()
    fig, ax = plt.subplots()
    ...
    save_png(fig, path)   # written to a temporary name and renamed into place, then closed
"""

from __future__ import annotations

from pathlib import Path

from seqlab.files import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path: str | Path) -> None:
    """Write `fig` as the PNG `path` atomically (a crash leaves any previous file whole) and close it."""
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)


def figure_problems(fig) -> list[str]:
    """What a figure seqlab writes lacks, one sentence each (none: it is fit to be shown).

    - a title: the figure's (suptitle) or every panel's;
    - on every panel that shows data, an x and a y label (a twin axis shares its panel's x label;
      a second y axis, `secondary_yaxis`, needs its own label);
    - a legend where a panel (with its twins) shows several labelled series, and a colour bar for
      every image or mesh (`imshow`, `pcolormesh`): colours that carry meaning are explained;
    - bars compared by length start at zero (the value axis includes 0).
    Units belong in the labels ("loss (nats per token)"); that is for the writer to see to.
    """
    from matplotlib.collections import PathCollection, QuadMesh
    from matplotlib.container import BarContainer
    from matplotlib.image import AxesImage

    problems: list[str] = []
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    colorbars = [a._colorbar for a in fig.axes if getattr(a, "_colorbar", None) is not None]
    colorbar_axes = {id(c.ax) for c in colorbars}
    panels = [ax for ax in fig.axes if id(ax) not in colorbar_axes and ax.axison and _shows_data(ax)]
    if not panels:
        problems.append("it shows no data")
    for n, ax in enumerate(panels):
        name = f"panel {n + 1} ({ax.get_title() or 'untitled'})"
        if not suptitle.strip() and not ax.get_title().strip() and not _twin_title(ax, panels):
            problems.append(f"{name} has no title (nor has the figure)")
        siblings = [a for a in fig.axes if a is not ax and a.bbox.bounds == ax.bbox.bounds]
        if not ax.get_xlabel().strip() and not any(a.get_xlabel().strip() for a in siblings):
            problems.append(f"{name} has no x-axis label")
        if not ax.get_ylabel().strip():
            problems.append(f"{name} has no y-axis label")
        for child in ax.child_axes:  # secondary axes
            if not (child.get_ylabel().strip() or child.get_xlabel().strip()):
                problems.append(f"{name} has a second axis without a label")
        colours = set().union(*(_colours(a, PathCollection, BarContainer) for a in (ax, *siblings)))
        if len(colours) > 1 and not any(a.get_legend() is not None for a in (ax, *siblings)) and not fig.legends:
            problems.append(f"{name} draws in {len(colours)} colours without a legend")
        mapped = [c for c in ax.collections if isinstance(c, (QuadMesh, PathCollection)) and c.get_array() is not None]
        for image in [*ax.images, *mapped]:
            if isinstance(image, (AxesImage, QuadMesh, PathCollection)) and not _explained(image, colorbars):
                problems.append(f"{name} maps values to colours without a colour bar")
        for container in ax.containers:
            if isinstance(container, BarContainer):
                low, high = ax.get_xlim() if container.orientation == "horizontal" else ax.get_ylim()
                if min(low, high) > 0 or max(low, high) < 0:
                    problems.append(f"{name}'s bars do not start at zero (axis from {min(low, high):g})")
    return problems


def check_figure(fig) -> None:
    """Raise ValueError listing `figure_problems(fig)`, if any."""
    problems = figure_problems(fig)
    if problems:
        raise ValueError("the figure is not fit to be shown: " + "; ".join(problems))


def _explained(image, colorbars) -> bool:
    """Whether a colour bar explains `image`'s colours: its own, or one of the same scale and map."""
    return image.colorbar is not None or any(
        c.mappable.norm is image.norm and c.mappable.get_cmap().name == image.get_cmap().name for c in colorbars)


def _shows_data(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.patches or ax.images or ax.containers)


def _twin_title(ax, panels) -> bool:
    return any(a is not ax and a.bbox.bounds == ax.bbox.bounds and a.get_title().strip() for a in panels)


def _colours(ax, scatter_type, bar_type) -> set[str]:
    """The colours that tell a panel's series apart: of its lines, its single-colour scatters and
    its groups of bars (a scatter coloured by value has a colour bar instead)."""
    from matplotlib.colors import to_hex
    colours = {to_hex(line.get_color()) for line in ax.lines}
    for c in ax.collections:
        if isinstance(c, scatter_type) and c.get_array() is None and len(c.get_facecolors()):
            colours.update(to_hex(f) for f in c.get_facecolors())
    bar_groups = [c for c in ax.containers if isinstance(c, bar_type)]
    if len(bar_groups) > 1:  # grouped bars; one group's colours only echo its bars' own tick labels
        colours.update(to_hex(p.get_facecolor()) for c in bar_groups for p in c.patches)
    return colours


__all__ = ["check_figure", "figure_problems", "pyplot", "save_png"]
